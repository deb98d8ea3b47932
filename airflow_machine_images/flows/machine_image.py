"""Creating one machine image exactly once, step by step: submit, verify what came back, reuse.

One create, as the insert operator drives it:

1. :func:`submit` sends ``machineImages.insert`` with the generation's task-derived ``requestId``.
   A 409 goes to :func:`adopt_existing`; an operation that is still running is returned as it is;
   a DONE one goes to :func:`finish_operation`.
2. The operator waits for a running operation (on the worker, or deferred to the triggerer), then
   calls :func:`finish_operation`: a failure whose code means "the name is taken" is a 409 in
   disguise (:func:`adopt_existing`), any other failure is raised, success is read back
   (:func:`read_back`): the image must exist and come from the requested source instance.
3. An image that is not READY yet is waited for the same way (:func:`wait_for_image` on the
   worker, :func:`resume` after the triggerer), and the state's :meth:`InsertState.summary` is
   the task's XCom.

Every step returns an :class:`InsertState`, or raises
:class:`~airflow_machine_images.exceptions.ResubmissionNeeded` when the server's answer leaves no
image to use and submitting again (the next generation's ``requestId``) cannot duplicate one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from airflow_machine_images.api.redaction import iter_key_material
from airflow_machine_images.api.responses import raise_for_operation_error
from airflow_machine_images.api.timestamps import parse_timestamp
from airflow_machine_images.bodies.labels import OWNER_LABEL
from airflow_machine_images.events import EVENT_NOT_FOUND, error_from_event, operation_failure_from_event
from airflow_machine_images.exceptions import (
    MachineImageConflictError,
    OperationFailedError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
    ResubmissionNeeded,
)
from airflow_machine_images.flows.source_names import SourceNames, has_numbers
from airflow_machine_images.logs import log_operation_warnings
from airflow_machine_images.results import machine_image_summary
from airflow_machine_images.validation import InstanceRef, MachineImageValidationError, parse_source_instance

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_machine_images.flows.request_ids import RequestIds
    from airflow_machine_images.hooks.sync import ComputeEngineMachineImageHook
    from airflow_machine_images.logs import TaskLogger as Log


#: Operation error codes that mean "the name is taken" (the 409 can also arrive inside the operation).
ALREADY_EXISTS_CODES = frozenset({"RESOURCE_ALREADY_EXISTS", "alreadyExists"})


@dataclass(frozen=True)
class InsertRequest:
    """A validated insert: everything the API calls need, resolved before any request is sent.

    :param project_id: the project the image is created in.
    :param name: the image name.
    :param source: the source instance.
    :param body: the MachineImage resource (may hold key material, so it is kept out of ``repr``).
    :param request_ids: the requestId of each generation.
    :param owner_key: the task-instance key, as in the image's ``airflow-ti`` label.
    :param if_exists: ``"reuse"`` or ``"fail"``.
    :param names: canonical forms of source instances given by number, looked up at most once per
        try (:mod:`airflow_machine_images.flows.source_names`).
    """

    project_id: str
    name: str
    source: InstanceRef
    body: dict[str, Any] = field(repr=False)
    request_ids: RequestIds
    owner_key: str
    if_exists: str = "reuse"
    names: SourceNames = field(default_factory=SourceNames, compare=False, repr=False)


@dataclass(frozen=True)
class InsertState:
    """Where one create stands.

    :param generation: which submission of this task instance it is (0 first).
    :param request_id: the requestId sent (None when an existing image was adopted).
    :param operation: the insert operation, as last seen (None when an existing image was adopted).
    :param image: the machine image, once read back.
    :param reused: an existing image was adopted instead of created.
    :param replayed: the server answered the requestId with the operation of an earlier submission
        (a retry, a cleared task, a worker that crashed after submitting).
    """

    generation: int
    request_id: str | None
    operation: Mapping[str, Any] | None = None
    image: Mapping[str, Any] | None = None
    reused: bool = False
    replayed: bool = False

    @property
    def operation_pending(self) -> bool:
        """Compute Engine is still running the insert operation."""
        return self.image is None and self.operation is not None and self.operation.get("status") != "DONE"

    @property
    def image_pending(self) -> bool:
        """The image exists but is not READY yet."""
        return self.image is not None and self.image.get("status") != "READY"

    def summary(self, request: InsertRequest) -> dict[str, Any]:
        """The task's XCom for this state.

        :param request: the request this state belongs to.
        """
        return machine_image_summary(
            project_id=request.project_id,
            name=request.name,
            request_id=self.request_id,
            operation=self.operation,
            image=self.image,
            reused=self.reused,
            replayed=self.replayed,
        )


def submit(
    hook: ComputeEngineMachineImageHook, request: InsertRequest, generation: int, *, is_retry: bool, log: Log
) -> InsertState:
    """Send the insert with this generation's requestId; return where it stands.

    :param hook: the hook.
    :param request: the validated request.
    :param generation: the submission number (0 first).
    :param is_retry: this is not the task's first try (a replayed failure of an earlier try may be
        submitted again).
    :param log: the task's logger.
    """
    request_id = request.request_ids(generation)
    source = source_to_send(hook, request, log)
    sent_at = time.time()
    try:
        operation = hook.insert_machine_image(
            body=request.body,
            source_instance=source,
            request_id=request_id,
            project_id=request.project_id,
        )
    except ResourceAlreadyExistsError:
        return adopt_existing(hook, request, generation, log)
    # An insert answered DONE on a retry is an earlier try's operation: real inserts take minutes.
    replayed = is_replay(operation, sent_at) or (is_retry and operation["status"] == "DONE")
    log_warnings(log, operation)
    if replayed:
        log.info(
            "The server answered requestId %s with its original operation %s (%s, started %s): an earlier "
            "submission of this task instance made it, so nothing new is created",
            request_id,
            operation["name"],
            operation["status"],
            operation.get("insertTime"),
        )
    else:
        log.info("Insert accepted: operation %s (%s), requestId %s", operation["name"], operation["status"], request_id)
    state = InsertState(generation, request_id, operation=operation, replayed=replayed)
    if operation["status"] != "DONE":
        return state
    return finish_operation(hook, request, state, operation, log)


def source_to_send(hook: ComputeEngineMachineImageHook, request: InsertRequest, log: Log) -> str:
    """The ``sourceInstance`` to send: the canonical form (project id, instance name) of a source given
    by project number or numeric id, else the source as given (no API call).

    The canonical form is sent because (1) the read-back must compare the image's ``sourceInstance``
    with the source in canonical form anyway, so the one ``instances.get`` is made in this try either
    way and is cached; (2) ``projects/P/zones/Z/instances/NAME`` is the form the discovery document's
    ``sourceInstance`` text documents, while a numeric instance id there is not documented; (3) the
    image then names its source in one form whether the server translates numbers or echoes them
    (AIP-2510). When the instance cannot be read (403/404), the source goes as given and the server
    decides (a missing instance is its 404).

    :param hook: the hook.
    :param request: the validated request.
    :param log: the task's logger.
    """
    given = request.source
    if not has_numbers(given):
        return given.partial_url
    canonical = request.names.canonical(hook, given)
    if canonical == given:
        log.warning("Sending source instance %s as given: %s", given.partial_url, request.names.why(given))
    else:
        log.info("Source instance %s is %s (instances.get); sending that", given.partial_url, canonical.partial_url)
    return canonical.partial_url


#: How much earlier than our request an operation must have started to count as a replay. Google's
#: servers and an Airflow worker keep NTP time, well within this; a replay of a submission made less
#: than this before is reported as not replayed.
REPLAY_CLOCK_TOLERANCE_SECONDS = 1.0


def is_replay(operation: Mapping[str, Any], sent_at: float) -> bool:
    """Whether the server answered with an operation that started before this request was sent.

    The API does not mark replays (the Operation resource has no requestId): an operation whose
    ``insertTime`` precedes the request is the one an earlier request with the same requestId made.

    :param operation: the insert's answer.
    :param sent_at: when the request was sent (seconds since the epoch).
    """
    started = parse_timestamp(operation.get("insertTime"))
    return started is not None and started.timestamp() < sent_at - REPLAY_CLOCK_TOLERANCE_SECONDS


def log_warnings(log: Log, operation: Mapping[str, Any]) -> None:
    """Log an operation's ``warnings[]`` (code, message): the API reports non-fatal problems there."""
    log_operation_warnings(log, operation)


