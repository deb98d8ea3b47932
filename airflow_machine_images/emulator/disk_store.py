"""The zonal persistent disks of every project: made with the instances they boot, deleted with them or on their own.

What the real API does, and where it is written:

- An instance created from a machine image gets disks named after it: the boot disk takes the instance's
  name; a disk left behind by an earlier instance of that name makes ``instances.insert`` answer 409
  ``alreadyExists`` naming ``.../disks/NAME`` (hashicorp/terraform issue 7998). The names of the other
  disks are not documented: the emulator names them ``NAME-1``, ``NAME-2``, ... (unverified).
- Each disk keeps the ``autoDelete`` of its saved disk (``SavedAttachedDisk.autoDelete``: "Specifies
  whether the disk will be auto-deleted when the instance is deleted", discovery documents); a disk with
  ``autoDelete: false`` survives ``instances.delete``, detached, and keeps billing.
- A disk attached to an instance cannot be deleted: 400 ``resourceInUseByAnotherResource``, "The disk
  resource '...' is already being used by '...'" (the message quoted in terraform-provider-google issue
  2078; the reason as stackshy/cloudemu pull 801 models it).
- ``disks.get`` takes a name or a numeric id (the ``disk`` path pattern of both discovery documents);
  ``disks.delete`` answers a zonal Operation and the disk is DELETING until it is gone.
- A restored disk names its machine image in ``sourceMachineImage`` and ``sourceMachineImageId``
  (Disk schema, discovery documents; that a disk made by ``instances.insert`` from a machine image
  carries them is unverified).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from airflow_machine_images.emulator.resources import Disk

if TYPE_CHECKING:
    from datetime import datetime

    from airflow_machine_images.emulator.resources import Operation
    from airflow_machine_images.emulator.state import ComputeState, Origin

__all__ = ["DiskStore"]


class DiskStore:
    """Disks by project, zone and name; every method is called with the state's lock held.

    :param state: the shared state (lock, ids, project numbers, operations).
    """

    def __init__(self, state: ComputeState) -> None:
        self._state = state
        self._disks: dict[tuple[str, str, str], Disk] = {}

    def get(self, project: str, zone: str, name: str) -> Disk | None:
        """The disk, by project id or number and by name or numeric id, or None.

        :param project: a project id or number.
        :param zone: the zone.
        :param name: a name or numeric id.
        """
        project_id = self._state.project_id(project)
        if project_id is None:
            return None
        found = self._disks.get((project_id, zone, name))
        if found is None and name.isdigit():
            found = next(
                (d for d in self._disks.values() if (d.project, d.zone, d.id) == (project_id, zone, name)), None
            )
        return found

    def in_project(self, project: str) -> list[Disk]:
        """:param project: the project id. :return: its disks, oldest first."""
        return [disk for disk in self._disks.values() if disk.project == project]

    def add(
        self,
        project: str,
        zone: str,
        name: str,
        *,
        size_gb: int,
        created: datetime,
        users: list[str] | None = None,
        source_machine_image: tuple[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> Disk:
        """Create a disk (its name must be free in its zone).

        :param project: its project.
        :param zone: its zone.
        :param name: its name.
        :param size_gb: its size.
        :param created: its creation moment.
        :param users: the instances it is attached to.
        :param source_machine_image: the path and id of the machine image it is restored from, if any.
        :param labels: its labels.
        :return: the disk.
        """
        image_path, image_id = source_machine_image or (None, None)
        disk = Disk(
            project=project,
            zone=zone,
            name=name,
            id=self._state.new_id(),
            size_gb=size_gb,
            created=created,
            users=list(users or []),
            source_machine_image=image_path,
            source_machine_image_id=image_id,
            labels=dict(labels or {}),
        )
        self._disks[(project, zone, name)] = disk
        self._state.project_number(project)
        return disk

    def remove(self, disk: Disk) -> None:
        """Remove a disk at once (the effect of a finished delete, or of its instance's with ``autoDelete``).

        :param disk: the disk.
        """
        key = (disk.project, disk.zone, disk.name)
        if self._disks.get(key) is disk:
            del self._disks[key]

    def detach(self, disk_name: str, project: str, zone: str, instance_path: str, *, auto_delete: bool) -> None:
        """The effect of an instance's deletion on one of its disks: deleted with it, or left detached.

        :param disk_name: the disk.
        :param project: its project.
        :param zone: its zone.
        :param instance_path: the instance deleted.
        :param auto_delete: the attachment's ``autoDelete``.
        """
        disk = self._disks.get((project, zone, disk_name))
        if disk is None:
            return
        disk.users = [user for user in disk.users if user != instance_path]
        if auto_delete and not disk.users:
            self.remove(disk)

    def delete(self, disk: Disk, *, now: float, origin: Origin) -> Operation:
        """Start deleting a disk; it is DELETING until the operation is DONE, then gone (a failed delete keeps it).

        :param disk: the disk (attached to no instance).
        :param now: ``time.monotonic()``.
        :param origin: who asks, the requestId, whether it fails.
        :return: the zonal delete operation.
        """
        operation = self._state.start_operation(
            disk,
            "delete",
            now=now,
            duration=self._state.operation_seconds,
            origin=origin,
            version="beta",
            on_done=functools.partial(self._settled, disk),
            zone=disk.zone,
        )
        disk.operation = None if operation.settled else operation
        return operation

    def _settled(self, disk: Disk, operation: Operation) -> None:
        """Apply a DONE delete: the disk is gone, unless the operation failed."""
        if disk.operation is operation:
            disk.operation = None
        if operation.failure is None:
            self.remove(disk)
