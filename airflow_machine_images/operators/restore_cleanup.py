"""The restore's cleanup: delete an instance a restore of this DAG made, its disks with it, and no other.

DAG files import this module at parse time, so nothing here loads Google, ``requests`` or ``aiohttp``
code. The delete is the one delete flow (:mod:`airflow_machine_images.flows.delete`) with the target that
deletes only what the deleting task owns (:mod:`airflow_machine_images.flows.instance_delete`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

from airflow_machine_images.bodies.instance import RestoreOwnership
from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.flows.delete import DeleteRequest
from airflow_machine_images.flows.instance_delete import RestoredInstanceDeleteTarget, instance_key
from airflow_machine_images.flows.request_ids import RequestIds, TaskInstanceIdentity
from airflow_machine_images.hooks.connection import connection_template_fields
from airflow_machine_images.operators.base import DEFAULT_DEFERRABLE, DeleteAndConfirmBaseOperator
from airflow_machine_images.validation import validate_machine_image_name, validate_request_id, validate_zone
from airflow_machine_images.validation.primitives import show_value
from airflow_machine_images.validation.templates import is_literal

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.providers.common.compat.sdk import Context

__all__ = ["ComputeEngineDeleteRestoredInstanceOperator"]

#: A ``restore_id``: a restore task instance's key (``flows.request_ids.task_instance_key``).
_RESTORE_ID_PATTERN: Final = r"[0-9a-f]{32}"


class ComputeEngineDeleteRestoredInstanceOperator(DeleteAndConfirmBaseOperator):
    """Delete an instance that a restore of this DAG made (or the one restore given), its disks with it, and no other.

    The instance is read first and deleted only if it is this task's to delete: it carries the restore
    labels, its ``restore-dag`` label is this DAG's (or one of ``allow_dag_ids``), and, given
    ``restore_id``, its ``restore-id`` label is that one too. Anything else, a production VM restored months
    ago by a disaster-recovery DAG included, is refused: the task fails at once, without retries, and
    nothing is deleted. An owned instance protected against deletion (restores inherit protection from
    their image) is unprotected first (``instances.setDeletionProtection`` with a requestId). The delete
    names the instance by the id just read and carries a task-derived ``requestId``; an instance already
    gone is success. Its disks without ``autoDelete`` survive ``instances.delete``: those its restore made
    (attached to it, created with it) are read before and deleted by id once it is gone, each confirmed
    gone; any other is kept and reported.

    Returns ``{"project_id", "zone", "name", "id", "deleted", "operation_name", "status", "request_id",
    "disks_deleted", "disks_kept", "disks_pending"}`` (``disks_pending``: with ``wait_for_completion=False``,
    the disks still attached, which are not deleted).

    :param name: the instance to delete. Templated.
    :param zone: its zone. Templated.
    :param restore_id: the ``restore_id`` of the restore whose instance this is (from its XCom, e.g.
        ``"{{ ti.xcom_pull(task_ids='restore')['restore_id'] }}"``): of this DAG's restores (and
        ``allow_dag_ids``'), only the instance that restore made is deleted. It narrows and never widens: it is
        templated, and readable in any restored instance's labels. An empty rendering means not given.
    :param allow_dag_ids: other DAGs whose restores this task may delete too (by DAG id); by default only
        this DAG's. Not templated.
    :param project_id: its project; defaults to the connection's. Templated.
    :param request_id: a fixed requestId (UUID) instead of the task-derived one. Templated.
    :param wait_for_completion: wait until the instance is gone.
    :param deferrable: wait in the triggerer instead of holding a worker slot.
    :param poll_interval: seconds between checks where polling is needed.
    :param timeout: seconds to wait before failing.
    :param requests_per_minute_per_project: while deferred, the most requests per minute this wait may
        cost the project across all triggerers, instead of ``[machine_images] requests_per_minute_per_project``
        (None: that), for the reads made for this wait alone, never above the configured total.
    :param api_version: ``beta`` or ``v1``.
    :param gcp_conn_id: the Airflow connection to Google Cloud. Templated.
    :param impersonation_chain: service account(s) to impersonate. Templated.
    :param api_endpoint: another API root (e.g. the emulator), one ``[machine_images] allowed_endpoints`` lists.
    """

    template_fields: Sequence[str] = connection_template_fields("name", "zone", "request_id", "restore_id")
    ui_color = "#fbe3d9"

    def __init__(
        self,
        *,
        name: str,
        zone: str,
        restore_id: str | None = None,
        allow_dag_ids: list[str] | tuple[str, ...] = (),
        request_id: str | None = None,
        wait_for_completion: bool = True,
        deferrable: bool = DEFAULT_DEFERRABLE,
        poll_interval: float = 10.0,
        timeout: float = 3600.0,
        requests_per_minute_per_project: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            wait_for_completion=wait_for_completion,
            deferrable=deferrable,
            poll_interval=poll_interval,
            timeout=timeout,
            requests_per_minute_per_project=requests_per_minute_per_project,
            **kwargs,
        )
        self.name = name
        self.zone = zone
        self.restore_id = restore_id
        if isinstance(allow_dag_ids, str) or not all(isinstance(d, str) and d for d in allow_dag_ids):
            raise MachineImageValidationError(
                "allow_dag_ids", "must be a list of DAG ids (non-empty strings)", show_value(allow_dag_ids)
            )
        self.allow_dag_ids = tuple(allow_dag_ids)
        self.request_id = request_id
        if self.made_from_dag_file:  # written literally: checked now (a region as the zone fails the import)
            for value, check in (
                (name, lambda text: validate_machine_image_name(text, "name")),
                (zone, lambda text: validate_zone(text, "zone")),
                (request_id, lambda text: text is None or validate_request_id(text)),
            ):
                if is_literal(value):
                    check(value)

    def prepare_request(self, context: Context) -> DeleteRequest:
        """The delete of this task instance (arguments validated); no request is sent.

        :param context: the task's context.
        """
        fixed = validate_request_id(self.request_id) if self.request_id is not None else None
        zone = validate_zone(self.zone, "zone")
        name = validate_machine_image_name(self.name, "name")
        restore_id = None
        if self.restore_id is not None and self.restore_id != "":
            if not isinstance(self.restore_id, str) or not re.fullmatch(_RESTORE_ID_PATTERN, self.restore_id):
                raise MachineImageValidationError(
                    "restore_id", "must be a restore's restore_id (32 hexadecimal digits, from its XCom)",
                    show_value(self.restore_id),
                )  # fmt: skip
            restore_id = self.restore_id
        project_id = self.resolve_project_id()
        identity = TaskInstanceIdentity.of(context["ti"])
        request_ids = RequestIds(identity, project_id, instance_key(zone, name), "delete", fixed=fixed)
        ownership = RestoreOwnership((identity.dag_id, *self.allow_dag_ids), restore_id=restore_id)
        return DeleteRequest(RestoredInstanceDeleteTarget(zone, ownership), project_id, name, request_ids)
