"""Guards of the coalescing operation poller's "finished since" lists that a mutation spot-check (issue 21)
found unguarded, or guarded only by a log line or an exact filter string:

- once the server refused the finished-since filter (400), no further finished-since list is sent;
- a completion that shows up late, with an ``endTime`` within the watermark's overlap before the newest
  server time already seen, is still found by the next finished-since list (the wait ends).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_machine_images.emulator.filters import compile_filter
from airflow_machine_images.emulator.timefmt import rfc3339
from airflow_machine_images.triggers import polling
from airflow_machine_images.triggers.finished_operations import OVERLAP_SECONDS
from airflow_machine_images.triggers.polling import OperationPoller
from tests.unit.test_finished_operations import FakeScope, assert_every_result_final, fleet, run_waits

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import pytest

# ---------------------------------------------------------------- 6. a refused filter is sent once


def test_after_the_server_refuses_the_finished_since_filter_once_no_more_are_sent() -> None:
    scope = FakeScope(fleet(30), mode="refuse", failing=frozenset({"operation-0007"}))
    results, poller = run_waits(scope)
    assert_every_result_final(scope, results)
    assert scope.finished_listings() == 1  # the one the server refused (400), then never again
    assert poller.stats.finished_listings == 0  # none was answered


# ---------------------------------------------------------------- 11. the watermark's overlap


T0 = datetime(2026, 11, 30, 17, 0, tzinfo=timezone.utc)
#: Seconds after T0: ``fast`` ends at FAST_END, ``slow`` half the watermark's overlap earlier.
FAST_END = 20.0
SLOW_END = FAST_END - OVERLAP_SECONDS / 2


def operation(name: str, *, ended_after: float | None) -> dict[str, Any]:
    """An operation inserted at T0, DONE ``ended_after`` seconds later (None: still running)."""
    op: dict[str, Any] = {"name": name, "insertTime": rfc3339(T0), "startTime": rfc3339(T0), "status": "RUNNING"}
    if ended_after is not None:
        op |= {"status": "DONE", "endTime": rfc3339(T0 + timedelta(seconds=ended_after))}
    return op


class LateCompletionScope:
    """One zone's operations, where ``slow``'s completion becomes visible late.

    The first list shows ``fast`` DONE at FAST_END but ``slow`` still RUNNING, although ``slow`` ended at
    SLOW_END, within the overlap before (its completion was not visible yet); every later list shows both
    DONE. So the newest server time the poller has seen (FAST_END) is later than ``slow``'s ``endTime``:
    only a "finished since" list that starts the overlap earlier can show it. Reconciliations are switched
    off by the test, so the lists are the only way the wait can end; after :data:`MAX_LISTS` lists the
    scope gives up.
    """

    client_key = ("late-completion",)
    MAX_LISTS = 20

    def __init__(self) -> None:
        self.filters: list[str] = []

    @contextlib.asynccontextmanager
    async def lease_client(self) -> AsyncIterator[None]:
        yield None

    async def list_operations_page(
        self, *, project_id: str, filter_: str, page_token: str | None, zone: str | None = None
    ) -> dict[str, Any]:
        self.filters.append(filter_)
        await asyncio.sleep(0)
        if len(self.filters) > self.MAX_LISTS:
            raise RuntimeError(f"after {self.MAX_LISTS} lists the poller still had not seen slow's completion")
        slow = operation("slow", ended_after=None if len(self.filters) == 1 else SLOW_END)
        ops = [slow, operation("fast", ended_after=FAST_END)]
        return {"items": [op for op in ops if compile_filter(filter_)(op)]}

    async def get_operation(self, *, operation_name: str, project_id: str, zone: str | None = None) -> dict[str, Any]:
        raise AssertionError("the lists show every waited-for operation: nothing is read on its own")


def test_a_completion_within_the_overlap_before_the_newest_time_seen_ends_its_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(OperationPoller, "supports_long_poll", False)  # two waiters: coalesced, not long-polled
    monkeypatch.setattr(polling, "RECONCILE_EVERY_CYCLES", 10**6)  # the finished-since lists alone must find it
    scope = LateCompletionScope()
    poller = OperationPoller(scope, "demo-project", max_requests_per_minute=60_000, zone="us-central1-a")  # type: ignore[arg-type]

    async def scenario() -> list[Any]:
        waits = [
            poller.wait_for(name, lambda op: op is not None and op["status"] == "DONE", 0.001)
            for name in ["slow", "fast"]
        ]
        return list(await asyncio.wait_for(asyncio.gather(*waits), timeout=60))

    slow, fast = asyncio.run(scenario())
    assert slow["status"] == "DONE" and slow["endTime"] == rfc3339(T0 + timedelta(seconds=SLOW_END))
    assert fast["status"] == "DONE"
    assert "endTime" in scope.filters[1]  # the second list was a "finished since" list, and it found slow
    assert len(scope.filters) == 2 and poller.finished_lists
