"""Disks a restored instance leaves behind: which are provably its own, and deleting them by identity.

An instance restored from a machine image gets disks named after it, each with the ``autoDelete`` its
saved disk had (``SavedAttachedDisk.autoDelete``, discovery documents); those without it survive
``instances.delete``, detached, and keep billing, and the boot disk's name then blocks the next restore
of that name (hashicorp/terraform issue 7998). So before an instance is deleted, :func:`surviving_disks`
reads each attached disk without ``autoDelete`` and decides whether the restore made it:

- it is attached to this instance (``users`` names it) and was created no earlier than the instance
  (``creationTimestamp``, both written by the server); a disk that existed before and was attached later
  is somebody's data, and is kept;
- when the disk names a source machine image (``sourceMachineImage``, Disk schema), it is the
  instance's. Whether a disk made by ``instances.insert`` from a machine image carries that field is
  unverified, so its absence proves nothing either way.

Once the instance is gone, :func:`delete_disks` deletes the disks so proven, each through the one delete
flow (:mod:`airflow_machine_images.flows.delete`) with :class:`DiskDeleteTarget`: read again, refused
unless it still has the id read before and nothing uses it, deleted by that id, confirmed gone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final

from airflow_machine_images.api.timestamps import parse_timestamp
from airflow_machine_images.exceptions import (
    ComputeEngineError,
    DiskNotOwnedError,
    LeftoverDisksError,
    OperationFailedError,
    ResourceNotFoundError,
    ResubmissionNeeded,
)
from airflow_machine_images.flows import delete
from airflow_machine_images.results import disk_delete_summary
from airflow_machine_images.validation import MachineImageValidationError, parse_machine_image_ref

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_machine_images.flows.delete import DeleteRequest, Deletion
    from airflow_machine_images.hooks.sync import ComputeEngineMachineImageHook
    from airflow_machine_images.logs import TaskLogger as Log

__all__ = ["MAX_DISK_SUBMISSIONS", "DiskDeleteTarget", "delete_disks", "surviving_disks"]

#: Submissions (generations) of one disk's delete in one try. Unlike other deletes, a failed one is not left
#: to the next Airflow try: once its instance is gone, no later try can tell which disks were the restore's.
MAX_DISK_SUBMISSIONS: Final = 4
#: The pause after a failed submission, doubling (1, 2, 4 s): failures such as RESOURCE_OPERATION_RATE_EXCEEDED
#: clear by themselves (googleapis/python-compute issue 279).
_FIRST_PAUSE_SECONDS: Final = 1.0


@dataclass(frozen=True)
class DiskDeleteTarget:
    """A disk a deleted instance left behind, for the delete flow: deleted only with the id read before the
    instance was deleted, and only once nothing uses it.

    :param zone: the disk's zone.
    :param expected_id: the numeric id it had when its instance was read.
    """

    zone: str
    expected_id: str

    kind: ClassVar[str] = "Disk"

    def get(self, hook: ComputeEngineMachineImageHook, request: DeleteRequest) -> Mapping[str, Any]:
        """``disks.get`` of the request's disk."""
        return hook.get_disk(zone=self.zone, name=request.name, project_id=request.project_id)

    def check(self, request: DeleteRequest, resource: Mapping[str, Any]) -> None:
        """Refuse a disk of that name with another id, or one something uses.

        :raises DiskNotOwnedError: nothing is deleted.
        """
        found = str(resource.get("id"))
        if found != self.expected_id:
            raise DiskNotOwnedError(
                f"Disk {request.name} in {request.project_id}/{self.zone} is id {found} now, not id {self.expected_id} "
                "that the deleted instance left: another disk of that name, left alone"
            )
        users = [str(user) for user in resource.get("users") or []]
        if users:
            raise DiskNotOwnedError(
                f"Disk {request.name} in {request.project_id}/{self.zone} is attached to {', '.join(users)}: left alone"
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
        """Nothing to prepare; a disk leaves nothing behind."""
        return ()

    def delete(
        self, hook: ComputeEngineMachineImageHook, request: DeleteRequest, identity: str, request_id: str
    ) -> Mapping[str, Any]:
        """``disks.delete`` of ``identity`` (the numeric id just checked)."""
        return hook.delete_disk(zone=self.zone, name=identity, request_id=request_id, project_id=request.project_id)

    def clean_up(
        self,
        hook: ComputeEngineMachineImageHook,
        request: DeleteRequest,
        deletion: Deletion,
        *,
        is_retry: bool,
        log: Log,
    ) -> dict[str, Any]:
        """Nothing was left behind."""
        return {}

    def where(self, request: DeleteRequest) -> str:
        """``in P/ZONE``."""
        return f"in {request.project_id}/{self.zone}"

    def summary(self, request: DeleteRequest, deletion: Deletion) -> dict[str, Any]:
        """:func:`~airflow_machine_images.results.disk_delete_summary` of the delete."""
        return disk_delete_summary(
            project_id=request.project_id,
            zone=self.zone,
            name=request.name,
            disk_id=deletion.resource_id,
            operation=deletion.operation,
        )


def surviving_disks(
    hook: ComputeEngineMachineImageHook, instance: Mapping[str, Any], *, project_id: str, zone: str, log: Log
) -> tuple[dict[str, Any], ...]:
    """Read the instance's disks without ``autoDelete``; say of each whether the restore made it (see the module).

    :param hook: the hook (one ``disks.get`` per such disk).
    :param instance: the Instance resource, as read before its delete.
    :param project_id: its project.
    :param zone: its zone.
    :param log: the task's logger.
    :return: ``{"name", "id", "delete": True}`` for each disk to delete once the instance is gone, and
        ``{"name", "delete": False, "why"}`` for each one kept.
    """
    found: list[dict[str, Any]] = []
    for attached in instance.get("disks") or []:
        if not isinstance(attached, dict) or attached.get("autoDelete") is not False:
            continue
        name = str(attached.get("source") or "").rstrip("/").rsplit("/", 1)[-1]
        try:
            disk = hook.get_disk(zone=zone, name=name, project_id=project_id)
        except ResourceNotFoundError:
            continue
        why = _not_made_with(disk, instance)
        if why is None:
            found.append({"name": name, "id": str(disk.get("id")), "delete": True})
        else:
            log.warning("Disk %s survives instance %s and is kept: %s", name, instance.get("name"), why)
            found.append({"name": name, "delete": False, "why": why})
    return tuple(found)


def _not_made_with(disk: Mapping[str, Any], instance: Mapping[str, Any]) -> str | None:
    """Why ``disk`` is not provably one the restore of ``instance`` made, or None when it is."""
    if str(instance.get("selfLink")) not in [str(user) for user in disk.get("users") or []]:
        return "it is not attached to the instance any more"
    made, started = parse_timestamp(disk.get("creationTimestamp")), parse_timestamp(instance.get("creationTimestamp"))
    if made is None or started is None or made < started:
        created, started_at = disk.get("creationTimestamp"), instance.get("creationTimestamp")
        return f"it was created ({created}) before the instance ({started_at}): attached later, not made by the restore"
    source = disk.get("sourceMachineImage")
    if source is not None and _image_of(source) != _image_of(instance.get("sourceMachineImage")):
        return f"it was made from {source}, not from the instance's machine image"
    return None


def _image_of(value: object) -> tuple[str, str] | None:
    try:
        return parse_machine_image_ref(value, default_project=None)
    except MachineImageValidationError:
        return None


def delete_disks(
    hook: ComputeEngineMachineImageHook,
    request: DeleteRequest,
    leftovers: tuple[dict[str, Any], ...],
    *,
    zone: str,
    timeout: float,
    is_retry: bool,
    log: Log,
) -> dict[str, Any]:
    """Delete the disks :func:`surviving_disks` proved the restore's, each by the delete flow, confirming each gone.

    :param hook: the hook.
    :param request: the instance's delete (its task instance and project derive the disks' requestIds).
    :param leftovers: what :func:`surviving_disks` found.
    :param zone: the disks' zone.
    :param timeout: seconds to wait for each disk's delete.
    :param is_retry: this is not the task's first try (a replayed delete is then recognised as such).
    :param log: the task's logger.
    :return: ``{"disks_deleted": [names], "disks_kept": [{"name", "why"}]}``.
    :raises LeftoverDisksError: after trying them all, naming every disk that could not be deleted.
    """
    deleted: list[str] = []
    kept = [{"name": item["name"], "why": item.get("why")} for item in leftovers if not item.get("delete")]
    failed: dict[str, str] = {}
    for item in (item for item in leftovers if item.get("delete")):
        disk_request = delete.DeleteRequest(
            DiskDeleteTarget(zone, str(item["id"])),
            request.project_id,
            str(item["name"]),
            request.request_ids.derived(f"zones/{zone}/disks/{item['name']}", "delete"),
        )
        try:
            _delete_disk(hook, disk_request, timeout=timeout, is_retry=is_retry, log=log)
        except DiskNotOwnedError as refused:
            kept.append({"name": item["name"], "why": str(refused)})
            continue
        except ComputeEngineError as error:
            failed[str(item["name"])] = str(error)
            continue
        deleted.append(str(item["name"]))
    if failed:
        details = "; ".join(f"{name}: {why}" for name, why in sorted(failed.items()))
        raise LeftoverDisksError(
            f"{request.what} is deleted, but {len(failed)} disk(s) it left could not be deleted and keep billing: "
            f"{details}. Delete them yourself (gcloud compute disks delete NAME --zone {zone}) once they are free."
        )
    return {"disks_deleted": deleted, "disks_kept": kept}


def _delete_disk(
    hook: ComputeEngineMachineImageHook, request: DeleteRequest, *, timeout: float, is_retry: bool, log: Log
) -> None:
    """One disk through the delete flow, submitted again (next generation) after a failure, at most
    :data:`MAX_DISK_SUBMISSIONS` times in all.

    :raises ComputeEngineError: the last failure, saying how many submissions were made.
    :raises DiskNotOwnedError: the disk is not the one read before, or something uses it.
    """
    pause = _FIRST_PAUSE_SECONDS
    for generation in range(MAX_DISK_SUBMISSIONS):
        try:
            started = delete.start_delete(hook, request, generation, is_retry=is_retry, log=log)
            delete.wait_until_gone(hook, request, started, timeout=timeout, poll_interval=5.0, log=log)
            return
        except (ResubmissionNeeded, OperationFailedError) as failure:
            if generation + 1 == MAX_DISK_SUBMISSIONS:
                raise ComputeEngineError(
                    f"{request.what}: gave up after {MAX_DISK_SUBMISSIONS} submissions in this try: {failure}"
                ) from failure
            log.warning(
                "%s: %s; submitting again (generation %d) in %.0f s", request.what, failure, generation + 1, pause
            )
            time.sleep(pause)
            pause *= 2
