"""Operators that restore a machine image into a new instance, and delete such an instance again.

DAG files import this module at parse time, so nothing here loads Google, ``requests`` or
``aiohttp`` code. A restore is the one create flow (:mod:`airflow_machine_images.flows.create`) with
the restored-instance target of :mod:`airflow_machine_images.flows.instance`; its cleanup is the one
delete flow (:mod:`airflow_machine_images.flows.delete`) with the target that refuses any instance a
restore did not make.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_machine_images.api.schema import machine_image_schemas
from airflow_machine_images.bodies.instance import RESTORE_LABEL_KEYS, build_instance_body, restore_labels
from airflow_machine_images.bodies.labels import default_labels, merge_default_labels
from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.flows.create import CreateRequest
from airflow_machine_images.flows.delete import DeleteRequest
from airflow_machine_images.flows.instance import RestoredInstanceDeleteTarget, RestoredInstanceTarget
from airflow_machine_images.flows.request_ids import RequestIds, TaskInstanceIdentity, task_instance_key
from airflow_machine_images.hooks.connection import connection_template_fields
from airflow_machine_images.links import InstanceLink
from airflow_machine_images.operators.base import (
    DEFAULT_DEFERRABLE,
    IF_EXISTS_CHOICES,
    CreateAndWaitBaseOperator,
    DeleteAndConfirmBaseOperator,
)
from airflow_machine_images.validation import (
    parse_machine_image_ref,
    validate_choice,
    validate_labels,
    validate_machine_image_name,
    validate_request_id,
    validate_zone,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.providers.common.compat.sdk import Context

__all__ = ["ComputeEngineDeleteRestoredInstanceOperator", "ComputeEngineRestoreMachineImageOperator"]


def _instance_key(zone: str, name: str) -> str:
    """The resource an instance's requestIds are derived for (zone and name)."""
    return f"zones/{zone}/instances/{name}"


class ComputeEngineRestoreMachineImageOperator(CreateAndWaitBaseOperator):
    """Create a new instance from a machine image (``instances.insert`` with ``sourceMachineImage``), exactly once.

    The insert carries a ``requestId`` derived from the task instance (never the try number), so a
    retry, a cleared task or a crashed worker sends the same id and the server answers with the
    original zonal operation instead of starting a second instance. The operator waits for that
    operation (``zoneOperations.wait`` long-polls, or the triggerer), reads the instance back and
    waits until it is ``RUNNING``.

    The instance carries the labels ``restored-by=airflow-machine-images`` and ``restored-from=<image>``
    (plus ``managed-by``, ``airflow-dag``, ``airflow-task``, ``airflow-ti``), by which
    :class:`ComputeEngineDeleteRestoredInstanceOperator` recognises it.

    .. seealso::
        https://cloud.google.com/compute/docs/machine-images/create-instance-from-machine-image

    Returns ``{"project_id", "zone", "name", "self_link", "operation_name", "request_id", "status",
    "source_machine_image", "id", "reused", "replayed", "console_url"}``.

    :param name: the new instance's name. Templated.
    :param zone: its zone, e.g. ``us-central1-a``. Templated.
    :param source_machine_image: the image: ``NAME`` (in ``project_id``), ``projects/P/global/machineImages/N``
        (e.g. a backup project) or a full URL. Templated.
    :param machine_type: another machine type than the image's: ``e2-standard-2`` or
        ``zones/ZONE/machineTypes/TYPE``. Templated.
    :param network_interfaces: other ``networkInterfaces`` than the image's (NetworkInterface dicts). Templated.
    :param labels: labels for the instance; ``restored-by``/``restored-from`` are reserved. Templated.
    :param metadata: metadata for the instance: a dict of keys to string values. Templated.
    :param description: the instance description. Templated.
    :param body: any other Instance fields; unknown or output-only fields are rejected before any request. Templated.
    :param request_id: a fixed requestId (UUID) instead of the task-derived one. Templated.
    :param if_exists: ``"reuse"``: an existing instance of that name restored from the same image is
        success (waited for until RUNNING), any other fails naming it; ``"fail"``: any existing instance
        fails, except one an earlier try of this task instance made (its ``airflow-ti`` label).
    :param project_id: the project the instance is created in; defaults to the connection's. Templated.
    :param api_version: ``beta`` or ``v1``.
    :param wait_for_completion: wait until the instance is RUNNING; if False, return once the insert is
        accepted (wait with ``ComputeEngineMachineImageOperationSensor(operation_name=..., zone=...)``).
    :param deferrable: wait for the operation in the triggerer instead of holding a worker slot.
    :param poll_interval: seconds between checks where polling is needed.
    :param timeout: seconds to wait for the instance before failing.
    :param requests_per_minute_per_project: while deferred, the most requests per minute this wait may
        cost the project across all triggerers, instead of ``[machine_images] requests_per_minute_per_project``
        (None: that); waits on one project share a poller, which keeps to the smallest budget among them.
    :param gcp_conn_id: the Airflow connection to Google Cloud. Templated.
    :param impersonation_chain: service account(s) to impersonate. Templated.
    :param api_endpoint: another API root (e.g. the emulator). Templated.
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
    )
    template_fields_renderers = {"labels": "json", "body": "json", "metadata": "json", "network_interfaces": "json"}
    key_fields = ("body",)
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
        if_exists: str = "reuse",
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
        self.if_exists = validate_choice(if_exists, "if_exists", IF_EXISTS_CHOICES)

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
        target = RestoredInstanceTarget(zone=zone, image_project=image_project, image_name=image_name)
        body = build_instance_body(
            name=name,
            zone=zone,
            source_machine_image=target.source_machine_image,
            machine_type=self.machine_type,
            network_interfaces=self.network_interfaces,
            labels=merge_default_labels({**given, **restore_labels(image_name)}, default_labels(identity)),
            metadata=self.metadata,
            description=self.description,
            body=self.body,
            schemas=machine_image_schemas(self.api_version),
        )
        return CreateRequest(
            target=target,
            project_id=project_id,
            name=name,
            body=body,
            request_ids=RequestIds(identity, project_id, _instance_key(zone, name), "restore", fixed=request_id),
            owner_key=task_instance_key(identity),
            if_exists=self.if_exists,
        )

    def persist_link(self, context: Context, request: CreateRequest) -> str:
        """Store the instance's console link; return its URL."""
        zone = str(request.target.zone)
        return InstanceLink.persist(context, self, project_id=request.project_id, zone=zone, name=request.name)


