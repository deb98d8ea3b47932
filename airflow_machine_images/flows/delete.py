"""Deleting one resource and confirming it is gone: the one delete flow of the package.

A machine image (the delete operator, each image retention prunes), an instance a restore made (the
delete-restored operator, a failed restore's cleanup) and a disk such an instance leaves behind are
deleted the same way; what differs is told by a small adapter, a :class:`DeleteTarget`
(:mod:`~airflow_machine_images.flows.machine_image`, :mod:`~airflow_machine_images.flows.instance_delete`,
:mod:`~airflow_machine_images.flows.disk`): how to read and delete the resource, what proves it may be
deleted, what must happen first and what it leaves behind.

1. :func:`start_delete` reads the resource, refuses it unless the target's check passes (nothing is
   deleted then), lets the target prepare it (an instance's deletion protection is cleared) and note what
   it will leave behind (an instance's disks without ``autoDelete``), and sends the delete **by the numeric
   id just read** with the generation's task-derived ``requestId``. A resource already gone is success.
2. The operator waits for the operation (on the worker, or deferred), then :func:`confirm_gone` reads
   the name again: not found, or found with another id (made since, not ours: left alone), is gone.
3. :func:`finish` lets the target delete what it left behind (each through this same flow) and report it.

The identity rule lives in :func:`start_delete` and :func:`confirm_gone` only: every delete names the id
that was checked, and an operation whose ``targetId`` is another resource's is never taken for this one's.
Replays and resubmissions follow :mod:`airflow_machine_images.flows.resubmission`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from airflow_machine_images import metrics
from airflow_machine_images.api.answers import server_time_of
from airflow_machine_images.api.responses import operation_errors
from airflow_machine_images.events import error_from_event
from airflow_machine_images.exceptions import (
    MalformedResponseError,
    OperationFailedError,
    ResourceNotFoundError,
    ResubmissionNeeded,
)
from airflow_machine_images.flows.resubmission import is_replay, resubmit_if_replayed
from airflow_machine_images.logs import log_operation_warnings

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_machine_images.flows.request_ids import RequestIds
    from airflow_machine_images.hooks.sync import ComputeEngineMachineImageHook
    from airflow_machine_images.logs import TaskLogger as Log


class DeleteTarget(Protocol):
    """What the delete flow needs to know of one kind of resource (see the module docstring)."""

    @property
    def kind(self) -> str:
        """The resource for messages, capitalised (``"Machine image"``)."""

    @property
    def zone(self) -> str | None:
        """The zone of a zonal resource (None: global); its operations are zonal too."""

    def get(self, hook: ComputeEngineMachineImageHook, request: DeleteRequest) -> Mapping[str, Any]:
        """Read the resource by name (``ResourceNotFoundError`` when it does not exist)."""

    def check(self, request: DeleteRequest, resource: Mapping[str, Any]) -> None:
        """Raise unless this request may delete ``resource`` (nothing is deleted then)."""

    def prepare(
        self,
        hook: ComputeEngineMachineImageHook,
        request: DeleteRequest,
        resource: Mapping[str, Any],
        generation: int,
        *,
        is_retry: bool,
        log: Log,
    ) -> tuple[dict[str, Any], ...]:
        """Make the checked ``resource`` deletable; return what its delete will leave behind, for :meth:`clean_up`
        (identifiers and facts only: they travel in trigger events)."""

    def delete(
        self, hook: ComputeEngineMachineImageHook, request: DeleteRequest, identity: str, request_id: str
    ) -> Mapping[str, Any]:
        """Send the delete of ``identity`` (the numeric id just checked); return its operation."""

    def clean_up(
        self,
        hook: ComputeEngineMachineImageHook,
        request: DeleteRequest,
        deletion: Deletion,
        *,
        is_retry: bool,
        log: Log,
    ) -> dict[str, Any]:
        """Once the resource is gone, deal with what it left behind (``deletion.leftovers``); return the facts
        for the summary."""

    def where(self, request: DeleteRequest) -> str:
        """Where the resource lives, for messages (``"in project p"``)."""

    def summary(self, request: DeleteRequest, deletion: Deletion) -> dict[str, Any]:
        """The task's XCom for ``deletion``."""


@dataclass(frozen=True)
class DeleteRequest:
    """A validated delete.

    :param target: the kind of resource and its own arguments (zone, ...).
    :param project_id: the project.
    :param name: the resource's name.
    :param request_ids: the requestId of each generation.
    """

    target: DeleteTarget
    project_id: str
    name: str
    request_ids: RequestIds

    @property
    def what(self) -> str:
        """The resource for messages (``"Machine image web-1"``)."""
        return f"{self.target.kind} {self.name}"


