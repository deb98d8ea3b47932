"""What every resource store shares, behind one lock: ids, projects, requestIds and operations.

There are no background threads: an operation's status is a function of the clock, and the effects
of finished operations (an image becoming READY, disappearing after a delete or a failed insert)
are applied by :meth:`ComputeState.settle`, which every reader calls first, under the lock. Each
resource keeps its own objects in a store (:mod:`.machine_image_store`, :mod:`.instance_store`) and
starts its operations here, with the effect to apply once they are DONE.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from airflow_machine_images.emulator.resources import Operation

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from airflow_machine_images.emulator.resources import OperationFailure
    from airflow_machine_images.emulator.timefmt import Clock

__all__ = ["ComputeState", "OperationTarget", "Origin"]


@dataclass(frozen=True)
class Origin:
    """Where an operation comes from.

    :param user: who asked (the operation's ``user``).
    :param request_id: the request's requestId (remembered, to answer a repeat with this operation).
    :param failure: make the operation fail (an injected ``operation_error``).
    """

    user: str
    request_id: str | None = None
    failure: OperationFailure | None = None


class OperationTarget(Protocol):
    """A resource an operation acts on (its ``targetLink`` and ``targetId``)."""

    @property
    def project(self) -> str:
        """:return: its project."""
        ...

    @property
    def id(self) -> str:
        """:return: its numeric id (text)."""
        ...

    @property
    def path(self) -> str:
        """:return: ``projects/P/...``."""
        ...


class ComputeState:
    """The lock, ids, project numbers, remembered requestIds and operations of every project.

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
        self._project_numbers: dict[str, str] = {}  # project id -> number
        self._project_ids: dict[str, str] = {}  # number -> project id
        self._operations: dict[str, dict[str, Operation]] = {}
        self._request_ids: dict[tuple[str, str], tuple[Operation, float]] = {}
        self._pending: list[tuple[float, int, Operation, Callable[[Operation], None]]] = []
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
            _, _, operation, on_done = heapq.heappop(self._pending)
            operation.settled = True
            on_done(operation)

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

    def start_operation(
        self,
        target: OperationTarget,
        operation_type: str,
        *,
        now: float,
        duration: float,
        origin: Origin,
        version: str,
        on_done: Callable[[Operation], None],
        zone: str | None = None,
    ) -> Operation:
        """Start an operation on a resource: global, or zonal in ``zone`` (lock held).

        :param target: the resource it acts on.
        :param operation_type: ``insert``, ``delete``, ``setLabels``.
        :param now: ``time.monotonic()``.
        :param duration: seconds until it is DONE (negative: at once).
        :param origin: who asked, its requestId (remembered from now on), whether it fails.
        :param version: the API version its selfLinks use when read outside HTTP.
        :param on_done: the effect on the resource, applied (under the lock) once it is DONE; at once
            for an operation that takes no time.
        :param zone: the zone of a zonal operation (None: a global one).
        :return: the operation.
        """
        operation = Operation(
            project=target.project,
            name=self._operation_name(now),
            id=self.new_id(),
            operation_type=operation_type,
            target_path=target.path,
            target_id=target.id,
            user=origin.user,
            client_operation_id=origin.request_id,
            start=now,
            duration=max(0.0, duration),
            failure=origin.failure,
            version=version,
            zone=zone,
        )
        self._operations.setdefault(target.project, {})[operation.name] = operation
        if origin.request_id is not None:
            self._request_ids[(target.project, origin.request_id)] = (operation, now)
        heapq.heappush(self._pending, (operation.end, next(self._sequence), operation, on_done))
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
