"""Operators that restore a machine image into a new instance, and delete such an instance again.

DAG files import this module at parse time, so nothing here loads Google, ``requests`` or
``aiohttp`` code. The steps of a restore live in :mod:`airflow_machine_images.flows.restore`, those
of a delete in :mod:`airflow_machine_images.flows.restore_cleanup`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_machine_images.api.schema import machine_image_schemas
from airflow_machine_images.bodies.instance import RESTORE_LABEL_KEYS, build_instance_body, restore_labels
from airflow_machine_images.bodies.labels import default_labels, merge_default_labels
from airflow_machine_images.compat import conf
from airflow_machine_images.events import error_from_event
from airflow_machine_images.exceptions import (
    MachineImageValidationError,
    OperationFailedError,
    ResubmissionNeeded,
    failing_on_bad_input,
)
from airflow_machine_images.flows import restore as restore_flow
from airflow_machine_images.flows import restore_cleanup
from airflow_machine_images.flows.deadlines import Deadline
from airflow_machine_images.flows.request_ids import (
    RequestIds,
    TaskInstanceIdentity,
    task_instance_key,
    with_resubmissions,
)
from airflow_machine_images.flows.restore import RestoreRequest, RestoreState
from airflow_machine_images.hooks.connection import connection_template_fields
from airflow_machine_images.links import InstanceLink
from airflow_machine_images.operators.machine_images import (
    IF_EXISTS_CHOICES,
    ComputeEngineMachineImageBaseOperator,
    CreateAndWaitBaseOperator,
)
from airflow_machine_images.triggers.waits import MachineImageOperationTrigger
from airflow_machine_images.validation import (
    parse_machine_image_ref,
    validate_bool,
    validate_choice,
    validate_labels,
    validate_machine_image_name,
    validate_optional_positive_int,
    validate_positive_number,
    validate_request_id,
    validate_zone,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

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
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 10.0,
        timeout: float = 3600.0,
        requests_per_minute_per_project: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
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
        self.wait_for_completion = validate_bool(wait_for_completion, "wait_for_completion")
        self.deferrable = validate_bool(deferrable, "deferrable")
        self.poll_interval = validate_positive_number(poll_interval, "poll_interval")
        self.timeout = validate_positive_number(timeout, "timeout")
        self.requests_per_minute_per_project = validate_optional_positive_int(
            requests_per_minute_per_project, "requests_per_minute_per_project"
        )

    def prepare_request(self, context: Context) -> RestoreRequest:
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
        labels = merge_default_labels({**given, **restore_labels(image_name)}, default_labels(identity))
        request = RestoreRequest(
            project_id=project_id,
            zone=zone,
            name=name,
            image_project=image_project,
            image_name=image_name,
            body={},
            request_ids=RequestIds(identity, project_id, _instance_key(zone, name), "restore", fixed=request_id),
            owner_key=task_instance_key(identity),
            if_exists=self.if_exists,
        )
        body = build_instance_body(
            name=name,
            zone=zone,
            source_machine_image=request.source_machine_image,
            machine_type=self.machine_type,
            network_interfaces=self.network_interfaces,
            labels=labels,
            metadata=self.metadata,
            description=self.description,
            body=self.body,
            schemas=machine_image_schemas(self.api_version),
        )
        return replace(request, body=body)

    def _prepare_or_fail(self, context: Context) -> RestoreRequest:
        with failing_on_bad_input():
            return self.prepare_request(context)

    def execute(self, context: Context) -> dict[str, Any]:
        request = self._prepare_or_fail(context)
        console_url = InstanceLink.persist(
            context, self, project_id=request.project_id, zone=request.zone, name=request.name
        )
        self.log.info(
            "Restoring %s into instance %s in %s/%s (console: %s)",
            request.source_machine_image,
            request.name,
            request.project_id,
            request.zone,
            console_url,
        )
        self._deadline = Deadline.after(self.timeout)
        self.hook.deadline = self._deadline.at
        return self._restore(context, request, first_generation=0)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the triggerer: take up the restore where it stands and return the summary.

        :param context: the task's context.
        :param event: the operation trigger's event.
        """
        request = self._prepare_or_fail(context)
        InstanceLink.persist(context, self, project_id=request.project_id, zone=request.zone, name=request.name)
        self._deadline = Deadline.from_event(event, self.timeout)
        self.hook.deadline = self._deadline.at
        try:
            state = restore_flow.resume(self.hook, request, event, self.log)
            return self._until_running(request, state)
        except ResubmissionNeeded as why:
            generation = int((event.get("extra") or {}).get("generation", 0))
            return self._restore(context, request, first_generation=generation + 1, reason=why)

    def _restore(
        self, context: Context, request: RestoreRequest, first_generation: int, reason: ResubmissionNeeded | None = None
    ) -> dict[str, Any]:
        def attempt(generation: int, is_retry: bool) -> dict[str, Any]:
            state = restore_flow.submit(self.hook, request, generation, is_retry=is_retry, log=self.log)
            return self._until_running(request, state)

        return self._submit_until_usable(
            context, attempt, first_generation=first_generation, what=f"Instance {request.name}", reason=reason
        )

    def _until_running(self, request: RestoreRequest, state: RestoreState) -> dict[str, Any]:
        """Wait for the zonal operation (here, or deferred), then until the instance is RUNNING; the summary.

        With ``wait_for_completion=False`` the summary of the state as it is.
        """
        if state.operation_pending:
            if not self.wait_for_completion:
                return state.summary(request)
            if self.deferrable:
                self._defer(request, state)
            waited = state
            state = self._wait_out_operation(
                state.operation,
                project_id=request.project_id,
                zone=request.zone,
                finished=lambda op: restore_flow.finish_operation(self.hook, request, waited, op, self.log),
                failed=lambda failure: restore_flow.on_operation_failed(self.hook, request, waited, failure, self.log),
            )
        if state.instance_pending and self.wait_for_completion:
            # PROVISIONING/STAGING right after the operation: seconds, so read on the worker.
            state = restore_flow.wait_until_running(
                self.hook,
                request,
                state,
                timeout=self._deadline.remaining(),
                poll_interval=min(self.poll_interval, 5.0),
                log=self.log,
            )
        return state.summary(request)

    def _defer(self, request: RestoreRequest, state: RestoreState) -> None:
        operation_name = str((state.operation or {}).get("name"))
        self.log.info("Deferring until zonal operation %s is DONE", operation_name)
        self.defer(
            trigger=MachineImageOperationTrigger(
                operation_name=operation_name,
                zone=request.zone,
                project_id=request.project_id,
                poll_interval=self.poll_interval,
                deadline=self._deadline.at,
                event_extra=restore_flow.trigger_extra(state),
                requests_per_minute_per_project=self.requests_per_minute_per_project,
                **self.connection_kwargs(),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self._deadline.remaining()),
        )


