"""Restoring a machine image into a new instance exactly once, step by step: submit, verify, reuse.

One restore, as :class:`~airflow_machine_images.operators.ComputeEngineRestoreMachineImageOperator`
drives it (the same shape as :mod:`airflow_machine_images.flows.machine_image`, for a zonal resource):

1. :func:`submit` sends ``instances.insert`` with ``sourceMachineImage`` and the generation's
   task-derived ``requestId``. A 409 goes to :func:`adopt_existing`; a running operation is returned
   as it is; a DONE one goes to :func:`finish_operation`.
2. The operator waits for the zonal operation (``zoneOperations.wait`` on the worker, or the
   operation trigger with a ``zone`` in the triggerer), then calls :func:`finish_operation`: "the
   name is taken" adopts, a replayed failure asks for a resubmission, success is read back
   (:func:`read_back`).
3. An instance not RUNNING yet (PROVISIONING, STAGING) is read again until it is
   (:func:`wait_until_running`); the state's :meth:`RestoreState.summary` is the task's XCom.

Every step returns a :class:`RestoreState`, or raises
:class:`~airflow_machine_images.exceptions.ResubmissionNeeded` when the server's answer leaves no
instance and submitting again (the next generation's ``requestId``) cannot duplicate one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from airflow_machine_images.api.responses import raise_for_operation_error
from airflow_machine_images.bodies.instance import is_restored
from airflow_machine_images.bodies.labels import OWNER_LABEL
from airflow_machine_images.events import error_from_event, operation_failure_from_event
from airflow_machine_images.exceptions import (
    InstanceConflictError,
    InstanceNotRunningError,
    OperationFailedError,
    OperationTimeoutError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
    ResubmissionNeeded,
)
from airflow_machine_images.flows.machine_image import is_replay, log_warnings, raise_unless_name_taken
from airflow_machine_images.links import instance_console_url
from airflow_machine_images.validation import MachineImageValidationError, parse_machine_image_ref

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_machine_images.flows.request_ids import RequestIds
    from airflow_machine_images.hooks.sync import ComputeEngineMachineImageHook
    from airflow_machine_images.logs import TaskLogger as Log

#: Instance states on the way to RUNNING (Compute Engine docs, "VM instance life cycle").
STARTING_STATES = frozenset({"PENDING", "PROVISIONING", "STAGING"})


@dataclass(frozen=True)
class RestoreRequest:
    """A validated restore: everything the API calls need, resolved before any request is sent.

    :param project_id: the new instance's project.
    :param zone: its zone.
    :param name: its name.
    :param image_project: the source machine image's project.
    :param image_name: the source machine image's name.
    :param body: the Instance resource (kept out of ``repr``: metadata may hold scripts or keys).
    :param request_ids: the requestId of each generation.
    :param owner_key: the task-instance key, as in the instance's ``airflow-ti`` label.
    :param if_exists: ``"reuse"`` or ``"fail"``.
    """

    project_id: str
    zone: str
    name: str
    image_project: str
    image_name: str
    body: dict[str, Any] = field(repr=False)
    request_ids: RequestIds
    owner_key: str
    if_exists: str = "reuse"

    @property
    def source_machine_image(self) -> str:
        """The image as a partial URL: ``projects/P/global/machineImages/N``."""
        return f"projects/{self.image_project}/global/machineImages/{self.image_name}"


@dataclass(frozen=True)
class RestoreState:
    """Where one restore stands.

    :param generation: which submission of this task instance it is (0 first).
    :param request_id: the requestId sent (None when an existing instance was adopted).
    :param operation: the zonal insert operation, as last seen.
    :param instance: the instance, once read back.
    :param reused: an existing instance was adopted instead of created.
    :param replayed: the server answered the requestId with an earlier submission's operation.
    """

    generation: int
    request_id: str | None
    operation: Mapping[str, Any] | None = None
    instance: Mapping[str, Any] | None = None
    reused: bool = False
    replayed: bool = False

    @property
    def operation_pending(self) -> bool:
        """Compute Engine is still running the insert operation."""
        return self.instance is None and self.operation is not None and self.operation.get("status") != "DONE"

    @property
    def instance_pending(self) -> bool:
        """The instance exists but is not RUNNING yet."""
        return self.instance is not None and self.instance.get("status") != "RUNNING"

    def summary(self, request: RestoreRequest) -> dict[str, Any]:
        """The task's XCom: identifiers and facts, never the body.

        :param request: the request this state belongs to.
        """
        operation, instance = self.operation or {}, self.instance or {}
        return {
            "project_id": request.project_id,
            "zone": request.zone,
            "name": request.name,
            "self_link": instance.get("selfLink") or operation.get("targetLink"),
            "operation_name": operation.get("name"),
            "request_id": self.request_id,
            "status": instance.get("status") or "PROVISIONING",
            "source_machine_image": request.source_machine_image,
            "id": instance.get("id"),
            "reused": self.reused,
            "replayed": self.replayed,
            "console_url": instance_console_url(request.project_id, request.zone, request.name),
        }


def submit(
    hook: ComputeEngineMachineImageHook, request: RestoreRequest, generation: int, *, is_retry: bool, log: Log
) -> RestoreState:
    """Send ``instances.insert`` with this generation's requestId; return where it stands.

    :param hook: the hook.
    :param request: the validated request.
    :param generation: the submission number (0 first).
    :param is_retry: this is not the task's first try.
    :param log: the task's logger.
    """
    request_id = request.request_ids(generation)
    sent_at = time.time()
    try:
        operation = hook.insert_instance(
            zone=request.zone,
            body=request.body,
            source_machine_image=request.source_machine_image,
            request_id=request_id,
            project_id=request.project_id,
        )
    except ResourceAlreadyExistsError:
        return adopt_existing(hook, request, generation, log)
    replayed = is_replay(operation, sent_at) or (is_retry and operation["status"] == "DONE")
    log_warnings(log, operation)
    if replayed:
        log.info(
            "The server answered requestId %s with its original operation %s (%s): an earlier submission of "
            "this task instance made it, so no second instance is created",
            request_id,
            operation["name"],
            operation["status"],
        )
    else:
        log.info(
            "Restore accepted: operation %s (%s), requestId %s", operation["name"], operation["status"], request_id
        )
    state = RestoreState(generation, request_id, operation=operation, replayed=replayed)
    if operation["status"] != "DONE":
        return state
    return finish_operation(hook, request, state, operation, log)


def finish_operation(
    hook: ComputeEngineMachineImageHook,
    request: RestoreRequest,
    state: RestoreState,
    operation: Mapping[str, Any],
    log: Log,
) -> RestoreState:
    """Take a DONE insert operation: adopt on "already exists", raise other failures, else read back.

    :param hook: the hook.
    :param request: the validated request.
    :param state: the state the operation was waited from.
    :param operation: the DONE operation.
    :param log: the task's logger.
    """
    try:
        raise_for_operation_error(operation)
    except OperationFailedError as failure:
        return on_operation_failed(hook, request, state, failure, log)
    log_warnings(log, operation)
    log.info("Operation %s is DONE", operation.get("name"))
    return read_back(hook, request, replace(state, operation=operation), log)


def on_operation_failed(
    hook: ComputeEngineMachineImageHook,
    request: RestoreRequest,
    state: RestoreState,
    failure: OperationFailedError,
    log: Log,
) -> RestoreState:
    """A failure meaning the name is taken adopts the instance; a replayed one is resubmitted; else raise.

    :param hook: the hook.
    :param request: the validated request.
    :param state: the state the operation was waited from.
    :param failure: the operation's failure.
    :param log: the task's logger.
    """
    raise_unless_name_taken(failure, replayed=state.replayed)
    return adopt_existing(hook, request, state.generation, log)


def read_back(
    hook: ComputeEngineMachineImageHook, request: RestoreRequest, state: RestoreState, log: Log
) -> RestoreState:
    """Read the instance a successful operation made; it must exist and come from the requested image.

    :param hook: the hook.
    :param request: the validated request.
    :param state: the state with the DONE operation.
    :param log: the task's logger.
    :raises ResubmissionNeeded: the instance is gone (the server replayed a remembered request).
    """
    try:
        instance = hook.get_instance(zone=request.zone, name=request.name, project_id=request.project_id)
    except ResourceNotFoundError:
        raise ResubmissionNeeded(
            f"Operation {(state.operation or {}).get('name')} for requestId {state.request_id} is DONE, but "
            f"instance {request.name} does not exist in {request.zone}: the server replayed a request it "
            "remembers, and the instance it made has since been deleted",
            fresh=not state.replayed,
        ) from None
    check_source(request, instance)
    _log_instance(log, request, instance)
    return replace(state, instance=instance)


def adopt_existing(
    hook: ComputeEngineMachineImageHook, request: RestoreRequest, generation: int, log: Log
) -> RestoreState:
    """Handle a taken name per ``if_exists``: reuse a restore of the same image (or ours), else fail.

    :param hook: the hook.
    :param request: the validated request.
    :param generation: the submission that met the taken name.
    :param log: the task's logger.
    :raises InstanceConflictError: ``if_exists="fail"``, or the instance is not a restore of the same image.
    """
    try:
        instance = hook.get_instance(zone=request.zone, name=request.name, project_id=request.project_id)
    except ResourceNotFoundError:
        raise ResubmissionNeeded(f"Instance {request.name} was reported to exist but is gone now") from None
    ours = (instance.get("labels") or {}).get(OWNER_LABEL) == request.owner_key
    if request.if_exists == "fail" and not ours:
        raise InstanceConflictError(
            f"Instance {request.name} already exists in {request.project_id}/{request.zone} and if_exists='fail'."
        )
    check_source(request, instance)
    log.info(
        "Instance %s already exists (%s), %s; reusing it",
        request.name,
        instance.get("status"),
        "made by an earlier try of this task instance" if ours else f"restored from {request.image_name}",
    )
    return RestoreState(generation, request_id=None, instance=instance, reused=True)


def check_source(request: RestoreRequest, instance: Mapping[str, Any]) -> None:
    """Fail, naming both, unless ``instance`` is a restore (labels) of the requested machine image.

    :param request: the validated request.
    :param instance: the existing Instance.
    :raises InstanceConflictError: it is another instance.
    """
    existing = instance.get("sourceMachineImage")
    try:
        same = parse_machine_image_ref(existing, default_project=None) == (request.image_project, request.image_name)
    except MachineImageValidationError:
        same = False
    if not (same and is_restored(instance)):
        raise InstanceConflictError(
            f"Instance {request.name} in {request.project_id}/{request.zone} exists but is not a restore of "
            f"{request.source_machine_image} (its source: {existing!r}, labels "
            f"{sorted((instance.get('labels') or {}).items())}); choose another name or delete it."
        )


def wait_until_running(
    hook: ComputeEngineMachineImageHook,
    request: RestoreRequest,
    state: RestoreState,
    *,
    timeout: float,
    poll_interval: float,
    log: Log,
) -> RestoreState:
    """Read the instance until it is RUNNING (it is PROVISIONING or STAGING right after the insert).

    :param hook: the hook.
    :param request: the validated request.
    :param state: a state whose instance is not RUNNING yet.
    :param timeout: seconds to wait.
    :param poll_interval: seconds between reads.
    :param log: the task's logger.
    :raises InstanceNotRunningError: it reached a state from which RUNNING will not come.
    :raises ResubmissionNeeded: it vanished (its creation failed, or it was deleted).
    """
    deadline = time.monotonic() + timeout
    instance = state.instance or {}
    while True:
        status = instance.get("status")
        if status == "RUNNING":
            return replace(state, instance=instance)
        if status not in STARTING_STATES:
            raise InstanceNotRunningError(
                f"Restored instance {request.name} is {status}; it will not become RUNNING by itself."
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise OperationTimeoutError(f"Instance {request.name} was not RUNNING after {timeout:.0f} s ({status}).")
        time.sleep(min(poll_interval, remaining))
        try:
            instance = hook.get_instance(zone=request.zone, name=request.name, project_id=request.project_id)
        except ResourceNotFoundError:
            raise ResubmissionNeeded(
                f"Instance {request.name} vanished while {status} (its creation failed, or it was deleted)",
                fresh=state.request_id is not None and not state.reused and not state.replayed,
            ) from None
        _log_instance(log, request, instance)


def resume(
    hook: ComputeEngineMachineImageHook, request: RestoreRequest, event: Mapping[str, Any], log: Log
) -> RestoreState:
    """Where the restore stands after the operation trigger's event (see :func:`trigger_extra`).

    :param hook: the hook.
    :param request: the validated request.
    :param event: the event of the operation trigger.
    :param log: the task's logger.
    """
    extra = event.get("extra") or {}
    state = RestoreState(
        generation=int(extra.get("generation", 0)),
        request_id=extra.get("request_id"),
        operation=event.get("operation")
        or ({"name": extra["operation_name"]} if extra.get("operation_name") else None),
        replayed=bool(extra.get("replayed", False)),
    )
    if event.get("status") == "success":
        return finish_operation(hook, request, state, event.get("operation") or {}, log)
    failure = operation_failure_from_event(event)
    if failure is None:
        raise error_from_event(event)
    return on_operation_failed(hook, request, state, failure, log)


def trigger_extra(state: RestoreState) -> dict[str, Any]:
    """What the operation trigger hands back unchanged, so that :func:`resume` can rebuild ``state``.

    :param state: the state being waited from.
    """
    return {
        "generation": state.generation,
        "request_id": state.request_id,
        "operation_name": (state.operation or {}).get("name"),
        "replayed": state.replayed,
    }


def _log_instance(log: Log, request: RestoreRequest, instance: Mapping[str, Any]) -> None:
    log.info("Instance %s is %s: %s", request.name, instance.get("status"), instance.get("selfLink"))
