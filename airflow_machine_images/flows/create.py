"""Creating one resource exactly once and waiting until it is usable: the one create flow of the package.

A machine image (``machineImages.insert``) and an instance restored from one (``instances.insert``)
are created the same way; what differs is told by a small adapter, a :class:`CreateTarget`
(:mod:`~airflow_machine_images.flows.machine_image`, :mod:`~airflow_machine_images.flows.instance`):
how to insert and read the resource, what its source check is, which statuses are ready, starting
or final, and what the task's summary is.

One create, as :class:`~airflow_machine_images.operators.base.CreateAndWaitBaseOperator` drives it:

1. :func:`submit` sends the insert with the generation's task-derived ``requestId``. A 409 for the
   resource goes to :func:`adopt_existing`; a 409 naming another resource (a restore's boot disk left by
   an earlier instance of the name) fails at once (:func:`other_resource_taken`); an operation still
   running is returned as it is; a DONE one goes to :func:`finish_operation`. Replays are told by
   :func:`~airflow_machine_images.flows.resubmission.is_replay`.
2. The operator waits for a running operation (on the worker, or deferred to the triggerer), then
   calls :func:`finish_operation`: a failure whose code means "the name is taken" is a 409 in disguise,
   a replayed failure asks for the next generation, any other failure is raised; success is read back
   (:func:`read_back`): the resource must exist and come from the requested source.
3. A resource that is not ready yet is waited for (:func:`wait_until_usable` on the worker, or
   :func:`resume` after the triggerer); the state's :meth:`CreateState.summary` is the task's XCom.

Every step returns a :class:`CreateState`, or raises
:class:`~airflow_machine_images.exceptions.ResubmissionNeeded` when the server's answer leaves nothing
to use and submitting again (the next generation's ``requestId``) cannot duplicate anything.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, Protocol

from airflow_machine_images import metrics
from airflow_machine_images.api.answers import server_time_of
from airflow_machine_images.api.redaction import iter_key_material
from airflow_machine_images.api.responses import raise_for_operation_error
from airflow_machine_images.bodies.labels import OWNER_LABEL
from airflow_machine_images.events import EVENT_NOT_FOUND, error_from_event, operation_failure_from_event
from airflow_machine_images.exceptions import (
    OperationFailedError,
    OperationTimeoutError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
    ResubmissionNeeded,
)
from airflow_machine_images.flows.resubmission import is_replay, resubmit_if_replayed
from airflow_machine_images.flows.source_limit import refused_by_source_limit, source_limit_reached
from airflow_machine_images.logs import log_operation_warnings

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from airflow_machine_images.exceptions import ComputeEngineError
    from airflow_machine_images.flows.request_ids import RequestIds
    from airflow_machine_images.hooks.sync import ComputeEngineMachineImageHook
    from airflow_machine_images.logs import TaskLogger as Log

#: Operation error codes that mean "the name is taken" (the 409 can also arrive inside the operation).
ALREADY_EXISTS_CODES = frozenset({"RESOURCE_ALREADY_EXISTS", "alreadyExists"})
#: ``extra["waiting_for"]`` of a deferral on the resource itself (``"image"``: the name of earlier releases).
WAITING_FOR_RESOURCE = ("resource", "image")
#: ``extra["waiting_for"]`` of a deferral until the per-source limit allows the next submission.
WAITING_FOR_SOURCE_LIMIT = "source_limit"
#: A resource path quoted in an answer: ``projects/P/zones/Z/disks/NAME``, ``projects/P/global/machineImages/NAME``.
_QUOTED_RESOURCE_PATTERN: Final = (
    r"projects/[^/\s'\"]+/(?:(?:zones|regions)/[^/\s'\"]+|global)/([A-Za-z]+)/([^/\s'\"]+)"
)


class Readiness(Enum):
    """Where a resource's status stands on the way to usable."""

    READY = "ready"
    STARTING = "starting"
    FINAL = "final"


