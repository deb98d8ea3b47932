"""Deleting an instance a restore made, and nothing else: check the labels, delete by id, confirm.

A restore drill deletes its scratch instance at the end; a mistyped name must never delete a
production instance. So the instance is read first and refused (a permanent error, never retried)
unless it carries the restore labels (:func:`~airflow_machine_images.bodies.instance.is_restored`), and
the delete then names the instance by the numeric id just read (``instances.delete`` takes a name or
an id: the path parameter's pattern in both discovery documents allows both): an instance created
under the same name in between is a different id, and is not touched.

The delete carries a task-derived ``requestId``; an instance already gone is success.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from airflow_machine_images.api.responses import operation_errors
from airflow_machine_images.api.timestamps import parse_timestamp
from airflow_machine_images.bodies.instance import RESTORED_BY_LABEL, RESTORED_BY_VALUE, is_restored
from airflow_machine_images.exceptions import (
    NotARestoredInstanceError,
    ResourceNotFoundError,
    ResubmissionNeeded,
)
from airflow_machine_images.flows.delete import StartedDelete, wait_for_delete

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_machine_images.hooks.sync import ComputeEngineMachineImageHook
    from airflow_machine_images.logs import TaskLogger as Log


@dataclass(frozen=True)
class InstanceDeletion(StartedDelete):
    """One delete of one restored instance.

    :param project_id: the project.
    :param zone: the zone.
    :param name: the instance name.
    :param request_id: the requestId sent.
    :param instance_id: the numeric id of the instance deleted (None if it was already gone).
    :param operation: the zonal delete operation as last seen; None if the instance did not exist.
    :param replayed: the server answered with an earlier try's operation (a remembered requestId).
    """

    project_id: str
    zone: str
    name: str
    request_id: str
    instance_id: str | None = None
    operation: Mapping[str, Any] | None = None
    replayed: bool = False

    def summary(self) -> dict[str, Any]:
        """The delete-restored operator's XCom."""
        operation = self.operation or {}
        return {
            "project_id": self.project_id,
            "zone": self.zone,
            "name": self.name,
            "id": self.instance_id,
            "deleted": self.deleted,
            "operation_name": operation.get("name"),
            "status": operation.get("status") if self.operation is not None else "NOT_FOUND",
            "request_id": self.request_id,
        }


def start_delete(
    hook: ComputeEngineMachineImageHook, project_id: str, zone: str, name: str, request_id: str, log: Log
) -> InstanceDeletion:
    """Read the instance, refuse it unless restored, then delete it by id; gone already is success.

    :param hook: the hook.
    :param project_id: the project.
    :param zone: the zone.
    :param name: the instance name.
    :param request_id: the requestId of this generation.
    :param log: the task's logger.
    :raises NotARestoredInstanceError: the instance lacks the restore labels (nothing is deleted).
    """
    gone = InstanceDeletion(project_id, zone, name, request_id)
    try:
        instance = hook.get_instance(zone=zone, name=name, project_id=project_id)
    except ResourceNotFoundError:
        log.info("Instance %s does not exist in %s/%s: nothing to delete", name, project_id, zone)
        return gone
    if not is_restored(instance):
        raise NotARestoredInstanceError(
            f"Refusing to delete instance {name} in {project_id}/{zone}: it does not carry the restore labels "
            f"({RESTORED_BY_LABEL}={RESTORED_BY_VALUE} and restored-from), so it was not made by "
            "ComputeEngineRestoreMachineImageOperator. Nothing was deleted."
        )
    instance_id = str(instance.get("id"))
    sent_at = time.time()
    try:
        operation = hook.delete_instance(zone=zone, name=instance_id, request_id=request_id, project_id=project_id)
    except ResourceNotFoundError:
        log.info("Instance %s (id %s) was deleted meanwhile: nothing to delete", name, instance_id)
        return gone
    started = parse_timestamp(operation.get("insertTime"))
    replayed = (started is not None and started.timestamp() < sent_at - 1.0) or operation.get("status") == "DONE"
    log.info(
        "Deleting restored instance %s (id %s, restored from %s): operation %s (%s), requestId %s",
        name,
        instance_id,
        (instance.get("labels") or {}).get("restored-from"),
        operation["name"],
        operation["status"],
        request_id,
    )
    deletion = replace(gone, instance_id=instance_id, operation=operation, replayed=replayed)
    if replayed and operation.get("status") == "DONE" and operation_errors(operation):
        # An earlier try's failed delete, replayed: it deleted nothing, so the next generation may try again.
        codes = ", ".join(str(e.get("code")) for e in operation_errors(operation))
        raise ResubmissionNeeded(f"Delete operation {operation['name']} failed in an earlier try ({codes})")
    return deletion


def confirm_gone(
    hook: ComputeEngineMachineImageHook, deletion: InstanceDeletion, operation: Mapping[str, Any], log: Log
) -> InstanceDeletion:
    """After a DONE delete, check that the instance deleted (by id) is gone.

    An instance of the same name but another id was created after the delete: it is not ours, and is
    left alone.

    :param hook: the hook.
    :param deletion: the delete waited for.
    :param operation: its DONE operation.
    :param log: the task's logger.
    :raises ResubmissionNeeded: the very instance deleted still exists.
    """
    try:
        instance = hook.get_instance(zone=deletion.zone, name=deletion.name, project_id=deletion.project_id)
    except ResourceNotFoundError:
        log.info("Instance %s is deleted", deletion.name)
        return replace(deletion, operation=operation)
    if str(instance.get("id")) != deletion.instance_id:
        log.info(
            "Instance %s (id %s) is deleted; another instance of that name (id %s) exists now and is left alone",
            deletion.name,
            deletion.instance_id,
            instance.get("id"),
        )
        return replace(deletion, operation=operation)
    raise ResubmissionNeeded(
        f"Operation {operation.get('name')} (requestId {deletion.request_id}) is DONE but instance "
        f"{deletion.name} (id {deletion.instance_id}) still exists ({instance.get('status')})",
        fresh=not deletion.replayed,
    )


def wait_until_gone(
    hook: ComputeEngineMachineImageHook, deletion: InstanceDeletion, *, timeout: float, poll_interval: float, log: Log
) -> InstanceDeletion:
    """Wait on this worker for the zonal delete operation, then confirm the instance is gone.

    :param hook: the hook.
    :param deletion: a started delete.
    :param timeout: seconds to wait for the operation.
    :param poll_interval: the longest pause after an early answer of the long-poll.
    :param log: the task's logger.
    :raises OperationFailedError: the delete failed.
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
        zone=deletion.zone,
    )
    return confirm_gone(hook, deletion, operation, log)