def finish_operation(
    hook: ComputeEngineMachineImageHook,
    request: InsertRequest,
    state: InsertState,
    operation: Mapping[str, Any],
    log: Log,
) -> InsertState:
    """Take a DONE insert operation: adopt the image on "already exists", raise other failures, else read back.

    :param hook: the hook.
    :param request: the validated request.
    :param state: the state the operation was waited from.
    :param operation: the DONE operation.
    :param log: the task's logger.
    :raises OperationFailedError: the operation failed for another reason than a taken name.
    """
    try:
        raise_for_operation_error(operation, secrets=iter_key_material(request.body))
    except OperationFailedError as failure:
        return on_operation_failed(hook, request, state, failure, log)
    log_warnings(log, operation)
    log.info("Operation %s is DONE", operation.get("name"))
    return read_back(hook, request, replace(state, operation=operation), log)


def on_operation_failed(
    hook: ComputeEngineMachineImageHook,
    request: InsertRequest,
    state: InsertState,
    failure: OperationFailedError,
    log: Log,
) -> InsertState:
    """An operation that failed because the name is taken is a 409 in disguise; anything else is raised.

    :param hook: the hook.
    :param request: the validated request.
    :param state: the state the operation was waited from.
    :param failure: the operation's failure.
    :param log: the task's logger.
    """
    raise_unless_name_taken(failure, replayed=state.replayed)
    return adopt_existing(hook, request, state.generation, log)


