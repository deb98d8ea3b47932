"""The coalescing operation poller's "finished since" lists, against a fake scope of operations whose
filters are evaluated by the emulator's own filter language (no HTTP), including servers that refuse,
ignore or silently fail the filter: every waiter still gets its operation's final state."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest

from airflow_machine_images.emulator.filters import compile_filter
from airflow_machine_images.emulator.timefmt import rfc3339
from airflow_machine_images.exceptions import InvalidRequestError
from airflow_machine_images.triggers import polling
from airflow_machine_images.triggers.finished_operations import (
    UNFINISHED_FILTER,
    ServerWatermark,
    done_since_filter,
    ended_after,
    ended_before,
)
from airflow_machine_images.triggers.polling import OperationPoller

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

#: Server seconds that pass with each call: operations of 20-90 server seconds end over a few
#: dozen calls, whatever the machine's load (the watermark's 10 s overlap is two calls).
STEP = 5.0
#: Real seconds between cycles.
POLL = 0.02


class FakeScope:
    """One scope's operations on a fast server clock; ``mode`` says how it treats ``endTime`` filters.

    ``honour`` evaluates them (AIP-160, as the emulator does); ``refuse`` answers 400; ``ignore``
    returns every operation; ``blind`` returns none; ``warn_once`` honours them but leaves every item
    out of the first answer with an ``UNREACHABLE`` warning.
    """

    client_key = ("fake-scope",)

    def __init__(self, durations: dict[str, float], mode: str = "honour", failing: frozenset[str] = frozenset()):
        self.mode = mode
        self.failing = failing
        self.durations = durations
        self.wall0 = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc)  # Pacific DST ends at 09:00 UTC
        self.calls = 0
        self.filters: list[str] = []
        self.warned = False

    @contextlib.asynccontextmanager
    async def lease_client(self) -> AsyncIterator[None]:
        yield None

    def now(self) -> float:
        return self.calls * STEP

    def render(self, name: str) -> dict[str, Any]:
        inserted = self.wall0
        op: dict[str, Any] = {"name": name, "insertTime": rfc3339(inserted), "startTime": rfc3339(inserted)}
        if self.now() < self.durations[name]:
            return op | {"status": "RUNNING"}
        op |= {"status": "DONE", "endTime": rfc3339(inserted + timedelta(seconds=self.durations[name]))}
        if name in self.failing:
            op["error"] = {"errors": [{"code": "QUOTA_EXCEEDED", "message": "quota"}]}
        return op

    async def list_operations_page(
        self, *, project_id: str, filter_: str, page_token: str | None, zone: str | None = None
    ) -> dict[str, Any]:
        self.filters.append(filter_)
        self.calls += 1
        await asyncio.sleep(0)
        ops = [self.render(name) for name in sorted(self.durations)]
        page: dict[str, Any] = {}
        if "endTime" in filter_:
            if self.mode == "refuse":
                raise InvalidRequestError("Invalid list filter expression", http_status=400)
            if self.mode == "blind":
                ops = []
            if self.mode == "warn_once" and not self.warned:
                self.warned, ops = True, []
                page["warning"] = {"code": "UNREACHABLE", "message": "Scope 'global' is unreachable"}
            if self.mode == "ignore":
                return page | {"items": ops}
        return page | {"items": [op for op in ops if compile_filter(filter_)(op)]}

    async def wait_operation(self, *, operation_name: str, project_id: str, zone: str | None = None) -> dict[str, Any]:
        self.calls += 1
        await asyncio.sleep(POLL)  # a short server-side wait (the long-polls of the last few waiters)
        return self.render(operation_name)

    async def get_operation(self, *, operation_name: str, project_id: str, zone: str | None = None) -> dict[str, Any]:
        return self.render(operation_name)

    def finished_listings(self) -> int:
        return sum(1 for f in self.filters if "endTime" in f)

    def name_reads(self) -> int:
        return sum(1 for f in self.filters if f.startswith("(name = "))


def run_waits(scope: FakeScope) -> tuple[list[dict[str, Any]], OperationPoller]:
    poller = OperationPoller(scope, "demo-project", max_requests_per_minute=60_000)  # type: ignore[arg-type]

    async def scenario() -> list[dict[str, Any]]:
        waits = [
            poller.wait_for(n, lambda op: op is not None and op["status"] == "DONE", POLL) for n in scope.durations
        ]
        return list(await asyncio.wait_for(asyncio.gather(*waits), timeout=60))

    return asyncio.run(scenario()), poller


def fleet(count: int) -> dict[str, float]:
    """``count`` operations ending evenly between 20 and 90 server seconds."""
    return {f"operation-{i:04d}": 20.0 + 70.0 * i / max(1, count - 1) for i in range(count)}


def assert_every_result_final(scope: FakeScope, results: list[dict[str, Any]]) -> None:
    assert [r["name"] for r in results] == sorted(scope.durations)
    assert all(r["status"] == "DONE" for r in results)
    assert {r["name"] for r in results if "error" in r} == scope.failing  # the outcome came with the completion


def test_completions_and_their_outcome_come_from_the_finished_since_lists() -> None:
    scope = FakeScope(fleet(40), failing=frozenset({"operation-0003", "operation-0031"}))
    results, poller = run_waits(scope)
    assert_every_result_final(scope, results)
    assert poller.finished_lists and poller.stats.finished_list_misses == 0
    assert poller.stats.finished_listings >= 2
    # Names are read once when the waits begin, then only by the reconciliations (one chunk each):
    # never a read-back per completion.
    assert scope.name_reads() <= 1 + poller.stats.reconciliations
    assert UNFINISHED_FILTER not in scope.filters  # 40 names take one name filter: cheaper than that list


def test_many_new_waiters_are_read_through_the_unfinished_list_when_that_takes_fewer_calls() -> None:
    scope = FakeScope(fleet(600))
    results, poller = run_waits(scope)
    assert_every_result_final(scope, results)
    assert scope.filters[0] == UNFINISHED_FILTER  # 12 name chunks would cost more than 2 pages
    assert poller.finished_lists


@pytest.mark.parametrize(
    ("mode", "misses"),
    [("refuse", False), ("ignore", False), ("blind", True)],
    ids=["server-refuses-the-filter", "server-ignores-the-filter", "filter-silently-matches-nothing"],
)
def test_a_server_that_does_not_honour_the_filter_turns_it_off_and_every_wait_still_ends_right(
    mode: str, misses: bool, caplog: pytest.LogCaptureFixture
) -> None:
    scope = FakeScope(fleet(30), mode=mode, failing=frozenset({"operation-0010"}))
    with caplog.at_level("WARNING", logger="airflow_machine_images.triggers.polling"):
        results, poller = run_waits(scope)
    assert_every_result_final(scope, results)
    assert not poller.finished_lists
    assert (poller.stats.finished_list_misses > 0) is misses
    assert sum("is turned off" in r.getMessage() for r in caplog.records) == 1


def test_a_warned_finished_list_is_reconciled_next_cycle_without_turning_the_lists_off() -> None:
    scope = FakeScope(fleet(30), mode="warn_once")
    results, poller = run_waits(scope)
    assert_every_result_final(scope, results)
    assert scope.warned and poller.finished_lists
    assert poller.stats.warned_cycles >= 1 and poller.stats.reconciliations >= 1


def test_the_watermark_trails_the_newest_server_time_in_the_servers_own_form() -> None:
    mark = ServerWatermark(overlap_seconds=10.0)
    assert not mark.known and mark.text() is None
    mark.observe({"insertTime": "2026-11-30T01:02:03.456-08:00", "endTime": "2026-11-30T01:00:00.000-08:00"})
    mark.observe({"startTime": "2026-11-30T09:01:00.000Z"})  # older than the first: ignored
    assert mark.text() == "2026-11-30T01:01:53.456-08:00"
    assert done_since_filter(mark.text() or "") == '(status = "DONE") (endTime > "2026-11-30T01:01:53.456-08:00")'
    start = mark.start()
    assert start is not None
    done = {"status": "DONE", "endTime": "2026-11-30T01:01:54.000-08:00"}
    assert ended_after(done, start) and not ended_before(done, start)
    assert not ended_after({"status": "RUNNING"}, start)
    assert ended_before({"status": "DONE", "endTime": "2026-11-30T09:01:53.456Z"}, start)


def test_the_emulator_compares_end_times_as_instants_across_utc_offsets() -> None:
    """AIP-160: timestamps are RFC 3339 with UTC offsets; the filter the poller sends relies on that."""
    matches = compile_filter(done_since_filter("2026-11-01T01:30:00.000-07:00"))  # 08:30 UTC
    assert matches({"status": "DONE", "endTime": "2026-11-01T01:10:00.000-08:00"})  # 09:10 UTC: later
    assert not matches({"status": "DONE", "endTime": "2026-11-01T01:20:00.000-07:00"})
    assert not matches({"status": "RUNNING", "endTime": "2026-11-01T01:40:00.000-07:00"})
    assert not matches({"status": "DONE"})


def test_reconciliation_runs_every_few_cycles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(polling.operations, "RECONCILE_EVERY_CYCLES", 2)
    scope = FakeScope(fleet(20))
    _, poller = run_waits(scope)
    assert poller.stats.reconciliations >= poller.stats.finished_listings // 2 - 1
