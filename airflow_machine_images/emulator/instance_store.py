"""The instances of every project (and the zones that cannot be read), and what their operations do to them.

An instance's disks live in the :class:`~.disk_store.DiskStore`: made with it (named after it, see
:func:`restored_disk_names`), deleted with it when ``autoDelete``, left detached otherwise.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from airflow_machine_images.emulator.resources import AttachedDisk, Instance

if TYPE_CHECKING:
    from airflow_machine_images.emulator.disk_store import DiskStore
    from airflow_machine_images.emulator.resources import Disk, MachineImage, Operation
    from airflow_machine_images.emulator.state import ComputeState, Origin

__all__ = ["DiskSpec", "InstanceStore", "restored_disk_names"]

#: A seeded instance's disk: ``(size_gb, auto_delete)``; the first is the boot disk.
DiskSpec = tuple[int, bool]


def restored_disk_names(instance_name: str, count: int) -> list[str]:
    """The names of the disks an instance restored from a machine image gets: the boot disk takes the
    instance's name (hashicorp/terraform issue 7998), the others ``NAME-1``, ``NAME-2``, ... (unverified).

    :param instance_name: the new instance's name.
    :param count: how many disks the image saved.
    """
    return [instance_name] + [f"{instance_name}-{index}" for index in range(1, count)]


class InstanceStore:
    """Instances by project, zone and name; every method is called with the state's lock held.

    :param state: the shared state (lock, ids, project numbers, operations).
    :param disks: the disks instances are made with.
    """

    def __init__(self, state: ComputeState, disks: DiskStore) -> None:
        self._state = state
        self._disks = disks
        self._instances: dict[tuple[str, str, str], Instance] = {}
        #: Zones whose ``instances.aggregatedList`` scope answers UNREACHABLE (set by seeding).
        self.unreachable_zones: frozenset[str] = frozenset()

    def add(
        self,
        project: str,
        zone: str,
        name: str,
        disk_size_gb: int,
        operation_seconds: float | None,
        *,
        labels: dict[str, str] | None = None,
        status: str = "RUNNING",
        source_machine_image: str | None = None,
        disks: list[DiskSpec] | None = None,
        deletion_protection: bool = False,
        attach: list[str] | None = None,
    ) -> Instance:
        """Create (or replace) an instance at once, with its disks (seeding).

        :param project: its project.
        :param zone: its zone.
        :param name: its name.
        :param disk_size_gb: its boot disk size.
        :param operation_seconds: insert duration for images made from it (None = default).
        :param labels: its labels.
        :param status: its status (RUNNING, STOPPED, TERMINATED, ...).
        :param source_machine_image: the image it was restored from (``projects/P/global/machineImages/N``), if any.
        :param disks: its disks (None: one boot disk of ``disk_size_gb``, auto-deleted); named as a restore
            names them. A disk name already taken in the zone is an error.
        :param deletion_protection: its ``deletionProtection``.
        :param attach: existing disks of its zone, attached to nothing, to attach too (``autoDelete`` false), as
            ``instances.attachDisk`` would.
        :return: the instance.
        :raises ValueError: a disk name is taken, or a disk to attach is missing or in use.
        """
        extra = self._attachable(project, zone, attach or [])
        replaced = self._instances.pop((project, zone, name), None)
        if replaced is not None:
            for old in replaced.attached():
                self._disks.detach(old.disk_name, project, zone, replaced.path, auto_delete=True)
        specs = disks if disks is not None else [(disk_size_gb, True)]
        attached = self._seeded_disks(project, zone, name, specs) + [
            AttachedDisk(d.name, d.name, boot=False, auto_delete=False, size_gb=d.size_gb) for d in extra
        ]
        instance = Instance(
            project=project,
            zone=zone,
            name=name,
            id=self._state.new_id(),
            disk_size_gb=disk_size_gb,
            operation_seconds=operation_seconds,
            created=self._state.clock.wall(self._state.clock.now()),
            labels=dict(labels or {}),
            status=status,
            source_machine_image=source_machine_image,
            disks=attached,
            deletion_protection=deletion_protection,
        )
        self._instances[(project, zone, name)] = instance
        for disk in attached[: len(specs)]:
            self._disks.add(
                project, zone, disk.disk_name, size_gb=disk.size_gb, created=instance.created, users=[instance.path]
            )
        for existing in extra:
            existing.users = [instance.path]
        return instance

    def _attachable(self, project: str, zone: str, names: list[str]) -> list[Disk]:
        """:return: the disks to attach to a seeded instance. :raises ValueError: one is missing or in use."""
        found = [self._disks.get(project, zone, n) for n in names]
        ready = [disk for disk in found if disk is not None and not disk.users]
        if len(ready) != len(names):
            raise ValueError(f"Disks to attach must exist in {project}/{zone} and be attached to nothing: {names}")
        return ready

    def _seeded_disks(self, project: str, zone: str, name: str, specs: list[DiskSpec]) -> list[AttachedDisk]:
        """:return: a seeded instance's own disks, named as a restore names them.
        :raises ValueError: a name is taken."""
        names = restored_disk_names(name, len(specs))
        taken = [n for n in names if self._disks.get(project, zone, n) is not None]
        if taken:
            raise ValueError(f"Disk {taken[0]!r} already exists in {project}/{zone}")
        return [
            AttachedDisk(n, n, boot=index == 0, auto_delete=auto, size_gb=size)
            for index, (n, (size, auto)) in enumerate(zip(names, specs, strict=True))
        ]

    def unlisted(self, project: str, zone: str, name: str, now: float) -> Instance:
        """An instance the store does not keep: the source of a seeded image that need not exist.

        :param project: its project.
        :param zone: its zone.
        :param name: its name.
        :param now: ``time.monotonic()`` (its creation moment).
        :return: a RUNNING instance with a 10 GB boot disk.
        """
        return Instance(
            project=project,
            zone=zone,
            name=name,
            id=self._state.new_id(),
            disk_size_gb=10,
            operation_seconds=None,
            created=self._state.clock.wall(now),
        )

    def in_project(self, project: str) -> list[Instance]:
        """:param project: the project id. :return: its instances, oldest first."""
        return [i for i in self._instances.values() if i.project == project]

    def everywhere(self) -> list[Instance]:
        """:return: the instances of every project, oldest first."""
        return list(self._instances.values())

    def get(self, project: str, zone: str, name: str) -> Instance | None:
        """The instance, by project id or number and by name or numeric id, or None.

        The discovery document's ``instances.get`` takes an ``instance`` matching
        ``[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?|[1-9][0-9]{0,19}`` (a name or an id) and a ``project``
        matching ``[0-9]{1,19}`` or an id.

        :param project: a project id or number.
        :param zone: the zone.
        :param name: a name or numeric id.
        """
        project_id = self._state.project_id(project)
        if project_id is None:
            return None
        found = self._instances.get((project_id, zone, name))
        if found is None and name.isdigit():
            found = next(
                (i for i in self._instances.values() if (i.project, i.zone, i.id) == (project_id, zone, name)), None
            )
        return found

    def restore(
        self,
        *,
        project: str,
        zone: str,
        name: str,
        image: MachineImage,
        now: float,
        origin: Origin,
        version: str,
        fields: dict[str, Any],
    ) -> Operation:
        """Create an instance from a machine image (name free); its insert operation moves it to RUNNING.

        :param project: the new instance's project.
        :param zone: its zone.
        :param name: its name.
        :param image: the source machine image (READY).
        :param now: ``time.monotonic()``.
        :param origin: who asks, the insert's requestId, whether it fails (the instance then disappears).
        :param version: the request's API version.
        :param fields: labels, machine_type, metadata, description, network_interfaces, service_accounts, and
            deletion_protection when the request set it (else the image's).
        :return: the zonal insert operation.
        """
        saved = image.disks()
        attached = [
            AttachedDisk(disk_name, disk.device_name, disk.boot, disk.auto_delete, disk.size_gb)
            for disk_name, disk in zip(restored_disk_names(name, len(saved)), saved, strict=True)
        ]
        instance = Instance(
            project=project,
            zone=zone,
            name=name,
            id=self._state.new_id(),
            disk_size_gb=saved[0].size_gb,
            operation_seconds=None,
            created=self._state.clock.wall(now),
            source_machine_image=image.path,
            disks=attached,
            **{"deletion_protection": image.deletion_protection, **fields},
        )
        self._instances[(project, zone, name)] = instance
        for disk in attached:
            self._disks.add(
                project,
                zone,
                disk.disk_name,
                size_gb=disk.size_gb,
                created=instance.created,
                users=[instance.path],
                source_machine_image=(image.path, image.id),
            )
        return self._start(instance, "insert", now, origin, version)

    def taken_disk(self, project: str, zone: str, name: str, image: MachineImage) -> str | None:
        """:param project: the new instance's project. :param zone: its zone. :param name: its name.
        :param image: the image it is restored from. :return: the path of the first disk name it needs that
        is taken, or None."""
        for disk_name in restored_disk_names(name, len(image.disks())):
            disk = self._disks.get(project, zone, disk_name)
            if disk is not None:
                return disk.path
        return None

    def set_deletion_protection(self, instance: Instance, protect: bool, *, now: float, origin: Origin) -> Operation:
        """Set ``deletionProtection`` (unless the operation fails); the zonal operation is DONE at once.

        :param instance: the instance.
        :param protect: the new value.
        :param now: ``time.monotonic()``.
        :param origin: who asks, the requestId, whether it fails.
        :return: the ``setDeletionProtection`` operation.
        """

        def apply(operation: Operation) -> None:
            if operation.failure is None:
                instance.deletion_protection = protect

        return self._state.start_operation(
            instance,
            "setDeletionProtection",
            now=now,
            duration=0.0,
            origin=origin,
            version="beta",
            on_done=apply,
            zone=instance.zone,
        )

    def delete(self, instance: Instance, *, now: float, origin: Origin) -> Operation:
        """Start deleting an instance; it is STOPPING until the operation is DONE, then gone.

        :param instance: the instance.
        :param now: ``time.monotonic()``.
        :param origin: who asks, the requestId, whether it fails (the instance then stays RUNNING).
        :return: the zonal delete operation.
        """
        return self._start(instance, "delete", now, origin, "beta")

    def _start(self, instance: Instance, kind: str, now: float, origin: Origin, version: str) -> Operation:
        """Start a zonal operation that moves ``instance`` (see :meth:`Instance.status_at`)."""
        operation = self._state.start_operation(
            instance,
            kind,
            now=now,
            duration=self._state.operation_seconds,
            origin=origin,
            version=version,
            on_done=functools.partial(self._settled, instance),
            zone=instance.zone,
        )
        # An operation that took no time is DONE already and moves nothing (as if it had ended now).
        instance.operation = None if operation.settled else operation
        return operation

    def _settled(self, instance: Instance, operation: Operation) -> None:
        """Apply a DONE operation: a failed insert leaves no instance and no disk; a delete removes the
        instance and its ``autoDelete`` disks, and leaves the others detached."""
        key = (instance.project, instance.zone, instance.name)
        current = self._instances.get(key) is instance
        if instance.operation is operation:
            instance.operation = None
        # An insert that failed leaves nothing; a delete that succeeded removes it.
        gone = (operation.operation_type == "insert") == (operation.failure is not None)
        if current and gone and operation.operation_type in ("insert", "delete"):
            del self._instances[key]
            failed_insert = operation.operation_type == "insert"
            for disk in instance.attached():
                self._disks.detach(
                    disk.disk_name,
                    instance.project,
                    instance.zone,
                    instance.path,
                    auto_delete=disk.auto_delete or failed_insert,
                )
