"""Everything the emulated API knows, behind one lock; time-driven changes are applied when read.

There are no background threads: an operation's status is a function of the clock, and the effects
of finished operations (an image becoming READY, disappearing after a delete or a failed insert)
are applied by :meth:`ComputeState.settle`, which every reader calls first, under the lock.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow_machine_images.emulator.resources import (
    Instance,
    MachineImage,
    Operation,
    OperationFailure,
    storage_location_for,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime

    from airflow_machine_images.emulator.timefmt import Clock

__all__ = ["ComputeState"]


class ComputeState:
    """Instances, machine images, operations and remembered requestIds of every project.

    :param clock: the clock.
    :param operation_seconds: default duration of insert and delete operations.
    :param request_id_ttl_seconds: how long requestIds are remembered (None = forever).
    :param seed: seed for ids and names.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        operation_seconds: float,
        request_id_ttl_seconds: float | None,
        seed: int | None,
    ) -> None:
        self.clock = clock
        self.operation_seconds = operation_seconds
        self.request_id_ttl_seconds = request_id_ttl_seconds
        self.cond = threading.Condition(threading.Lock())
        self._rng = random.Random(seed)
        self._instances: dict[tuple[str, str, str], Instance] = {}
        self._project_numbers: dict[str, str] = {}  # project id -> number
        self._project_ids: dict[str, str] = {}  # number -> project id
        self._images: dict[str, dict[str, MachineImage]] = {}
        self._operations: dict[str, dict[str, Operation]] = {}
        self._request_ids: dict[tuple[str, str], tuple[Operation, float]] = {}
        self._pending: list[tuple[float, int, Operation, MachineImage | Instance]] = []
        self._sequence = itertools.count()
        self._stopping = False

    # -- locking -----------------------------------------------------------------------------------

    @contextmanager
    def session(self) -> Iterator[float]:
        """Hold the lock with every due operation applied.

        :return: (as a context manager) the monotonic ``now`` the state was settled at.
        """
        with self.cond:
            now = self.clock.now()
            self.settle(now)
            yield now

    def settle(self, now: float) -> None:
        """Apply the effects of operations that have become DONE by ``now``. Call with the lock held.

        :param now: ``time.monotonic()``.
        """
        while self._pending and self._pending[0][0] <= now:
            _, _, operation, target = heapq.heappop(self._pending)
            operation.settled = True
            if isinstance(target, Instance):
                self._settle_instance(operation, target)
                continue
            image = target
            images = self._images.get(image.project, {})
            current = images.get(image.name) is image
            if operation.operation_type == "insert":
                if operation.failure is not None:
                    if current:
                        del images[image.name]
                elif image.status == "CREATING":
                    image.status = "READY"
            elif operation.operation_type == "delete":
                if operation.failure is not None:
                    image.status = "READY"
                elif current:
                    del images[image.name]

    def _settle_instance(self, operation: Operation, instance: Instance) -> None:
        """Apply a DONE instance operation: a failed insert leaves no instance, a delete removes it."""
        key = (instance.project, instance.zone, instance.name)
        current = self._instances.get(key) is instance
        if instance.operation is operation:
            instance.operation = None
        # An insert that failed leaves nothing; a delete that succeeded removes it.
        gone = (operation.operation_type == "insert") == (operation.failure is not None)
        if current and gone and operation.operation_type in ("insert", "delete"):
            del self._instances[key]

    # -- ids ---------------------------------------------------------------------------------------

    def new_id(self) -> str:
        """:return: a fresh numeric id, as text (lock held)."""
        return str(self._rng.randrange(10**18, 9 * 10**18))

    def _operation_name(self, now: float) -> str:
        millis = int(self.clock.wall(now).timestamp() * 1000)
        bits = self._rng.getrandbits
        return f"operation-{millis}-{bits(52):013x}-{bits(32):08x}-{bits(32):08x}"

    # -- projects ----------------------------------------------------------------------------------

    def project_number(self, project: str) -> str:
        """The project's number, given on first sight (lock held).

        Derived from the project id (12 digits, like real project numbers), so the same project has
        the same number in every run; :meth:`set_project_number` chooses another.

        :param project: the project id.
        :return: its number, as text.
        """
        number = self._project_numbers.get(project)
        if number is None:
            digest = int.from_bytes(hashlib.sha256(project.encode()).digest()[:8], "big")
            number = str(10**11 + digest % (9 * 10**11))
            while number in self._project_ids:  # a collision of two ids: the next free number
                number = str(int(number) + 1)
            self._project_numbers[project] = number
            self._project_ids[number] = project
        return number

    def set_project_number(self, project: str, number: str) -> None:
        """Give a project a chosen number (lock held).

        :param project: the project id.
        :param number: its number (digits).
        :raises ValueError: another project has that number.
        """
        holder = self._project_ids.get(number)
        if holder is not None and holder != project:
            raise ValueError(f"Project number {number} belongs to {holder}")
        old = self._project_numbers.pop(project, None)
        if old is not None:
            del self._project_ids[old]
        self._project_numbers[project] = number
        self._project_ids[number] = project

    def project_id(self, project: str) -> str | None:
        """The project id a path names, by id or by number (lock held).

        :param project: a project id, or a number.
        :return: the project id; None for a number no project has.
        """
        if project.isdigit():
            return self._project_ids.get(project)
        self.project_number(project)  # every project seen gets its number
        return project

    # -- instances ---------------------------------------------------------------------------------

    def add_instance(
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
        """Create (or replace) an instance. Call with the lock held.

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
            id=self.new_id(),
            disk_size_gb=disk_size_gb,
            operation_seconds=operation_seconds,
            created=self.clock.wall(self.clock.now()),
            labels=dict(labels or {}),
            status=status,
            source_machine_image=source_machine_image,
        )
        self._instances[(project, zone, name)] = instance
        self.project_number(project)
        return instance

    def instances(self, project: str) -> list[Instance]:
        """:return: the instances of a project, oldest first (lock held)."""
        return [i for i in self._instances.values() if i.project == project]

    def all_instances(self) -> list[Instance]:
        """:return: the instances of every project, oldest first (lock held)."""
        return list(self._instances.values())

    def instance(self, project: str, zone: str, name: str) -> Instance | None:
        """The instance, by project id or number and by name or numeric id, or None (lock held).

        The discovery document's ``instances.get`` takes an ``instance`` matching
        ``[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?|[1-9][0-9]{0,19}`` (a name or an id) and a ``project``
        matching ``[0-9]{1,19}`` or an id.
        """
        project_id = self.project_id(project)
        if project_id is None:
            return None
        found = self._instances.get((project_id, zone, name))
        if found is None and name.isdigit():
            found = next(
                (i for i in self._instances.values() if (i.project, i.zone, i.id) == (project_id, zone, name)), None
            )
        return found

    def restore_instance(
        self,
        *,
        project: str,
        zone: str,
        name: str,
        image: MachineImage,
        now: float,
        request_id: str | None,
        failure: OperationFailure | None,
        user: str,
        version: str,
        fields: dict[str, Any],
    ) -> Operation:
        """Create an instance from a machine image (name free); its insert operation moves it to RUNNING.

        :param project: the new instance's project.
        :param zone: its zone.
        :param name: its name.
        :param image: the source machine image (READY).
        :param now: ``time.monotonic()``.
        :param request_id: the insert's requestId.
        :param failure: make the operation fail (the instance then disappears).
        :param user: who asked.
        :param version: the request's API version.
        :param fields: labels, machine_type, metadata, description.
        :return: the zonal insert operation.
        """
        instance = Instance(
            project=project,
            zone=zone,
            name=name,
            id=self.new_id(),
            disk_size_gb=image.source.disk_size_gb,
            operation_seconds=None,
            created=self.clock.wall(now),
            source_machine_image=image.path,
            **fields,
        )
        self._instances[(project, zone, name)] = instance
        return self._start_operation(
            instance,
            "insert",
            now=now,
            duration=self.operation_seconds,
            request_id=request_id,
            failure=failure,
            user=user,
            version=version,
        )

    def delete_instance(
        self, instance: Instance, *, now: float, request_id: str | None, failure: OperationFailure | None, user: str
    ) -> Operation:
        """Start deleting an instance; it is STOPPING until the operation is DONE, then gone (lock held).

        :param instance: the instance.
        :param now: ``time.monotonic()``.
        :param request_id: the requestId.
        :param failure: make the operation fail (the instance then stays RUNNING).
        :param user: who asked.
        :return: the zonal delete operation.
        """
        return self._start_operation(
            instance,
            "delete",
            now=now,
            duration=self.operation_seconds,
            request_id=request_id,
            failure=failure,
            user=user,
        )

    # -- request ids -------------------------------------------------------------------------------

    def remembered(self, project: str, request_id: str | None, now: float) -> Operation | None:
        """The operation a requestId started, if still remembered. Call with the lock held.

        :param project: the request's project.
        :param request_id: the requestId (None = no lookup).
        :param now: ``time.monotonic()``.
        :return: the original operation, or None.
        """
        if request_id is None:
            return None
        entry = self._request_ids.get((project, request_id))
        if entry is None:
            return None
        operation, since = entry
        if self.request_id_ttl_seconds is not None and now - since > self.request_id_ttl_seconds:
            del self._request_ids[(project, request_id)]
            return None
        return operation

    def forget_request_ids(self) -> None:
        """Forget every requestId, as the server does after its (undocumented) memory time."""
        with self.cond:
            self._request_ids.clear()

    # -- operations --------------------------------------------------------------------------------

    def _start_operation(
        self,
        target: MachineImage | Instance,
        operation_type: str,
        *,
        now: float,
        duration: float,
        request_id: str | None,
        failure: OperationFailure | None,
        user: str,
        version: str | None = None,
    ) -> Operation:
        """Start an operation on an image (global) or an instance (zonal); lock held."""
        zone = target.zone if isinstance(target, Instance) else None
        operation = Operation(
            project=target.project,
            name=self._operation_name(now),
            id=self.new_id(),
            operation_type=operation_type,
            target_path=target.path,
            target_id=target.id,
            user=user,
            client_operation_id=request_id,
            start=now,
            duration=max(0.0, duration),
            failure=failure,
            version=version or (target.version if isinstance(target, MachineImage) else "beta"),
            zone=zone,
        )
        self._operations.setdefault(target.project, {})[operation.name] = operation
        if request_id is not None:
            self._request_ids[(target.project, request_id)] = (operation, now)
        if isinstance(target, Instance):
            target.operation = operation
        heapq.heappush(self._pending, (operation.end, next(self._sequence), operation, target))
        self.settle(now)
        return operation

    def operation(self, project: str, name: str, zone: str | None = None) -> Operation | None:
        """:return: the operation of one scope (global, or ``zone``), by name or numeric id, or None (lock held)."""
        operations = self._operations.get(project, {})
        found = operations.get(name)
        if found is None and name.isdigit():
            found = next((op for op in operations.values() if op.id == name), None)
        return found if found is not None and found.zone == zone else None

    def operations(self, project: str, zone: str | None = None) -> list[Operation]:
        """:return: every operation of a project in one scope: global (None) or ``zone`` (lock held)."""
        return [op for op in self._operations.get(project, {}).values() if op.zone == zone]

    def wait(self, operation: Operation, deadline: float) -> None:
        """Block until the operation is DONE, the deadline passes, or the emulator stops (lock held).

        Sleeps on the condition until exactly the operation's end, so DONE is seen within
        milliseconds.

        :param operation: the operation.
        :param deadline: monotonic instant to give up at.
        """
        while not self._stopping:
            now = self.clock.now()
            self.settle(now)
            if operation.phase(now)[0] == "DONE" or now >= deadline:
                return
            self.cond.wait(min(deadline, operation.end) - now + 0.0005)

    def set_stopping(self, stopping: bool) -> None:
        """Release (True) or re-allow (False) long-polls.

        :param stopping: whether the server is stopping.
        """
        with self.cond:
            self._stopping = stopping
            self.cond.notify_all()

    # -- machine images ----------------------------------------------------------------------------

    def image(self, project: str, name: str) -> MachineImage | None:
        """:return: the image, by name or numeric id, or None (lock held)."""
        images = self._images.get(project, {})
        found = images.get(name)
        if found is None and name.isdigit():
            found = next((image for image in images.values() if image.id == name), None)
        return found

    def images(self, project: str) -> list[MachineImage]:
        """:return: every image of a project (lock held)."""
        return list(self._images.get(project, {}).values())

    def create_image(
        self,
        *,
        project: str,
        name: str,
        source: Instance,
        now: float,
        created: datetime | None = None,
        status: str = "CREATING",
        request_id: str | None = None,
        failure: OperationFailure | None = None,
        user: str,
        version: str,
        fields: dict[str, Any] | None = None,
    ) -> tuple[MachineImage, Operation | None]:
        """Add an image; a CREATING or DELETING one gets the operation that moves it on. Lock held.

        :param project: its project.
        :param name: its name (must be free).
        :param source: the instance it is made from.
        :param now: ``time.monotonic()``.
        :param created: its creation moment (None = now).
        :param status: its initial status.
        :param request_id: the insert's requestId.
        :param failure: make the operation fail.
        :param user: who asked.
        :param version: API version its snapshot selfLinks use.
        :param fields: other MachineImage attributes (labels, description, ...).
        :return: the image and its operation (None for a seeded image in a static status).
        """
        extra = dict(fields or {})
        image = MachineImage(
            project=project,
            name=name,
            id=self.new_id(),
            created=created or self.clock.wall(now),
            source=source,
            status=status,
            labels=dict(extra.pop("labels", None) or {}),
            storage_locations=list(extra.pop("storage_locations", None) or [storage_location_for(source.zone)]),
            version=version,
            **extra,
        )
        self._images.setdefault(project, {})[name] = image
        operation = None
        if status == "CREATING":
            duration = self.operation_seconds if source.operation_seconds is None else source.operation_seconds
            operation = self._start_operation(
                image, "insert", now=now, duration=duration, request_id=request_id, failure=failure, user=user
            )
        elif status == "DELETING":
            operation = self._start_operation(
                image,
                "delete",
                now=now,
                duration=self.operation_seconds,
                request_id=None,
                failure=None,
                user=user,
            )
        return image, operation

    def delete_image(
        self,
        image: MachineImage,
        *,
        now: float,
        request_id: str | None,
        failure: OperationFailure | None,
        user: str,
    ) -> Operation:
        """Start deleting an image (lock held).

        :param image: the image.
        :param now: ``time.monotonic()``.
        :param request_id: the requestId.
        :param failure: make the operation fail (the image then returns to READY).
        :param user: who asked.
        :return: the delete operation.
        """
        image.status = "DELETING"
        return self._start_operation(
            image,
            "delete",
            now=now,
            duration=self.operation_seconds,
            request_id=request_id,
            failure=failure,
            user=user,
        )

    def set_labels(
        self, image: MachineImage, labels: dict[str, str], *, now: float, request_id: str | None, user: str
    ) -> Operation:
        """Replace an image's labels at once; the operation is DONE immediately (lock held).

        :param image: the image.
        :param labels: the new labels.
        :param now: ``time.monotonic()``.
        :param request_id: the requestId.
        :param user: who asked.
        :return: the setLabels operation.
        """
        image.labels = dict(labels)
        return self._start_operation(
            image, "setLabels", now=now, duration=0.0, request_id=request_id, failure=None, user=user
        )
