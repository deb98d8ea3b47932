"""Deleting an instance a restore made, and nothing else: the delete target of restored instances.

:class:`RestoredInstanceDeleteTarget` is the :class:`~airflow_machine_images.flows.delete.DeleteTarget` of
the delete-restored operator and of a failed restore's cleanup (:func:`clean_up_failed_restore`). What
proves an instance may be deleted, on the very read that precedes its delete:

- ownership (:class:`~airflow_machine_images.bodies.instance.RestoreOwnership`): the restore labels, and
  the ``restore-dag`` label of the deleting task's DAG (or of a DAG it names), or the ``restore-id`` of the
  one restore it is given. The restore labels alone are writable by anyone and outlive drills: an
  instance restored by a disaster-recovery DAG keeps them for life, so they prove nothing by themselves;
- identity: the delete names the numeric id just read (``instances.delete`` takes a name or an id: the
  path parameter's pattern in both discovery documents allows both).

Then :meth:`RestoredInstanceDeleteTarget.prepare` clears deletion protection, which restores inherit from
their image (``SourceInstanceProperties.deletionProtection``, discovery documents), with
``instances.setDeletionProtection`` and a requestId; ``instances.delete`` of a protected instance
answers 400 ``invalidResourceUsage`` (terraform-provider-google PR 1211). It also reads the disks that will
survive the instance (``autoDelete: false``), which :meth:`clean_up` deletes once the instance is gone
(:mod:`airflow_machine_images.flows.disk`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final

from airflow_machine_images.api.answers import server_time_of
from airflow_machine_images.api.responses import operation_errors, raise_for_operation_error
from airflow_machine_images.bodies.instance import RestoreOwnership
from airflow_machine_images.exceptions import ComputeEngineError, NotARestoredInstanceError, ResubmissionNeeded
from airflow_machine_images.flows import delete
from airflow_machine_images.flows.disk import delete_disks, surviving_disks
from airflow_machine_images.flows.resubmission import is_replay, with_resubmissions
from airflow_machine_images.results import restored_instance_delete_summary

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_machine_images.flows.create import CreateRequest
    from airflow_machine_images.flows.delete import DeleteRequest, Deletion
    from airflow_machine_images.hooks.sync import ComputeEngineMachineImageHook
    from airflow_machine_images.logs import TaskLogger as Log

__all__ = ["RestoredInstanceDeleteTarget", "clean_up_failed_restore", "instance_key"]

#: Seconds a step of a delete waits for its operation when the task set no deadline on the hook.
_DEFAULT_WAIT_SECONDS: Final = 600.0


def instance_key(zone: str, name: str) -> str:
    """The resource an instance's requestIds are derived for (zone and name).

    :param zone: the instance's zone.
    :param name: its name.
    """
    return f"zones/{zone}/instances/{name}"


def _remaining(hook: ComputeEngineMachineImageHook) -> float:
    """Seconds left before the task's deadline (the hook's), else a default."""
    if hook.deadline is None:
        return _DEFAULT_WAIT_SECONDS
    return max(1.0, hook.deadline - time.time())


@dataclass(frozen=True)
class RestoredInstanceDeleteTarget:
    """An instance a restore made, for the delete flow (see the module docstring).

    :param zone: the instance's zone.
    :param ownership: which restored instances this task may delete.
    """

    zone: str
    ownership: RestoreOwnership

    kind: ClassVar[str] = "Instance"

    def get(self, hook: ComputeEngineMachineImageHook, request: DeleteRequest) -> Mapping[str, Any]:
        """``instances.get`` of the request's instance."""
        return hook.get_instance(zone=self.zone, name=request.name, project_id=request.project_id)

    def check(self, request: DeleteRequest, resource: Mapping[str, Any]) -> None:
        """Refuse an instance this task does not own (:class:`RestoreOwnership`), protected or not.

        :raises NotARestoredInstanceError: nothing is deleted (a permanent error).
        """
        why = self.ownership.refusal(resource)
        if why is None:
            return
        protected = " It is protected against deletion, and stays so." if resource.get("deletionProtection") else ""
        where = f"{request.project_id}/{self.zone}"
        raise NotARestoredInstanceError(
            f"Refusing to delete instance {request.name} (id {resource.get('id')}) in {where}: {why}. Nothing was "
            f"deleted.{protected} To delete it: {self.ownership.what_to_do()}."
        )

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
        """Note the disks that will survive the instance, then clear its deletion protection if set.

        :return: the disks, for :meth:`clean_up` (:func:`~airflow_machine_images.flows.disk.surviving_disks`).
        :raises ResubmissionNeeded: the server replayed an earlier try's failed ``setDeletionProtection``.
        :raises OperationFailedError: this try's ``setDeletionProtection`` failed.
        """
        leftovers = surviving_disks(hook, resource, project_id=request.project_id, zone=self.zone, log=log)
        if resource.get("deletionProtection"):
            self._unprotect(hook, request, str(resource.get("id")), generation, is_retry=is_retry, log=log)
        return leftovers

    def _unprotect(
        self,
        hook: ComputeEngineMachineImageHook,
        request: DeleteRequest,
        instance_id: str,
        generation: int,
        *,
        is_retry: bool,
        log: Log,
    ) -> None:
        """``instances.setDeletionProtection(deletionProtection=false)`` of the id checked, waited for."""
        request_id = request.request_ids.derived(instance_key(self.zone, request.name), "unprotect")(generation)
        log.warning(
            "Instance %s (id %s) is protected against deletion (restores inherit it from their machine image); it is "
            "this task's to delete, so its protection is cleared first (setDeletionProtection, requestId %s)",
            request.name,
            instance_id,
            request_id,
        )
        sent = time.monotonic()
        operation = hook.set_instance_deletion_protection(
            zone=self.zone, name=instance_id, protect=False, request_id=request_id, project_id=request.project_id
        )
        replayed = is_replay(
            operation, answered_at=server_time_of(operation), waited=time.monotonic() - sent, is_retry=is_retry
        )
        if operation.get("status") == "DONE" and operation_errors(operation) and replayed:
            raise ResubmissionNeeded(
                f"{request.what}: setDeletionProtection {operation.get('name')} failed in an earlier try", replayed=True
            )
        if operation.get("status") == "DONE":
            raise_for_operation_error(operation)
            return
        hook.wait_for_operation(
            operation_name=str(operation["name"]),
            project_id=request.project_id,
            zone=self.zone,
            timeout=_remaining(hook),
        )

    def delete(
        self, hook: ComputeEngineMachineImageHook, request: DeleteRequest, identity: str, request_id: str
    ) -> Mapping[str, Any]:
        """``instances.delete`` of ``identity`` (the numeric id just checked)."""
        return hook.delete_instance(zone=self.zone, name=identity, request_id=request_id, project_id=request.project_id)

    def clean_up(
        self,
        hook: ComputeEngineMachineImageHook,
        request: DeleteRequest,
        deletion: Deletion,
        *,
        is_retry: bool,
        log: Log,
    ) -> dict[str, Any]:
        """Delete the disks the instance left that its restore made; report those kept.

        :raises LeftoverDisksError: some of them could not be deleted (named).
        """
        if not deletion.leftovers:
            return {}
        return delete_disks(
            hook, request, deletion.leftovers, zone=self.zone, timeout=_remaining(hook), is_retry=is_retry, log=log
        )

    def where(self, request: DeleteRequest) -> str:
        """``in P/ZONE``."""
        return f"in {request.project_id}/{self.zone}"

    def summary(self, request: DeleteRequest, deletion: Deletion) -> dict[str, Any]:
        """:func:`~airflow_machine_images.results.restored_instance_delete_summary` of the delete; disks still
        attached when the task did not wait are ``disks_pending``."""
        cleanup: Mapping[str, Any] = deletion.cleanup or {
            "disks_pending": [item["name"] for item in deletion.leftovers if item.get("delete")],
            "disks_kept": [
                {"name": item["name"], "why": item.get("why")} for item in deletion.leftovers if not item.get("delete")
            ],
        }
        return restored_instance_delete_summary(
            project_id=request.project_id,
            zone=self.zone,
            name=request.name,
            instance_id=deletion.resource_id,
            operation=deletion.operation,
            request_id=deletion.request_id,
            cleanup=cleanup,
        )