@dataclass(frozen=True)
class Deletion:
    """Where one delete stands.

    :param generation: which submission of this task instance it is (0 first).
    :param request_id: the requestId sent (None when the resource was gone before anything was sent).
    :param resource_id: the numeric id of the resource checked and deleted (None: it was gone already).
    :param operation: the delete operation as last seen; None if the resource did not exist.
    :param replayed: the server answered with an earlier try's operation (a remembered requestId).
    :param leftovers: what the delete leaves behind, as the target noted it before the delete.
    :param cleanup: what :func:`finish` did with them (the target's facts for the summary).
    """

    generation: int
    request_id: str | None
    resource_id: str | None = None
    operation: Mapping[str, Any] | None = None
    replayed: bool = False
    leftovers: tuple[dict[str, Any], ...] = ()
    cleanup: Mapping[str, Any] = field(default_factory=dict)

    @property
    def deleted(self) -> bool:
        """This task deleted the resource (False: it was already gone)."""
        return self.operation is not None

    @property
    def pending(self) -> bool:
        """Compute Engine is still running the delete operation."""
        return self.operation is not None and self.operation.get("status") != "DONE"

    def summary(self, request: DeleteRequest) -> dict[str, Any]:
        """The task's XCom for this delete.

        :param request: the request this delete belongs to.
        """
        return request.target.summary(request, self)


def start_delete(
    hook: ComputeEngineMachineImageHook, request: DeleteRequest, generation: int, *, is_retry: bool, log: Log
) -> Deletion:
    """Read and check the resource, prepare it, then send the delete by the id read; gone already is success.

    :param hook: the hook.
    :param request: the validated request.
    :param generation: the submission number (0 first).
    :param is_retry: this is not the task's first try.
    :param log: the task's logger.
    :raises ResubmissionNeeded: the server replayed an earlier try's failed delete, or the delete of another
        resource (another id) under this requestId.
    """
    target, request_id = request.target, request.request_ids(generation)
    gone = Deletion(generation, request_id)
    try:
        resource = target.get(hook, request)
    except ResourceNotFoundError:
        log.info("%s does not exist %s: nothing to delete", request.what, target.where(request))
        return gone
    target.check(request, resource)
    resource_id = numeric_id(resource, request)
    leftovers = target.prepare(hook, request, resource, generation, is_retry=is_retry, log=log)
    sent = time.monotonic()
    try:
        operation = target.delete(hook, request, resource_id, request_id)
    except ResourceNotFoundError:
        log.info("%s was deleted meanwhile: nothing to delete", request.what)
        return gone
    waited = time.monotonic() - sent
    replayed = _is_another_request(operation) or is_replay(
        operation, answered_at=server_time_of(operation), waited=waited, is_retry=is_retry
    )
    log.info(
        "%s (id %s): delete accepted, operation %s (%s), requestId %s%s",
        request.what,
        resource_id,
        operation["name"],
        operation["status"],
        request_id,
        " (replayed: an earlier try sent it)" if replayed else "",
    )
    log_operation_warnings(log, operation)
    _refuse_another_target(request, operation, resource_id)
    deletion = replace(
        gone, resource_id=resource_id, operation=operation, replayed=replayed, leftovers=tuple(leftovers)
    )
    errors = operation_errors(operation) if operation.get("status") == "DONE" else []
    if errors and replayed:
        codes = ", ".join(str(error.get("code")) for error in errors)
        raise ResubmissionNeeded(
            f"{request.what}: delete operation {operation['name']} failed in an earlier try ({codes})", replayed=True
        )
    return deletion


def numeric_id(resource: Mapping[str, Any], request: DeleteRequest) -> str:
    """The resource's numeric ``id``, by which it is deleted.

    :param resource: the resource as read.
    :param request: the request (for the message).
    :raises MalformedResponseError: the answer has no numeric id (nothing is deleted by name instead).
    """
    raw = resource.get("id")
    text = str(raw) if isinstance(raw, (str, int)) and not isinstance(raw, bool) else ""
    if not text.isdigit() or text.startswith("0"):
        raise MalformedResponseError(
            f"{request.what} was read without a numeric id ({str(raw)[:40]!r}); it is deleted by id only, so nothing "
            "was deleted"
        )
    return text


def _refuse_another_target(request: DeleteRequest, operation: Mapping[str, Any], resource_id: str) -> None:
    """An operation whose ``targetId`` is another resource's (discovery Operation schema: "the unique target ID,
    which identifies a specific incarnation of the target resource") is an earlier request under this
    requestId, for a resource of that name since re-made: it says nothing about this one.

    :raises ResubmissionNeeded: (replayed) the operation targets another id.
    """
    target_id = operation.get("targetId")
    if target_id is not None and str(target_id) != resource_id:
        raise ResubmissionNeeded(
            f"{request.what}: the server answered with operation {operation.get('name')} "
            f"({operation.get('operationType')} of id {target_id}), not a delete of id {resource_id}: an earlier "
            "request under this requestId",
            replayed=True,
        )