class CreateTarget(Protocol):
    """What the create flow needs to know of one kind of resource (see the module docstring)."""

    @property
    def kind(self) -> str:
        """The resource for messages, capitalised (``"Machine image"``)."""

    @property
    def collection(self) -> str:
        """The API collection of the resource (``"machineImages"``, ``"instances"``), as a 409 quotes its path."""

    @property
    def ready_status(self) -> str:
        """The status that means usable (``"READY"``)."""

    @property
    def zone(self) -> str | None:
        """The zone of a zonal resource (None: global); its operations are zonal too."""

    @property
    def max_poll_interval(self) -> float | None:
        """The longest pause between reads while the resource starts (None: the task's poll interval)."""

    @property
    def source_limited(self) -> bool:
        """Compute Engine limits how often this kind is made of one source (:mod:`~.source_limit`)."""

    def insert(
        self, hook: ComputeEngineMachineImageHook, request: CreateRequest, request_id: str, log: Log
    ) -> Mapping[str, Any]:
        """Send the insert; return its operation (a 409 raises ``ResourceAlreadyExistsError``)."""

    def get(self, hook: ComputeEngineMachineImageHook, request: CreateRequest) -> Mapping[str, Any]:
        """Read the resource (``ResourceNotFoundError`` when it does not exist)."""

    def check_source(
        self, hook: ComputeEngineMachineImageHook, request: CreateRequest, resource: Mapping[str, Any], log: Log
    ) -> None:
        """Raise the target's conflict error unless ``resource`` is what this request makes."""

    def readiness(self, resource: Mapping[str, Any]) -> Readiness:
        """Where ``resource`` stands: ready, still starting, or in a status from which it will not be ready."""

    def not_usable(self, request: CreateRequest, status: object) -> ComputeEngineError:
        """The error for a resource in a final status that is not the ready one."""

    def conflict(self, message: str) -> ComputeEngineError:
        """The error for a name taken by something this request must not adopt."""

    def taken_hint(self, request: CreateRequest, taken: str) -> str:
        """What to do when a 409 names ``taken``, another resource than the one requested."""

    def where(self, request: CreateRequest) -> str:
        """Where the resource lives, for messages (``"in project p"``)."""

    def announce(self, request: CreateRequest) -> str:
        """What the task is about to do, for the log (``"Creating machine image x in project p from ..."``)."""

    def same_origin(self, request: CreateRequest) -> str:
        """How an adopted resource matches the request, for the log (``"from the same source instance"``)."""

    def describe(self, resource: Mapping[str, Any]) -> str:
        """What the log says of the resource once read (status, link, size)."""

    def summary(self, request: CreateRequest, state: CreateState) -> dict[str, Any]:
        """The task's XCom for ``state``."""


@dataclass(frozen=True)
class CreateRequest:
    """A validated create: everything the API calls need, resolved before any request is sent.

    :param target: the kind of resource and its own arguments (source, zone, ...).
    :param project_id: the project the resource is created in.
    :param name: the resource's name.
    :param body: the resource body (may hold key material, so it is kept out of ``repr``).
    :param request_ids: the requestId of each generation.
    :param owner_key: the task-instance key, as in the resource's ``airflow-ti`` label.
    :param if_exists: ``"reuse"`` or ``"fail"``.
    """

    target: CreateTarget
    project_id: str
    name: str
    body: dict[str, Any] = field(repr=False)
    request_ids: RequestIds
    owner_key: str
    if_exists: str = "reuse"

    @property
    def what(self) -> str:
        """The resource for messages (``"Machine image web-1"``)."""
        return f"{self.target.kind} {self.name}"

    def secrets(self) -> Iterable[str]:
        """The key material in the body, scrubbed from every error about this create."""
        return iter_key_material(self.body)