class ComputeEngineDeleteRestoredInstanceOperator(ComputeEngineMachineImageBaseOperator):
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
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 10.0,
        timeout: float = 3600.0,
        requests_per_minute_per_project: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.zone = zone
        self.request_id = request_id
        self.wait_for_completion = validate_bool(wait_for_completion, "wait_for_completion")
        self.deferrable = validate_bool(deferrable, "deferrable")
        self.poll_interval = validate_positive_number(poll_interval, "poll_interval")
        self.timeout = validate_positive_number(timeout, "timeout")
        self.requests_per_minute_per_project = validate_optional_positive_int(
            requests_per_minute_per_project, "requests_per_minute_per_project"
        )

    def _request_ids(self, context: Context) -> tuple[RequestIds, str, str]:
        """The requestIds of this task instance's delete, the zone and the name (arguments validated)."""
        with failing_on_bad_input():
            fixed = validate_request_id(self.request_id) if self.request_id is not None else None
            zone = validate_zone(self.zone, "zone")
            name = validate_machine_image_name(self.name, "name")
            project_id = self.resolve_project_id()
        identity = TaskInstanceIdentity.of(context["ti"])
        return RequestIds(identity, project_id, _instance_key(zone, name), "delete", fixed=fixed), zone, name

    def execute(self, context: Context) -> dict[str, Any]:
        request_ids, zone, name = self._request_ids(context)
        self.log.info("Deleting restored instance %s in %s/%s", name, request_ids.project_id, zone)
        self._deadline = Deadline.after(self.timeout)
        self.hook.deadline = self._deadline.at
        return self._delete(request_ids, zone, name, first_generation=0)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the triggerer: confirm the instance is gone.

        :param context: the task's context.
        :param event: the operation trigger's event.
        """
        request_ids, zone, name = self._request_ids(context)
        self._deadline = Deadline.from_event(event, self.timeout)
        self.hook.deadline = self._deadline.at
        extra = event.get("extra") or {}
        generation = int(extra.get("generation", 0))
        if event.get("status") != "success":
            failure = error_from_event(event)
            if extra.get("replayed") and isinstance(failure, OperationFailedError):
                why = ResubmissionNeeded(f"Delete of {name} failed in an earlier try ({failure})")
                return self._delete(request_ids, zone, name, first_generation=generation + 1, reason=why)
            raise failure
        started = restore_cleanup.InstanceDeletion(
            request_ids.project_id,
            zone,
            name,
            str(extra.get("request_id")),
            instance_id=extra.get("instance_id"),
            operation=event.get("operation"),
            replayed=bool(extra.get("replayed")),
        )
        try:
            return restore_cleanup.confirm_gone(self.hook, started, event.get("operation") or {}, self.log).summary()
        except ResubmissionNeeded as why:
            return self._delete(request_ids, zone, name, first_generation=generation + 1, reason=why)

    def _delete(
        self,
        request_ids: RequestIds,
        zone: str,
        name: str,
        first_generation: int,
        reason: ResubmissionNeeded | None = None,
    ) -> dict[str, Any]:
        def attempt(generation: int) -> dict[str, Any]:
            started = restore_cleanup.start_delete(
                self.hook, request_ids.project_id, zone, name, request_ids(generation), self.log
            )
            if not started.deleted or not self.wait_for_completion:
                return started.summary()
            if self.deferrable and started.pending:
                self.defer(
                    trigger=MachineImageOperationTrigger(
                        operation_name=str((started.operation or {}).get("name")),
                        zone=zone,
                        project_id=started.project_id,
                        poll_interval=self.poll_interval,
                        deadline=self._deadline.at,
                        event_extra={
                            "generation": generation,
                            "request_id": started.request_id,
                            "instance_id": started.instance_id,
                            "replayed": started.replayed,
                        },
                        requests_per_minute_per_project=self.requests_per_minute_per_project,
                        **self.connection_kwargs(),
                    ),
                    method_name="execute_complete",
                    timeout=timedelta(seconds=self._deadline.remaining()),
                )
            finished = restore_cleanup.wait_until_gone(
                self.hook, started, timeout=self._deadline.remaining(), poll_interval=self.poll_interval, log=self.log
            )
            return finished.summary()

        return with_resubmissions(
            attempt, first_generation=first_generation, what=f"Instance {name}", log=self.log, reason=reason
        )
