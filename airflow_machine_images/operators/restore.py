"""Operators that restore a machine image into a new instance, and delete such an instance again.

DAG files import this module at parse time, so nothing here loads Google, ``requests`` or
``aiohttp`` code. A restore is the one create flow (:mod:`airflow_machine_images.flows.create`) with
the restored-instance target of :mod:`airflow_machine_images.flows.instance`; its cleanup is the one
delete flow (:mod:`airflow_machine_images.flows.delete`) with the target that deletes only what the
deleting task owns (:mod:`airflow_machine_images.flows.instance_delete`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from airflow_machine_images.api.schema import machine_image_schemas
from airflow_machine_images.api.serial_console import DEFAULT_BOOT_PATTERN, DEFAULT_FAILURE_PATTERN
from airflow_machine_images.bodies.instance import (
    RESTORE_LABEL_KEYS,
    RestoreOwnership,
    build_instance_body,
    restore_labels,
)
from airflow_machine_images.bodies.keys import parse_key_argument
from airflow_machine_images.bodies.labels import default_labels, merge_default_labels
from airflow_machine_images.exceptions import (
    InstanceNotRunningError,
    MachineImageValidationError,
    failing_on_bad_input,
)
from airflow_machine_images.flows.boot import BootCheck
from airflow_machine_images.flows.create import CreateRequest
from airflow_machine_images.flows.delete import DeleteRequest
from airflow_machine_images.flows.instance import RestoredInstanceTarget
from airflow_machine_images.flows.instance_delete import (
    RestoredInstanceDeleteTarget,
    clean_up_failed_restore,
    instance_key,
)
from airflow_machine_images.flows.request_ids import RequestIds, TaskInstanceIdentity, task_instance_key
from airflow_machine_images.hooks.connection import connection_template_fields
from airflow_machine_images.links import InstanceLink
from airflow_machine_images.operators.base import (
    DEFAULT_DEFERRABLE,
    IF_EXISTS_CHOICES,
    CreateAndWaitBaseOperator,
    DeleteAndConfirmBaseOperator,
    context_is_retry,
)
from airflow_machine_images.operators.boot import boot_outcome, verify_boot
from airflow_machine_images.validation import (
    parse_machine_image_ref,
    validate_bool,
    validate_choice,
    validate_labels,
    validate_machine_image_name,
    validate_request_id,
    validate_zone,
)
from airflow_machine_images.validation.console import validate_console_pattern
from airflow_machine_images.validation.primitives import show_value
from airflow_machine_images.validation.templates import is_templated

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.providers.common.compat.sdk import Context

__all__ = ["ComputeEngineDeleteRestoredInstanceOperator", "ComputeEngineRestoreMachineImageOperator"]


#: A ``restore_id``: a restore task instance's key (``flows.request_ids.task_instance_key``).
_RESTORE_ID: re.Pattern[str] = re.compile(r"[0-9a-f]{32}")


def _protection(argument: bool | None, body: object) -> bool | None:
    """The ``deletion_protection`` to send: the argument, except that its default (False) yields to a
    ``deletionProtection`` a DAG written before the argument existed sets in ``body``.

    :param argument: the operator's ``deletion_protection``.
    :param body: the operator's ``body``, parsed.
    """
    if argument is False and isinstance(body, dict) and "deletionProtection" in body:
        return None
    return argument


class ComputeEngineRestoreMachineImageOperator(CreateAndWaitBaseOperator):
    """Create a new instance from a machine image (``instances.insert`` with ``sourceMachineImage``), exactly once.

    The insert carries a ``requestId`` derived from the task instance (never the try number), so a
    retry, a cleared task or a crashed worker sends the same id and the server answers with the
    original zonal operation instead of starting a second instance. The operator waits for that
    operation (``zoneOperations.wait`` long-polls, or the triggerer), reads the instance back and
    waits until it is ``RUNNING``.

    The instance carries the labels ``restored-by=airflow-machine-images`` and ``restored-from=<image>``,
    and binds itself to who made it: ``restore-dag`` (a key of this DAG's id) and ``restore-id`` (this task
    instance's key, returned as ``restore_id``), plus ``managed-by``, ``airflow-dag``, ``airflow-task``,
    ``airflow-ti``. :class:`ComputeEngineDeleteRestoredInstanceOperator` deletes only instances bound to
    its own DAG (or to the restore it is given).

    Deletion protection: an instance restored from a machine image inherits the protection its source
    had (``sourceInstanceProperties.deletionProtection``); a drill's scratch instance must be deletable, so
    ``deletion_protection=False`` is sent by default. If the restore ends in a state from which RUNNING
    will not come (TERMINATED, ...), what it made is deleted again (only what this task instance made),
    disks included, and the task fails saying so.

    .. seealso::
        https://cloud.google.com/compute/docs/machine-images/create-instance-from-machine-image

    Returns ``{"project_id", "zone", "name", "self_link", "operation_name", "request_id", "status",
    "source_machine_image", "id", "restore_id", "deletion_protection", "disks", "reused", "replayed",
    "console_url"}``.

    :param name: the new instance's name. Templated.
    :param zone: its zone, e.g. ``us-central1-a``. Templated.
    :param source_machine_image: the image: ``NAME`` (in ``project_id``), ``projects/P/global/machineImages/N``
        (e.g. a backup project) or a full URL. Templated.
    :param machine_type: another machine type than the image's: ``e2-standard-2`` or
        ``zones/ZONE/machineTypes/TYPE``. Templated.
    :param network_interfaces: other ``networkInterfaces`` than the image's (NetworkInterface dicts). Templated.
    :param labels: labels for the instance; ``restored-by``, ``restored-from``, ``restore-dag`` and ``restore-id``
        are reserved. Templated.
    :param metadata: metadata for the instance: a dict of keys to string values. Templated.
    :param description: the instance description. Templated.
    :param body: any other Instance fields; unknown or output-only fields are rejected before any request. Templated.
    :param request_id: a fixed requestId (UUID) instead of the task-derived one. Templated.
    :param deletion_protection: ``False`` (default: a drill's instance must be deletable), ``True``, or
        ``None`` to keep what the image carries from its source. A ``deletionProtection`` in ``body`` (the
        way before this argument) is sent when the argument is left at its default.
    :param service_accounts: the instance's ``serviceAccounts`` (ServiceAccount dicts). Required when the image
        is in another project than the instance: Compute Engine then refuses the image's own. Templated.
    :param source_machine_image_encryption_key: the CustomerEncryptionKey protecting the image (``rawKey``,
        ``rsaEncryptedKey`` or ``kmsKeyName``), required to restore an image made with one. Templated; masked
        like every key (logs, rendered fields, XCom, errors).
    :param if_exists: ``"reuse"``: an existing instance of that name restored from the same image by this DAG
        is success (waited for until RUNNING), any other fails naming it; ``"fail"``: any existing instance
        fails, except one an earlier try of this task instance made (its ``airflow-ti`` label). Restoring
        across projects also needs ``network_interfaces`` of the instance's project: the image's name
        networks of its own project, which Compute Engine refuses there.
    :param verify_boot: once RUNNING, also prove the guest booted: read its serial console until a boot line
        (:class:`~airflow_machine_images.operators.ComputeEngineVerifyBootOperator`'s check, by the instance's id,
        within ``timeout``); the XCom gains ``boot``. A failed check fails the task and leaves the instance (a
        drill's cleanup deletes it). Default False.
    :param boot_pattern: the boot line's regular expression, with ``verify_boot`` (default: systemd, a login
        prompt, cloud-init, Windows; see docs/restore-drills.md). Templated.
    :param project_id: the project the instance is created in; defaults to the connection's. Templated.
    :param api_version: ``beta`` or ``v1``.
    :param wait_for_completion: wait until the instance is RUNNING; if False, return once the insert is
        accepted (wait with ``ComputeEngineMachineImageOperationSensor(operation_name=..., zone=...)``).
    :param deferrable: wait for the operation in the triggerer instead of holding a worker slot.
    :param poll_interval: seconds between checks where polling is needed.
    :param timeout: seconds to wait for the instance before failing.
    :param requests_per_minute_per_project: while deferred, the most requests per minute this wait may
        cost the project across all triggerers, instead of ``[machine_images] requests_per_minute_per_project``
        (None: that), for the reads made for this wait alone, never above the configured total.
    :param gcp_conn_id: the Airflow connection to Google Cloud. Templated.
    :param impersonation_chain: service account(s) to impersonate. Templated.
    :param api_endpoint: another API root (e.g. the emulator), one ``[machine_images] allowed_endpoints`` lists.
    """

    template_fields: Sequence[str] = connection_template_fields(
        "name",
        "zone",
        "source_machine_image",
        "machine_type",
        "network_interfaces",
        "labels",
        "metadata",
        "description",
        "body",
        "request_id",
        "service_accounts",
        "source_machine_image_encryption_key",
        "boot_pattern",
    )
    template_fields_renderers = {"labels": "json", "body": "json", "metadata": "json", "network_interfaces": "json"}
    key_fields = ("body", "source_machine_image_encryption_key")
    ui_color = "#d9fbe3"
    operator_extra_links = (InstanceLink(),)
    #: :class:`InstanceLink` reads the URL from the running operator.
    records_console_url = True

    def __init__(
        self,
        *,
        name: str,
        zone: str,
        source_machine_image: str,
        machine_type: str | None = None,
        network_interfaces: list[dict[str, Any]] | None = None,
        labels: dict[str, str] | None = None,
        metadata: dict[str, Any] | None = None,
        description: str | None = None,
        body: dict[str, Any] | None = None,
        request_id: str | None = None,
        deletion_protection: bool | None = False,
        service_accounts: list[dict[str, Any]] | None = None,
        source_machine_image_encryption_key: dict[str, str] | str | None = None,
        if_exists: str = "reuse",
        verify_boot: bool = False,
        boot_pattern: str = DEFAULT_BOOT_PATTERN,
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
        self.source_machine_image = source_machine_image
        self.machine_type = machine_type
        self.network_interfaces = network_interfaces
        self.labels = labels
        self.metadata = metadata
        self.description = description
        self.body = body
        self.request_id = request_id
        if deletion_protection is not None and not isinstance(deletion_protection, bool):
            raise MachineImageValidationError(
                "deletion_protection", "must be True, False or None", show_value(deletion_protection)
            )
        self.deletion_protection = deletion_protection
        self.service_accounts = service_accounts
        self.source_machine_image_encryption_key = source_machine_image_encryption_key
        self.if_exists = validate_choice(if_exists, "if_exists", IF_EXISTS_CHOICES)
        self.verify_boot = validate_bool(verify_boot, "verify_boot")
        self.boot_pattern = boot_pattern
        if not is_templated(boot_pattern):  # checked now, when the DAG is parsed
            validate_console_pattern(boot_pattern, "boot_pattern")

    def execute(self, context: Context) -> dict[str, Any]:
        try:
            return super().execute(context)
        except InstanceNotRunningError as error:
            raise self._after_unusable(context, error) from error

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the triggerer (see :meth:`CreateAndWaitBaseOperator.execute_complete`).

        :param context: the task's context.
        :param event: the trigger's event.
        """
        try:
            return super().execute_complete(context, event)
        except InstanceNotRunningError as error:
            raise self._after_unusable(context, error) from error

    def _after_unusable(self, context: Context, error: InstanceNotRunningError) -> InstanceNotRunningError:
        """Delete what this restore made (only if this task instance made it); the error, saying what was done."""
        request = self.prepare_request(context)
        done = clean_up_failed_restore(
            self.hook, request, dag_id=context["ti"].dag_id, is_retry=context_is_retry(context), log=self.log
        )
        self.log.warning("Restored instance %s is unusable: %s", request.name, done)
        return InstanceNotRunningError(f"{error} After that, {done}.")

    def prepare_request(self, context: Context) -> CreateRequest:
        """Validate every argument and build the Instance body; no request is sent.

        :param context: the task's context (the task instance names the default labels).
        :raises MachineImageValidationError: an argument breaks a rule (the message names it).
        """
        name = validate_machine_image_name(self.name, "name")
        zone = validate_zone(self.zone, "zone")
        request_id = validate_request_id(self.request_id) if self.request_id is not None else None
        project_id = self.resolve_project_id()
        image_project, image_name = parse_machine_image_ref(
            self.source_machine_image, default_project=project_id, parameter="source_machine_image"
        )
        validate_machine_image_name(image_name, "source_machine_image")  # a name (a label value), not an id
        identity = TaskInstanceIdentity.of(context["ti"])
        given = validate_labels(self.labels if self.labels is not None else {}, "labels")
        reserved = sorted(RESTORE_LABEL_KEYS.intersection(given))
        if reserved:
            raise MachineImageValidationError(f"labels[{reserved[0]!r}]", "is set by the restore operator itself")
        if self.verify_boot:  # checked now, before the restore: not after a VM was made
            validate_console_pattern(self.boot_pattern, "boot_pattern")
        target = RestoredInstanceTarget(zone, image_project, image_name, dag_id=identity.dag_id)
        owner = restore_labels(image_name, dag_id=identity.dag_id, restore_id=task_instance_key(identity))
        body = parse_key_argument(self.body)
        body = build_instance_body(
            name=name,
            zone=zone,
            source_machine_image=target.source_machine_image,
            machine_type=self.machine_type,
            network_interfaces=self.network_interfaces,
            labels=merge_default_labels({**given, **owner}, default_labels(identity)),
            metadata=self.metadata,
            description=self.description,
            body=body,  # type: ignore[arg-type]  # checked by the builder
            schemas=machine_image_schemas(self.api_version),
            deletion_protection=_protection(self.deletion_protection, body),
            service_accounts=self.service_accounts,
            source_machine_image_encryption_key=parse_key_argument(self.source_machine_image_encryption_key),  # type: ignore[arg-type]
        )
        return CreateRequest(
            target=target,
            project_id=project_id,
            name=name,
            body=body,
            request_ids=RequestIds(identity, project_id, instance_key(zone, name), "restore", fixed=request_id),
            owner_key=task_instance_key(identity),
            if_exists=self.if_exists,
        )

    def succeeded(self, context: Context, summary: dict[str, Any]) -> dict[str, Any]:
        """The summary, with ``boot`` (the boot check's summary) when ``verify_boot`` and the instance is RUNNING.

        The check is :class:`~airflow_machine_images.operators.boot.ComputeEngineVerifyBootOperator`'s, run
        within this task's deadline on the instance this restore made (by its id); a deferred check resumes in
        :meth:`execute_boot_complete`.
        """
        if not self.verify_boot or summary.get("status") != "RUNNING":
            return summary
        check = self._boot_check(summary)
        return {
            **summary,
            "boot": verify_boot(self, check, extra={"restore": summary}, method_name="execute_boot_complete"),
        }

    def execute_boot_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the boot check in the triggerer: the restore's summary with ``boot``, or the boot failure.

        :param context: the task's context.
        :param event: the event of :class:`~airflow_machine_images.triggers.InstanceBootTrigger`.
        """
        summary = dict((event.get("extra") or {}).get("restore") or {})
        with failing_on_bad_input():
            check = self._boot_check(summary)
        return {**summary, "boot": boot_outcome(self, check, event)}

    def _boot_check(self, summary: dict[str, Any]) -> BootCheck:
        """The boot check of the restored instance: by its id, in its project and zone."""
        return BootCheck.checked(
            project_id=summary.get("project_id"),
            zone=summary.get("zone"),
            instance=str(summary.get("id")),
            boot_pattern=self.boot_pattern,
            failure_pattern=DEFAULT_FAILURE_PATTERN,
        )

    def persist_link(self, context: Context, request: CreateRequest) -> str:
        """Store the instance's console link; return its URL."""
        zone = str(request.target.zone)
        return InstanceLink.persist(context, self, project_id=request.project_id, zone=zone, name=request.name)


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

    def prepare_request(self, context: Context) -> DeleteRequest:
        """The delete of this task instance (arguments validated); no request is sent.

        :param context: the task's context.
        """
        fixed = validate_request_id(self.request_id) if self.request_id is not None else None
        zone = validate_zone(self.zone, "zone")
        name = validate_machine_image_name(self.name, "name")
        restore_id = None
        if self.restore_id is not None and self.restore_id != "":
            if not isinstance(self.restore_id, str) or not _RESTORE_ID.fullmatch(self.restore_id):
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