@dataclass(frozen=True)
class CreateState:
    """Where one create stands.

    :param generation: which submission of this task instance it is (0 first).
    :param request_id: the requestId sent (None when an existing resource was adopted).
    :param operation: the insert operation, as last seen (None when an existing resource was adopted).
    :param resource: the resource, once read back.
    :param reused: an existing resource was adopted instead of created.
    :param replayed: the server answered the requestId with the operation of an earlier submission
        (a retry, a cleared task, a worker that crashed after submitting).
    """

    generation: int
    request_id: str | None
    operation: Mapping[str, Any] | None = None
    resource: Mapping[str, Any] | None = None
    reused: bool = False
    replayed: bool = False

    @property
    def operation_pending(self) -> bool:
        """Compute Engine is still running the insert operation."""
        return self.resource is None and self.operation is not None and self.operation.get("status") != "DONE"

    def resource_pending(self, request: CreateRequest) -> bool:
        """The resource exists but is not ready yet.

        :param request: the request this state belongs to.
        """
        return self.resource is not None and request.target.readiness(self.resource) is not Readiness.READY

    def summary(self, request: CreateRequest) -> dict[str, Any]:
        """The task's XCom for this state.

        :param request: the request this state belongs to.
        """
        return request.target.summary(request, self)

    def count_made(self, request: CreateRequest) -> None:
        """Count a machine image this task made, once READY (``machine_images.images.created``); one adopted
        (``reused``) was made before and is not counted again.

        :param request: the request this state belongs to.
        """
        ready = self.resource is not None and request.target.readiness(self.resource) is Readiness.READY
        if ready and not self.reused and request.target.collection == "machineImages":
            metrics.images_created()


def submit(
    hook: ComputeEngineMachineImageHook, request: CreateRequest, generation: int, *, is_retry: bool, log: Log
) -> CreateState:
    """Send the insert with this generation's requestId; return where it stands.

    :param hook: the hook.
    :param request: the validated request.
    :param generation: the submission number (0 first).
    :param is_retry: this is not the task's first try.
    :param log: the task's logger.
    """
    request_id = request.request_ids(generation)
    sent = time.monotonic()
    try:
        operation = request.target.insert(hook, request, request_id, log)
    except ResourceAlreadyExistsError as taken:
        other = other_resource_taken(request, [taken.message, *(str(e.get("message")) for e in taken.errors)])
        if other is not None:
            raise _taken_by_another(request, other, "the insert was answered HTTP 409 alreadyExists") from None
        return adopt_existing(hook, request, generation, log)
    waited = time.monotonic() - sent
    replayed = is_replay(operation, answered_at=server_time_of(operation), waited=waited, is_retry=is_retry)
    log_operation_warnings(log, operation)
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
        log.info(
            "%s: insert accepted, operation %s (%s), requestId %s",
            request.what,
            operation["name"],
            operation["status"],
            request_id,
        )
    state = CreateState(generation, request_id, operation=operation, replayed=replayed)
    if operation["status"] != "DONE":
        return state
    return finish_operation(hook, request, state, operation, log)


def finish_operation(
    hook: ComputeEngineMachineImageHook,
    request: CreateRequest,
    state: CreateState,
    operation: Mapping[str, Any],
    log: Log,
) -> CreateState:
    """Take a DONE insert operation: adopt on "already exists", raise other failures, else read back.

    :param hook: the hook.
    :param request: the validated request.
    :param state: the state the operation was waited from.
    :param operation: the DONE operation.
    :param log: the task's logger.
    :raises OperationFailedError: the operation failed for another reason than a taken name.
    """
    try:
        raise_for_operation_error(operation, secrets=request.secrets())
    except OperationFailedError as failure:
        return on_operation_failed(hook, request, state, failure, log)
    log_operation_warnings(log, operation)
    log.info("Operation %s is DONE", operation.get("name"))
    return read_back(hook, request, replace(state, operation=operation), log)


def on_operation_failed(
    hook: ComputeEngineMachineImageHook,
    request: CreateRequest,
    state: CreateState,
    failure: OperationFailedError,
    log: Log,
) -> CreateState:
    """A failure meaning the name is taken adopts; an earlier try's failure is resubmitted; else raise.

    :param hook: the hook.
    :param request: the validated request.
    :param state: the state the operation was waited from.
    :param failure: the operation's failure.
    :param log: the task's logger.
    :raises SourceLimitReached: the per-source limit refused it (this try's or an earlier one's): nothing
        was made, and the next generation may be submitted once the limit allows (:mod:`~.source_limit`).
    :raises ResubmissionNeeded: an earlier try's failure, replayed: it made nothing, so the next
        generation cannot duplicate anything, and this try may still make its one fresh create.
    :raises OperationFailedError: this try's own failure.
    """
    if ALREADY_EXISTS_CODES.intersection(failure.codes):
        other = other_resource_taken(request, [str(error.get("message")) for error in failure.errors])
        if other is not None:
            raise _taken_by_another(request, other, f"operation {failure.operation_name} failed as already existing")
        return adopt_existing(hook, request, state.generation, log)
    if request.target.source_limited and refused_by_source_limit(failure):
        raise source_limit_reached(failure, what=request.what, replayed=state.replayed) from failure
    resubmit_if_replayed(failure, replayed=state.replayed, what=request.what)
    raise failure