class ComputeEngineDeleteRestoredInstanceOperator(DeleteAndConfirmBaseOperator):
    """Delete an instance that :class:`ComputeEngineRestoreMachineImageOperator` made, and no other.

    The instance is read first: without the restore labels (``restored-by=airflow-machine-images``
    and ``restored-from``) the task fails at once, without retries, and nothing is deleted, so a
    restore drill can never delete a production instance. The delete names the instance by the id
    just read and carries a task-derived ``requestId``; an instance already gone is success.

    Returns ``{"project_id", "zone", "name", "id", "deleted", "operation_name", "status", "request_id"}``.

    :param name: the instance to delete. Templated.
    :param zone: its zone. Templated.
    :param project_id: its project; defaults to the connection's. Templated.
    :param request_id: a fixed requestId (UUID) instead of the task-derived one. Templated.
    :param wait_for_completion: wait until the instance is gone.
    :param deferrable: wait in the triggerer instead of holding a worker slot.
    :param poll_interval: seconds between checks where polling is needed.
    :param timeout: seconds to wait before failing.
    :param requests_per_minute_per_project: while deferred, the most requests per minute this wait may
        cost the project across all triggerers, instead of ``[machine_images] requests_per_minute_per_project``
        (None: that); waits on one project share a poller, which keeps to the smallest budget among them.
    :param api_version: ``beta`` or ``v1``.
    :param gcp_conn_id: the Airflow connection to Google Cloud. Templated.
    :param impersonation_chain: service account(s) to impersonate. Templated.
    :param api_endpoint: another API root (e.g. the emulator). Templated.
    """

    template_fields: Sequence[str] = connection_template_fields("name", "zone", "request_id")
    ui_color = "#fbe3d9"

    def __init__(
        self,
        *,
        name: str,
        zone: str,
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
        self.request_id = request_id

    def prepare_request(self, context: Context) -> DeleteRequest:
        """The delete of this task instance (arguments validated); no request is sent.

        :param context: the task's context.
        """
        fixed = validate_request_id(self.request_id) if self.request_id is not None else None
        zone = validate_zone(self.zone, "zone")
        name = validate_machine_image_name(self.name, "name")
        project_id = self.resolve_project_id()
        identity = TaskInstanceIdentity.of(context["ti"])
        request_ids = RequestIds(identity, project_id, _instance_key(zone, name), "delete", fixed=fixed)
        return DeleteRequest(RestoredInstanceDeleteTarget(zone), project_id, name, request_ids)
