"""The instances of every project (and the zones that cannot be read), and what their operations do to them."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from airflow_machine_images.emulator.resources import Instance

if TYPE_CHECKING:
    from airflow_machine_images.emulator.resources import MachineImage, Operation
    from airflow_machine_images.emulator.state import ComputeState, Origin

__all__ = ["InstanceStore"]


class InstanceStore:
    """Instances by project, zone and name; every method is called with the state's lock held.

    :param state: the shared state (lock, ids, project numbers, operations).
    """

    def __init__(self, state: ComputeState) -> None:
        self._state = state
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
    ) -> Instance:
        """Create (or replace) an instance at once (seeding).

        :param project: its project.
        :param zone: its zone.
        :param name: its name.
        :param disk_size_gb: its boot disk size.
        :param operation_seconds: insert duration for images made from it (None = default).
        :param labels: its labels.
        :param status: its status (RUNNING, STOPPED, TERMINATED, ...).
        :param source_machine_image: the image it was restored from (``projects/P/global/machineImages/N``), if any.
        :return: the instance.
        """
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
        )
        self._instances[(project, zone, name)] = instance
        self._state.project_number(project)
        return instance

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
        :param fields: labels, machine_type, metadata, description.
        :return: the zonal insert operation.
        """
        instance = Instance(
            project=project,
            zone=zone,
            name=name,
            id=self._state.new_id(),
            disk_size_gb=image.source.disk_size_gb,
            operation_seconds=None,
            created=self._state.clock.wall(now),
            source_machine_image=image.path,
            **fields,
        )
        self._instances[(project, zone, name)] = instance
        return self._start(instance, "insert", now, origin, version)

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
        """Apply a DONE operation: a failed insert leaves no instance, a delete removes it."""
        key = (instance.project, instance.zone, instance.name)
        current = self._instances.get(key) is instance
        if instance.operation is operation:
            instance.operation = None
        # An insert that failed leaves nothing; a delete that succeeded removes it.
        gone = (operation.operation_type == "insert") == (operation.failure is not None)
        if current and gone and operation.operation_type in ("insert", "delete"):
            del self._instances[key]