def other_resource_taken(request: CreateRequest, texts: Iterable[str]) -> str | None:
    """The resource an "already exists" answer names, when it is not the one requested.

    Compute Engine's 409 names the resource whose name is taken (``The resource
    'projects/P/zones/Z/disks/NAME' already exists``): for a restore that is often the boot disk an
    earlier instance of the name left behind (hashicorp/terraform issue 7998), not the instance. Reading
    the instance then finds nothing, and submitting again meets the same 409: a loop. An answer naming
    the requested resource, or naming nothing, is the resource itself (adopted or refused as ``if_exists``
    says).

    :param request: the validated request.
    :param texts: the answer's messages.
    :return: the other resource's path, or None.
    """
    quoted = [match for text in texts for match in re.finditer(_QUOTED_RESOURCE_PATTERN, text)]
    if any((match.group(1), match.group(2)) == (request.target.collection, request.name) for match in quoted):
        return None
    return quoted[0].group(0) if quoted else None


def _taken_by_another(request: CreateRequest, taken: str, how: str) -> ComputeEngineError:
    """The target's (permanent) conflict error for a name taken by another resource: nothing made, nothing adopted."""
    return request.target.conflict(
        f"{request.target.announce(request)} failed: {how} for {taken}, another resource than the "
        f"{request.target.kind.lower()} itself; nothing was created and nothing is adopted. "
        f"{request.target.taken_hint(request, taken)}"
    )


def read_back(hook: ComputeEngineMachineImageHook, request: CreateRequest, state: CreateState, log: Log) -> CreateState:
    """Read the resource a successful operation made; it must exist and come from the requested source.

    :param hook: the hook.
    :param request: the validated request.
    :param state: the state with the DONE operation.
    :param log: the task's logger.
    :raises ResubmissionNeeded: the resource is gone (the server replayed a remembered request).
    """
    try:
        resource = request.target.get(hook, request)
    except ResourceNotFoundError:
        raise ResubmissionNeeded(
            f"Operation {(state.operation or {}).get('name')} for requestId {state.request_id} is DONE, but "
            f"{request.what} does not exist {request.target.where(request)}: the server replayed a request it "
            "remembers, and what it made has since been deleted",
            fresh=not state.replayed,
            replayed=state.replayed,
        ) from None
    request.target.check_source(hook, request, resource, log)
    log.info("%s is %s", request.what, request.target.describe(resource))
    return replace(state, resource=resource)


def adopt_existing(
    hook: ComputeEngineMachineImageHook, request: CreateRequest, generation: int, log: Log
) -> CreateState:
    """Handle a taken name per ``if_exists``: reuse what an earlier try made or what matches the request, else fail.

    :param hook: the hook.
    :param request: the validated request.
    :param generation: the submission that met the taken name.
    :param log: the task's logger.
    :raises ResubmissionNeeded: the resource vanished meanwhile.
    :raises ComputeEngineError: the target's conflict error: ``if_exists="fail"``, or it does not match.
    """
    target = request.target
    try:
        resource = target.get(hook, request)
    except ResourceNotFoundError:
        raise ResubmissionNeeded(f"{request.what} was reported to exist but is gone now") from None
    ours = (resource.get("labels") or {}).get(OWNER_LABEL) == request.owner_key
    if request.if_exists == "fail" and not ours:
        raise target.conflict(f"{request.what} already exists {target.where(request)} and if_exists='fail'.")
    target.check_source(hook, request, resource, log)
    log.info(
        "%s already exists (%s), %s; reusing it",
        request.what,
        resource.get("status"),
        "made by an earlier try of this task instance" if ours else target.same_origin(request),
    )
    return CreateState(generation, request_id=None, resource=resource, reused=True)