def clean_up_failed_restore(
    hook: ComputeEngineMachineImageHook, request: CreateRequest, *, dag_id: str, is_retry: bool, log: Log
) -> str:
    """Delete what a restore made once it ended unusable (TERMINATED, ...), only if this task instance made it.

    The instance goes through the one delete flow with :class:`RestoredInstanceDeleteTarget` and the
    ownership of this restore alone (its ``restore-id``): protection cleared, disks it left deleted. An
    instance another run made (adopted with ``if_exists="reuse"``) is left alone.

    :param hook: the hook.
    :param request: the restore's request.
    :param dag_id: the restoring task's DAG id.
    :param is_retry: this is not the task's first try.
    :param log: the task's logger.
    :return: what was done, for the restore's error message.
    """
    zone = str(request.target.zone)
    target = RestoredInstanceDeleteTarget(zone, RestoreOwnership((dag_id,), restore_id=request.owner_key))
    ids = request.request_ids.derived(instance_key(zone, request.name), "cleanup")
    cleanup = delete.DeleteRequest(target, request.project_id, request.name, ids)

    def attempt(generation: int) -> Deletion:
        started = delete.start_delete(hook, cleanup, generation, is_retry=is_retry, log=log)
        gone = delete.wait_until_gone(hook, cleanup, started, timeout=_remaining(hook), poll_interval=5.0, log=log)
        return delete.finish(hook, cleanup, gone, is_retry=is_retry, log=log)

    try:
        done = with_resubmissions(attempt, first_generation=0, what=cleanup.what, log=log)
    except NotARestoredInstanceError as refused:
        return f"it was left alone, not being this restore's own ({refused})"
    except ComputeEngineError as error:
        return f"cleaning it up failed ({error}); delete it yourself"
    if not done.deleted:
        return "nothing was left to clean up"
    disks = done.cleanup.get("disks_deleted") or []
    return f"it was cleaned up: instance id {done.resource_id} deleted" + (
        f", disks {', '.join(disks)}" if disks else ""
    )