def _is_another_request(operation: Mapping[str, Any]) -> bool:
    """Whether the answer is certainly an earlier request's (it is no delete): a replay, whatever the clocks say."""
    return operation.get("operationType") not in (None, "delete")


def confirm_gone(
    hook: ComputeEngineMachineImageHook,
    request: DeleteRequest,
    deletion: Deletion,
    operation: Mapping[str, Any],
    log: Log,
) -> Deletion:
    """After a DONE delete, check that what was deleted is gone.

    A resource of the same name but another id was made after the delete: it is not the one deleted,
    and is left alone.

    :param hook: the hook.
    :param request: the validated request.
    :param deletion: the delete waited for.
    :param operation: its DONE operation.
    :param log: the task's logger.
    :raises ResubmissionNeeded: the resource deleted (that id) still exists.
    """
    try:
        resource = request.target.get(hook, request)
    except ResourceNotFoundError:
        log.info("%s is deleted", request.what)
        return replace(deletion, operation=operation)
    if str(resource.get("id")) != deletion.resource_id:
        log.info(
            "%s (id %s) is deleted; another of that name (id %s) exists now and is left alone",
            request.what,
            deletion.resource_id,
            resource.get("id"),
        )
        return replace(deletion, operation=operation)
    raise ResubmissionNeeded(
        f"Operation {operation.get('name')} (requestId {deletion.request_id}) is DONE but {request.what} "
        f"(id {deletion.resource_id}) exists ({resource.get('status')})",
        fresh=not deletion.replayed,
    )


def wait_until_gone(
    hook: ComputeEngineMachineImageHook,
    request: DeleteRequest,
    deletion: Deletion,
    *,
    timeout: float,
    poll_interval: float,
    log: Log,
) -> Deletion:
    """Wait on this worker for the delete operation, then confirm the resource is gone.

    :param hook: the hook.
    :param request: the validated request.
    :param deletion: a started delete.
    :param timeout: seconds to wait for the operation.
    :param poll_interval: the longest pause after an early answer of the long-poll.
    :param log: the task's logger.
    :raises ResubmissionNeeded: an earlier try's delete failed (replayed), or the resource still exists.
    :raises OperationFailedError: this try's delete failed.
    """
    if deletion.operation is None:
        return deletion
    try:
        operation = hook.wait_for_operation(
            operation_name=deletion.operation["name"],
            project_id=request.project_id,
            zone=request.target.zone,
            timeout=timeout,
            max_early_backoff=poll_interval,
        )
    except OperationFailedError as failure:
        resubmit_if_replayed(failure, replayed=deletion.replayed, what=f"Delete of {request.what}")
        raise
    return confirm_gone(hook, request, deletion, operation, log)


def resume(hook: ComputeEngineMachineImageHook, request: DeleteRequest, event: Mapping[str, Any], log: Log) -> Deletion:
    """Where the delete stands after the operation trigger's event (see :func:`trigger_extra`).

    :param hook: the hook.
    :param request: the validated request.
    :param event: the operation trigger's event.
    :param log: the task's logger.
    :raises ResubmissionNeeded: an earlier try's delete failed, or the resource still exists.
    """
    extra = event.get("extra") or {}
    deletion = Deletion(
        generation=int(extra.get("generation", 0)),
        request_id=extra.get("request_id"),
        resource_id=extra.get("resource_id") or extra.get("instance_id"),
        operation=event.get("operation"),
        replayed=bool(extra.get("replayed")),
        leftovers=tuple(dict(item) for item in extra.get("leftovers") or ()),
    )
    if event.get("status") != "success":
        failure = error_from_event(event)
        if isinstance(failure, OperationFailedError):
            resubmit_if_replayed(failure, replayed=deletion.replayed, what=f"Delete of {request.what}")
        raise failure
    return confirm_gone(hook, request, deletion, event.get("operation") or {}, log)


def trigger_extra(deletion: Deletion) -> dict[str, Any]:
    """What the operation trigger hands back unchanged, so that :func:`resume` can rebuild ``deletion``.

    :param deletion: the delete being waited for.
    """
    return {
        "generation": deletion.generation,
        "request_id": deletion.request_id,
        "resource_id": deletion.resource_id,
        "replayed": deletion.replayed,
        "leftovers": [dict(item) for item in deletion.leftovers],
    }


def finish(
    hook: ComputeEngineMachineImageHook, request: DeleteRequest, deletion: Deletion, *, is_retry: bool, log: Log
) -> Deletion:
    """Once the resource is gone (or was), let the target deal with what it left behind.

    :param hook: the hook.
    :param request: the validated request.
    :param deletion: the confirmed delete (or one that found nothing to delete).
    :param is_retry: this is not the task's first try.
    :param log: the task's logger.
    :return: the delete with the target's cleanup facts.
    """
    if deletion.deleted and request.target.kind == "Machine image":
        metrics.images_deleted()
    return replace(deletion, cleanup=request.target.clean_up(hook, request, deletion, is_retry=is_retry, log=log))