def wait_until_usable(
    hook: ComputeEngineMachineImageHook,
    request: CreateRequest,
    state: CreateState,
    *,
    timeout: float,
    poll_interval: float,
    log: Log,
) -> CreateState:
    """Read the resource on this worker until it is ready.

    :param hook: the hook.
    :param request: the validated request.
    :param state: a state whose resource is not ready yet.
    :param timeout: seconds to wait.
    :param poll_interval: seconds between reads (at most the target's ``max_poll_interval``).
    :param log: the task's logger.
    :raises ComputeEngineError: the target's error for a final status that is not the ready one.
    :raises ResubmissionNeeded: it vanished (its creation failed, or it was deleted).
    :raises OperationTimeoutError: it was not ready within ``timeout``.
    """
    target, resource = request.target, state.resource or {}
    pause = min(poll_interval, target.max_poll_interval or poll_interval)
    deadline = time.monotonic() + timeout
    while True:
        status, readiness = resource.get("status"), target.readiness(resource)
        if readiness is Readiness.READY:
            return replace(state, resource=resource)
        if readiness is Readiness.FINAL:
            raise target.not_usable(request, status)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise OperationTimeoutError(
                f"{request.what} was not {target.ready_status} after {timeout:.0f} s ({status})."
            )
        time.sleep(min(pause, remaining))
        try:
            resource = target.get(hook, request)
        except ResourceNotFoundError:
            raise _vanished(request, state, status) from None
        if resource.get("status") != status:
            log.info("%s is %s", request.what, target.describe(resource))


def resume(
    hook: ComputeEngineMachineImageHook, request: CreateRequest, event: Mapping[str, Any], log: Log
) -> CreateState:
    """Where the create stands after the triggerer's event (see :func:`trigger_extra`).

    :param hook: the hook.
    :param request: the validated request.
    :param event: the event of the operation trigger, or of the trigger that waited on the resource.
    :param log: the task's logger.
    """
    extra = event.get("extra") or {}
    state = CreateState(
        generation=int(extra.get("generation", 0)),
        request_id=extra.get("request_id"),
        operation=event.get("operation")
        or ({"name": extra["operation_name"]} if extra.get("operation_name") else None),
        reused=bool(extra.get("reused", False)),
        replayed=bool(extra.get("replayed", False)),
    )
    if extra.get("waiting_for") in WAITING_FOR_RESOURCE:
        if event.get("status") == "success":
            resource = event.get("image") or event.get("resource") or {}
            log.info("%s is %s", request.what, request.target.describe(resource))
            return replace(state, resource=resource)
        if event.get("reason") == EVENT_NOT_FOUND:
            raise _vanished(request, state, "being created")
        raise error_from_event(event)
    if event.get("status") == "success":
        return finish_operation(hook, request, state, event.get("operation") or {}, log)
    failure = operation_failure_from_event(event)
    if failure is None:
        raise error_from_event(event)
    return on_operation_failed(hook, request, state, failure, log)


def trigger_extra(state: CreateState, *, waiting_for_resource: bool) -> dict[str, Any]:
    """What a trigger hands back unchanged in its event, so that :func:`resume` can rebuild ``state``.

    :param state: the state being waited from.
    :param waiting_for_resource: the trigger waits on the resource itself, not on the operation.
    """
    return {
        "waiting_for": "resource" if waiting_for_resource else "operation",
        "generation": state.generation,
        "request_id": state.request_id,
        "operation_name": (state.operation or {}).get("name"),
        "reused": state.reused,
        "replayed": state.replayed,
    }


def source_limit_extra(generation: int, waits: int) -> dict[str, Any]:
    """What the trigger of a wait for the per-source limit hands back: the generation to submit, and the waits
    of this try so far (:func:`~airflow_machine_images.flows.resubmission.with_resubmissions` bounds them).

    :param generation: the generation to submit once the limit allows.
    :param waits: the per-source-limit waits of this try, this one included.
    """
    return {"waiting_for": WAITING_FOR_SOURCE_LIMIT, "generation": generation, "source_limit_waits": waits}


def _vanished(request: CreateRequest, state: CreateState, status: object) -> ResubmissionNeeded:
    return ResubmissionNeeded(
        f"{request.what} vanished while {status} (its creation failed, or it was deleted)",
        fresh=state.request_id is not None and not state.reused and not state.replayed,
    )
