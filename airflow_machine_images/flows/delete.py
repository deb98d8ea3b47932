"""Deleting a machine image and confirming it is gone: shared by the delete and retention operators.

A delete carries a task-derived ``requestId``, so a retry sends the same request and the server
deduplicates it. After the operation is DONE the image is read once more: if an image of that name
exists again (someone made it after our delete), :class:`~airflow_machine_images.exceptions.ResubmissionNeeded`
asks the caller to delete it under the next generation's requestId.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from airflow_machine_images.api.responses import operation_errors
from airflow_machine_images.api.timestamps import parse_timestamp
from airflow_machine_images.exceptions import OperationFailedError, ResourceNotFoundError, ResubmissionNeeded
from airflow_machine_images.logs import log_operation_warnings
from airflow_machine_images.results import delete_summary

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_machine_images.hooks.sync import ComputeEngineMachineImageHook
    from airflow_machine_images.logs import TaskLogger as Log


class StartedDelete:
    """What a delete's outcome says, for an image or an instance: only its ``operation`` matters."""

    operation: Mapping[str, Any] | None

    @property
    def deleted(self) -> bool:
        """This task deleted the resource (False: it was already gone)."""
        return self.operation is not None

    @property
    def pending(self) -> bool:
        """Compute Engine is still running the delete operation."""
        return self.operation is not None and self.operation.get("status") != "DONE"


@dataclass(frozen=True)
class Deletion(StartedDelete):
    """One delete of one image.

    :param project_id: the project.
    :param name: the image name.
    :param request_id: the requestId sent.
    :param operation: the delete operation as last seen; None if the image did not exist.
    :param replayed: the server answered with an earlier try's operation (a remembered requestId).
    """

    project_id: str
    name: str
    request_id: str
    operation: Mapping[str, Any] | None
    replayed: bool = False

    def summary(self) -> dict[str, Any]:
        """The delete operator's XCom."""
        return delete_summary(
            self.project_id, self.name, deleted=self.deleted, operation=self.operation, request_id=self.request_id
        )


def start_delete(
    hook: ComputeEngineMachineImageHook, project_id: str, name: str, request_id: str, log: Log
) -> Deletion:
    """Send the delete; an image that does not exist gives a :class:`Deletion` without operation.

    :param hook: the hook.
    :param project_id: the project.
    :param name: the image name.
    :param request_id: the requestId of this generation.
    :param log: the task's logger.
    """
    sent_at = time.time()
    try:
        operation = hook.delete_machine_image(name=name, request_id=request_id, project_id=project_id)
    except ResourceNotFoundError:
        log.info("Machine image %s does not exist: nothing to delete", name)
        return Deletion(project_id, name, request_id, operation=None)
    started = parse_timestamp(operation.get("insertTime"))
    # An operation older than the request, or DONE on arrival (real deletes take a while), is a replay.
    replayed = (started is not None and started.timestamp() < sent_at - 1.0) or operation.get("status") == "DONE"
    log.info("Delete accepted: operation %s (%s), requestId %s", operation["name"], operation["status"], request_id)
    log_operation_warnings(log, operation)
    deletion = Deletion(project_id, name, request_id, operation=operation, replayed=replayed)
    if operation.get("status") == "DONE" and operation_errors(operation):
        refuse_replayed_failure(deletion, operation)
    return deletion


def refuse_replayed_failure(deletion: Deletion, operation: Mapping[str, Any]) -> None:
    """Ask for the next generation if the server replayed an earlier try's failed delete.

    The server answers a remembered requestId with its original operation, even a failed one: left
    alone, every retry would replay that failure. A delete that failed deleted nothing, so a new one
    cannot do harm. A failure of this try's own delete is left to the caller (it ends the try).

    :param deletion: the delete as started.
    :param operation: its DONE, failed operation.
    :raises ResubmissionNeeded: the failure is an earlier try's.
    """
    if deletion.replayed:
        codes = ", ".join(str(e.get("code")) for e in operation_errors(operation))
        raise ResubmissionNeeded(
            f"Delete operation {operation.get('name')} of this task instance failed in an earlier try ({codes})"
        )


def confirm_gone(
    hook: ComputeEngineMachineImageHook, deletion: Deletion, operation: Mapping[str, Any], log: Log
) -> Deletion:
    """After a DONE delete, check that the image is gone.

    :param hook: the hook.
    :param deletion: the delete waited for.
    :param operation: its DONE operation.
    :param log: the task's logger.
    :raises ResubmissionNeeded: an image of that name exists again.
    """
    try:
        image = hook.get_machine_image(name=deletion.name, project_id=deletion.project_id)
    except ResourceNotFoundError:
        log.info("Machine image %s is deleted", deletion.name)
        return replace(deletion, operation=operation)
    raise ResubmissionNeeded(
        f"Operation {operation.get('name')} (requestId {deletion.request_id}) is DONE but machine image "
        f"{deletion.name} exists ({image.get('status')}): it was made again after that delete"
    )


def wait_until_gone(
    hook: ComputeEngineMachineImageHook, deletion: Deletion, *, timeout: float, poll_interval: float, log: Log
) -> Deletion:
    """Wait on this worker for the delete operation, then confirm the image is gone.

    :param hook: the hook.
    :param deletion: a started delete.
    :param timeout: seconds to wait for the operation.
    :param poll_interval: the longest pause after an early answer of the long-poll.
    :param log: the task's logger.
    :raises OperationFailedError: the delete failed.
    :raises ResubmissionNeeded: an image of that name exists again.
    """
    if deletion.operation is None:
        return deletion
    operation = wait_for_delete(
        hook,
        deletion.name,
        deletion.operation,
        project_id=deletion.project_id,
        replayed=deletion.replayed,
        timeout=timeout,
        poll_interval=poll_interval,
    )
    return confirm_gone(hook, deletion, operation, log)


def wait_for_delete(
    hook: ComputeEngineMachineImageHook,
    name: str,
    operation: Mapping[str, Any],
    *,
    project_id: str,
    replayed: bool,
    timeout: float,
    poll_interval: float,
    zone: str | None = None,
) -> dict[str, Any]:
    """Wait on this worker for a delete operation (global, or zonal with ``zone``); return it DONE.

    :param hook: the hook.
    :param name: what is deleted (for the error).
    :param operation: the delete operation as started.
    :param project_id: the project.
    :param replayed: the server replayed an earlier try's operation.
    :param timeout: seconds to wait.
    :param poll_interval: the longest pause after an early answer of the long-poll.
    :param zone: the zone of a zonal operation.
    :raises ResubmissionNeeded: an earlier try's delete failed (replayed): it deleted nothing.
    :raises OperationFailedError: this try's delete failed.
    """
    try:
        return hook.wait_for_operation(
            operation_name=operation["name"],
            project_id=project_id,
            zone=zone,
            timeout=timeout,
            max_early_backoff=poll_interval,
        )
    except OperationFailedError as failure:
        if replayed:
            raise ResubmissionNeeded(f"Delete of {name} failed in an earlier try ({failure})") from failure
        raise