def raise_unless_name_taken(failure: OperationFailedError, *, replayed: bool) -> None:
    """Return if a failed insert operation means "the name is taken" (a 409 in disguise: adopt); else raise.

    :param failure: the operation's failure.
    :param replayed: the server replayed an earlier try's operation.
    :raises ResubmissionNeeded: an earlier try's failure, replayed: it made nothing, so submitting under the
        next generation cannot duplicate anything, and this try may still make its one fresh create.
    :raises OperationFailedError: this try's own failure.
    """
    if ALREADY_EXISTS_CODES.intersection(failure.codes):
        return
    if replayed:
        raise ResubmissionNeeded(
            f"Operation {failure.operation_name} of this task instance failed in an earlier try ({failure})"
        ) from failure
    raise failure


def read_back(hook: ComputeEngineMachineImageHook, request: InsertRequest, state: InsertState, log: Log) -> InsertState:
    """Read the image a successful operation made; it must exist and come from the requested source.

    :param hook: the hook.
    :param request: the validated request.
    :param state: the state with the DONE operation.
    :param log: the task's logger.
    :raises ResubmissionNeeded: the image is gone (the server replayed a remembered request).
    :raises MachineImageConflictError: the image came from another source instance.
    """
    try:
        image = hook.get_machine_image(name=request.name, project_id=request.project_id)
    except ResourceNotFoundError:
        raise ResubmissionNeeded(
            f"Operation {(state.operation or {}).get('name')} for requestId {state.request_id} is DONE, but "
            f"machine image {request.name} does not exist: the server replayed a request it remembers, and "
            "the image it made has since been deleted",
            fresh=not state.replayed,
        ) from None
    check_source(hook, request, image, log)
    _log_image(log, request, image)
    return replace(state, image=image)


def adopt_existing(
    hook: ComputeEngineMachineImageHook, request: InsertRequest, generation: int, log: Log
) -> InsertState:
    """Handle a taken name per ``if_exists``: reuse an image of ours or from the same source, else fail.

    :param hook: the hook.
    :param request: the validated request.
    :param generation: the submission that met the taken name.
    :param log: the task's logger.
    :raises ResubmissionNeeded: the image vanished meanwhile.
    :raises MachineImageConflictError: ``if_exists="fail"``, or the image came from another source.
    """
    try:
        image = hook.get_machine_image(name=request.name, project_id=request.project_id)
    except ResourceNotFoundError:
        raise ResubmissionNeeded(f"Machine image {request.name} was reported to exist but is gone now") from None
    ours = (image.get("labels") or {}).get(OWNER_LABEL) == request.owner_key
    if request.if_exists == "fail" and not ours:
        raise MachineImageConflictError(
            f"Machine image {request.name} already exists in project {request.project_id} "
            f"(made from {image.get('sourceInstance')!r}) and if_exists='fail'."
        )
    check_source(hook, request, image, log)
    log.info(
        "Machine image %s already exists (%s), %s; reusing it",
        request.name,
        image.get("status"),
        "made by an earlier try of this task instance" if ours else "from the same source instance",
    )
    return InsertState(generation, request_id=None, image=image, reused=True)


def wait_for_image(
    hook: ComputeEngineMachineImageHook,
    request: InsertRequest,
    state: InsertState,
    *,
    timeout: float,
    poll_interval: float,
    log: Log,
) -> InsertState:
    """Wait on this worker until the image is READY.

    :param hook: the hook.
    :param request: the validated request.
    :param state: a state whose image is not READY yet.
    :param timeout: seconds to wait.
    :param poll_interval: seconds between reads.
    :param log: the task's logger.
    :raises ResubmissionNeeded: the image vanished while being created (its creation failed, or it was deleted).
    :raises MachineImageNotUsableError: the image became INVALID or is being deleted.
    """
    try:
        image = hook.wait_for_machine_image(
            name=request.name, project_id=request.project_id, timeout=timeout, poll_interval=poll_interval
        )
    except ResourceNotFoundError:
        raise _vanished(request, state) from None
    _log_image(log, request, image)
    return replace(state, image=image)


