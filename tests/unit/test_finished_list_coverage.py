"""Issue 27: each "finished since" list covers from where the previous list's coverage ended.

The triggerer of a 500-instance mapped backup (30 s poll interval, waits joining as mapped tasks
deferred) turned the finished-since lists off three and a half minutes in ("13 completion(s) they
should have shown were missed"). The cause: a cycle that reads the list of unfinished operations
before the finished-since list (every reconciliation, and a cycle with many newcomers) observed the
newest waits' fresh ``insertTime``; the watermark jumped to about now, so that cycle's finished-since
list covered only the 10 s overlap, and the completions of the rest of the interval were found by the
same cycle's read-back and counted as misses. With a 10 s interval the gap is zero, which is why the
scale benchmark never saw it.

These tests run the real :class:`OperationPoller` against a fake zone whose list filters are evaluated
by the emulator's own filter language, on an event loop with a virtual clock (so 30 minutes of
polling take well under a second and no timing is measured): 10, 30 and 60 s poll intervals, waits
joining every few seconds, operations of 60-120 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import selectors
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest

from airflow_machine_images.api.timestamps import parse_timestamp
from airflow_machine_images.emulator.filters import compile_filter
from airflow_machine_images.emulator.timefmt import rfc3339
from airflow_machine_images.triggers.finished_operations import UNFINISHED_FILTER, FinishedListCoverage
from airflow_machine_images.triggers.polling import OperationPoller

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

#: The server's wall time at virtual second 0 (Pacific daylight time ends an hour later).
EPOCH = datetime(2026, 11, 1, 7, 0, tzinfo=timezone.utc)


class _AdvancingSelector(selectors.DefaultSelector):
    """A selector that never sleeps: when nothing is ready it moves the loop's clock to the next timer."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualClockLoop | None = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if not ready and timeout is not None and timeout > 0 and self.loop is not None:
            self.loop.now += timeout
        return ready


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` is virtual and jumps to the next timer whenever the loop would wait."""

    def __init__(self) -> None:
        selector = _AdvancingSelector()
        super().__init__(selector)
        selector.loop = self
        self.now = 0.0

    def time(self) -> float:
        return self.now


class JoiningZone:
    """One zone's operations: ``joins[i]`` virtual seconds in, operation ``i`` is inserted and lasts ``durations[i]``.

    Every list answer is computed at the loop's virtual time and filtered with the emulator's filter
    language; times are written in the server's own form (Pacific time, milliseconds).
    """

    client_key = ("joining-zone",)

    def __init__(self, loop: VirtualClockLoop, joins: list[float], durations: list[float]) -> None:
        self.loop = loop
        self.ops = {f"operation-{i:04d}": (joins[i], durations[i]) for i in range(len(joins))}
        self.filters: list[str] = []
        #: (virtual second asked, the instant a "finished since" list started after)
        self.finished_lists: list[tuple[float, datetime]] = []

    @contextlib.asynccontextmanager
    async def lease_client(self) -> AsyncIterator[None]:
        yield None

    def server_time(self, second: float) -> str:
        return rfc3339(EPOCH + timedelta(seconds=second))

    def render(self, name: str, now: float) -> dict[str, Any] | None:
        joined, duration = self.ops[name]
        if now < joined:
            return None
        op: dict[str, Any] = {
            "name": name,
            "insertTime": self.server_time(joined),
            "startTime": self.server_time(joined + 0.5),
            "status": "RUNNING",
        }
        if now >= joined + duration:
            op |= {"status": "DONE", "endTime": self.server_time(joined + duration)}
        return op

    async def list_operations_page(
        self, *, project_id: str, filter_: str, page_token: str | None, zone: str | None = None
    ) -> dict[str, Any]:
        self.filters.append(filter_)
        if "endTime" in filter_:
            after = parse_timestamp(filter_.split('endTime > "')[1].split('"')[0])
            assert after is not None
            self.finished_lists.append((self.loop.time(), after))
        await asyncio.sleep(0.05)  # a list call takes a little (virtual) time
        now = self.loop.time()
        matches = compile_filter(filter_)
        items = [op for name in sorted(self.ops) if (op := self.render(name, now)) is not None and matches(op)]
        return {"items": items[:500], **({"nextPageToken": "more"} if len(items) > 500 else {})}

    async def wait_operation(self, *, operation_name: str, project_id: str, zone: str | None = None) -> dict[str, Any]:
        joined, duration = self.ops[operation_name]
        await asyncio.sleep(max(0.05, min(120.0, joined + duration - self.loop.time())))
        op = self.render(operation_name, self.loop.time())
        assert op is not None
        return op

    async def get_operation(self, *, operation_name: str, project_id: str, zone: str | None = None) -> dict[str, Any]:
        op = self.render(operation_name, self.loop.time())
        assert op is not None
        return op


def joining_fleet(bursts: int, every: float, size: int, seed: int) -> tuple[list[float], list[float]]:
    """``size`` operations joining together every ``every`` seconds (jittered: tasks deferring in groups,
    as a pool of ``size`` worker slots defers them), ``bursts`` times; each lasts 60-120 s."""
    rng = random.Random(seed)
    joins = [b * every + rng.uniform(0, 1.0) for b in range(bursts) for _ in range(size)]
    return joins, [rng.uniform(60.0, 120.0) for _ in joins]


def run_joining_waits(
    interval: float, bursts: int, every: float, size: int, seed: int = 27
) -> tuple[JoiningZone, OperationPoller, dict[str, float]]:
    """Each wait joins when its operation is inserted; returns how long after its end each was detected."""
    loop = VirtualClockLoop()
    joins, durations = joining_fleet(bursts, every, size, seed)
    zone = JoiningZone(loop, joins, durations)
    poller = OperationPoller(zone, "demo-project", max_requests_per_minute=600, zone="us-central1-a")  # type: ignore[arg-type]
    late: dict[str, float] = {}

    async def one(name: str) -> None:
        joined, duration = zone.ops[name]
        await asyncio.sleep(joined)
        result = await poller.wait_for(name, lambda op: op is not None and op["status"] == "DONE", interval)
        assert result is not None and result["status"] == "DONE"
        late[name] = loop.time() - (joined + duration)

    async def scenario() -> None:
        await asyncio.wait_for(asyncio.gather(*(one(name) for name in zone.ops)), timeout=24 * 3600)

    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()
    return zone, poller, late


@pytest.mark.parametrize("interval", [10.0, 30.0, 60.0])
def test_finished_since_lists_stay_on_and_every_completion_is_seen_within_one_interval(interval: float) -> None:
    """Four waits join every 3 s for 20 minutes (about 120 at once): the lists stay on, no completion waits."""
    zone, poller, late = run_joining_waits(interval, bursts=400, every=3.0, size=4)
    # The scenario takes the path of the bug: reconciliations read the unfinished list (three name
    # chunks cost more than its one page) right before their finished-since list.
    assert poller.stats.reconciliations >= 3
    assert UNFINISHED_FILTER in zone.filters
    assert poller.finished_lists, "the finished-since lists were turned off"
    assert poller.stats.finished_list_misses == 0
    assert poller.stats.finished_listings >= 10
    # ...and each list reaches back a cycle or two (a reconciliation by name sends none), not to the
    # first completion: the coverage moves on with every list.
    oldest = max((EPOCH + timedelta(seconds=asked)) - after for asked, after in zone.finished_lists)
    assert oldest <= timedelta(seconds=3 * interval + 10), f"a finished-since list reached back {oldest}"
    # Every completion reached its waiter within one poll interval (plus the calls of one cycle).
    worst = max(late.values())
    assert worst <= interval + 2.0, f"a completion was detected {worst:.1f} s after it happened"


def test_each_list_starts_where_the_previous_one_ended_whatever_the_cycle_read_first() -> None:
    """The coverage marker: lowered to what unfinished reads prove, set by each finished-since list."""
    coverage = FinishedListCoverage(overlap_seconds=10.0)
    assert coverage.start() is None
    first = parse_timestamp(rfc3339(EPOCH + timedelta(seconds=100)))  # the server's own offset
    assert first is not None
    coverage.seen_unfinished(first + timedelta(seconds=5))
    coverage.seen_unfinished(first)  # seen unfinished earlier: the list must reach back to it
    assert coverage.start() == first - timedelta(seconds=10)
    coverage.listed(first + timedelta(seconds=30))
    newcomer = first + timedelta(seconds=59)  # read through the unfinished list right before the next list
    coverage.seen_unfinished(newcomer)
    assert coverage.start() == first + timedelta(seconds=20)  # not newcomer - 10 s: the whole interval
    assert coverage.text() == rfc3339(EPOCH + timedelta(seconds=120))  # in the server's own form
    coverage.reset()
    assert coverage.start() is None