def resume(
    hook: ComputeEngineMachineImageHook, request: InsertRequest, event: Mapping[str, Any], log: Log
) -> InsertState:
    """Where the create stands after the triggerer's event (see :func:`trigger_extra`).

    :param hook: the hook.
    :param request: the validated request.
    :param event: the event of the operation trigger or the image trigger.
    :param log: the task's logger.
    """
    extra = event.get("extra") or {}
    state = InsertState(
        generation=int(extra.get("generation", 0)),
        request_id=extra.get("request_id"),
        operation=event.get("operation")
        or ({"name": extra["operation_name"]} if extra.get("operation_name") else None),
        reused=bool(extra.get("reused", False)),
        replayed=bool(extra.get("replayed", False)),
    )
    if extra.get("waiting_for") == "image":
        if event.get("status") == "success":
            image = event.get("image") or {}
            _log_image(log, request, image)
            return replace(state, image=image)
        if event.get("reason") == EVENT_NOT_FOUND:
            raise _vanished(request, state)
        raise error_from_event(event)
    if event.get("status") == "success":
        return finish_operation(hook, request, state, event.get("operation") or {}, log)
    failure = operation_failure_from_event(event)
    if failure is None:
        raise error_from_event(event)
    return on_operation_failed(hook, request, state, failure, log)


def trigger_extra(state: InsertState, waiting_for: str) -> dict[str, Any]:
    """What a trigger hands back unchanged in its event, so that :func:`resume` can rebuild ``state``.

    :param state: the state being waited from.
    :param waiting_for: ``"operation"`` or ``"image"``.
    """
    return {
        "waiting_for": waiting_for,
        "generation": state.generation,
        "request_id": state.request_id,
        "operation_name": (state.operation or {}).get("name"),
        "reused": state.reused,
        "replayed": state.replayed,
    }


def check_source(
    hook: ComputeEngineMachineImageHook, request: InsertRequest, image: Mapping[str, Any], log: Log
) -> None:
    """Fail, naming both, if ``image`` was made from another instance than requested.

    Sources are compared in canonical form (project id, zone, instance name): a source given by
    project number or numeric id is resolved by one ``instances.get`` (cached for the try), so it
    never meets a false conflict (:mod:`airflow_machine_images.flows.source_names`); sources without
    numbers are compared as they are, with no API call.

    When the comparison needs an instance that cannot be read (403: no ``compute.instances.get``;
    404: deleted since), the safe reading is taken: an image carrying this task instance's
    ``airflow-ti`` label was made by one of its own inserts, which sent this source, so it is kept
    (with a warning); any other image is a conflict, since adopting an image from an unproven source
    would report somebody else's backup as this one.

    :param hook: the hook (reads instances when a number is involved).
    :param request: the validated request.
    :param image: the existing MachineImage.
    :param log: the task's logger.
    :raises MachineImageConflictError: the sources differ, or cannot be compared and the image is not ours.
    """
    existing = image.get("sourceInstance")
    try:
        existing_ref: InstanceRef | None = parse_source_instance(existing, default_project=None)
    except MachineImageValidationError:
        existing_ref = None
    same = False if existing_ref is None else request.names.same_instance(hook, request.source, existing_ref)
    if same:
        return
    conflict = (
        f"Machine image {request.name} in project {request.project_id} exists but was made from "
        f"{existing!r}, not from {request.source.partial_url!r}"
    )
    if same is None and existing_ref is not None:
        why = request.names.why(request.source, existing_ref)
        if (image.get("labels") or {}).get(OWNER_LABEL) == request.owner_key:
            log.warning(
                "Cannot tell whether %s and %s name one instance (%s); machine image %s carries this task "
                "instance's label, so one of its own inserts made it from this source: keeping it",
                existing,
                request.source.partial_url,
                why,
                request.name,
            )
            return
        raise MachineImageConflictError(
            f"{conflict}, or so it must be taken: the two cannot be compared ({why}) and the image was not "
            "made by this task instance; grant compute.instances.get, give the source by project id and "
            "instance name, or choose another name."
        )
    raise MachineImageConflictError(f"{conflict}; choose another name or delete it.")


def _vanished(request: InsertRequest, state: InsertState) -> ResubmissionNeeded:
    was = (state.image or {}).get("status") or "being created"
    return ResubmissionNeeded(
        f"Machine image {request.name} vanished while {was} (its creation failed, or it was deleted)",
        fresh=state.request_id is not None and not state.reused and not state.replayed,
    )


def _log_image(log: Log, request: InsertRequest, image: Mapping[str, Any]) -> None:
    log.info(
        "Machine image %s is %s: %s (%s bytes)",
        request.name,
        image.get("status"),
        image.get("selfLink"),
        image.get("totalStorageBytes"),
    )
