"""The coalescing poller's policies, driven by a fake async hook (no HTTP): when waiters long-poll,
when they are coalesced into list calls, and the per-project request budget."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import pytest

from airflow_machine_images.triggers import polling
from airflow_machine_images.triggers.polling import OperationPoller

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


class FakeHook:
    """Answers like the Compute API: every operation is DONE after ``done_after`` reads of it."""

    client_key = ("fake",)

    def __init__(self, done_after: int = 2) -> None:
        self.done_after = done_after
        self.reads: dict[str, int] = {}
        self.waits = 0
        self.lists = 0

    @contextlib.asynccontextmanager
    async def lease_client(self) -> AsyncIterator[None]:
        yield None

    def _read(self, name: str) -> dict[str, Any]:
        self.reads[name] = self.reads.get(name, 0) + 1
        return {"name": name, "status": "DONE" if self.reads[name] >= self.done_after else "RUNNING"}

    async def wait_operation(self, *, operation_name: str, project_id: str, zone: str | None = None) -> dict[str, Any]:
        self.waits += 1
        await asyncio.sleep(0.01)
        return self._read(operation_name)

    async def list_operations_page(
        self, *, project_id: str, filter_: str, page_token: str | None, zone: str | None = None
    ) -> dict[str, Any]:
        self.lists += 1
        names = sorted(self.reads) if filter_ == 'status != "DONE"' else polling_names(filter_)
        items = [self._read(name) for name in names]
        return {"items": [i for i in items if filter_ != 'status != "DONE"' or i["status"] != "DONE"]}


def polling_names(filter_: str) -> list[str]:
    return [part.split('"')[1] for part in filter_.split(" OR ")]


def wait_all(poller: OperationPoller, names: list[str]) -> list[Any]:
    async def scenario() -> list[Any]:
        return list(
            await asyncio.gather(
                *(poller.wait_for(name, lambda op: op["status"] == "DONE", poll_interval=0.01) for name in names)
            )
        )

    return asyncio.run(scenario())


def make_poller(hook: FakeHook, **kwargs: Any) -> OperationPoller:
    return OperationPoller(hook, "demo-project", **kwargs)  # type: ignore[arg-type]


def test_few_waiters_long_poll_one_each() -> None:
    hook = FakeHook(done_after=2)
    names = [f"operation-{i}" for i in range(polling.MAX_LONG_POLLS)]
    results = wait_all(make_poller(hook), names)
    assert [r["status"] for r in results] == ["DONE"] * len(names)
    assert hook.lists == 0
    assert hook.waits == 2 * len(names)  # one wait per read; no list calls at all


def test_more_waiters_than_long_polls_are_coalesced() -> None:
    hook = FakeHook(done_after=2)
    names = [f"operation-{i}" for i in range(polling.MAX_LONG_POLLS + 1)]
    results = wait_all(make_poller(hook, max_requests_per_minute=6000), names)
    assert [r["status"] for r in results] == ["DONE"] * len(names)
    assert hook.waits == 0
    assert 0 < hook.lists < len(names)  # fewer calls than one per waiter


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        ([12], [True]),
        ([13], [False]),
        ([13, 7], [False, False]),  # once coalescing, stay so until half as many wait
        ([13, 7, 6], [False, False, True]),
        ([13, 6, 12], [False, True, True]),
    ],
)
def test_long_polling_resumes_only_when_half_as_many_wait(sizes: list[int], expected: list[bool]) -> None:
    poller = make_poller(FakeHook())
    decisions = [poller._should_long_poll({f"op-{i}" for i in range(size)}) for size in sizes]
    assert decisions == expected


def test_no_sliding_window_sees_more_calls_than_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(polling.windows, "BUDGET_WINDOW_SECONDS", 0.3)
    poller = make_poller(FakeHook(), max_requests_per_minute=3)

    async def scenario() -> list[float]:
        loop = asyncio.get_running_loop()
        granted = []
        for _ in range(7):
            await poller._within_budget()
            granted.append(loop.time())
        return granted

    granted = asyncio.run(scenario())
    for i in range(len(granted) - 3):
        assert granted[i + 3] - granted[i] >= 0.3 * 0.99  # a 4th call waits until the first leaves the window


def test_a_long_poll_answered_early_backs_off_instead_of_spinning() -> None:
    """Every wait answers at once (not DONE until the third): pause between them, up to the poll interval."""
    hook = FakeHook(done_after=3)
    poller = make_poller(hook)

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await poller.wait_for("operation-1", lambda op: op["status"] == "DONE", poll_interval=0.2)
        return loop.time() - started

    elapsed = asyncio.run(scenario())
    assert hook.waits == 3 and poller.stats.long_polls == 3
    assert elapsed >= 2 * 0.2  # two early answers, each followed by a pause of the poll interval (< 1 s)


class PartialListHook(FakeHook):
    """Every list answer leaves out the names in ``omit`` (with a ``warning`` unless ``warn`` is False);
    ``globalOperations.get`` answers every operation it knows, and 404 for the names in ``gone``."""

    def __init__(self, omit: set[str], gone: set[str] = frozenset(), warn: bool = True) -> None:  # type: ignore[assignment]
        super().__init__(done_after=1)
        self.omit, self.gone, self.warn = omit, gone, warn
        self.gets: list[str] = []

    async def list_operations_page(
        self, *, project_id: str, filter_: str, page_token: str | None, zone: str | None = None
    ) -> dict[str, Any]:
        page = await super().list_operations_page(
            project_id=project_id, filter_=filter_, page_token=page_token, zone=zone
        )
        page["items"] = [i for i in page["items"] if i["name"] not in self.omit | self.gone]
        if self.warn:
            page["warning"] = {"code": "UNREACHABLE", "message": "Scope 'global' is unreachable", "data": []}
        return page

    async def get_operation(self, *, operation_name: str, project_id: str, zone: str | None = None) -> dict[str, Any]:
        self.gets.append(operation_name)
        if operation_name in self.gone:
            from airflow_machine_images.exceptions import ResourceNotFoundError

            raise ResourceNotFoundError(f"globalOperations.get {operation_name}: 404")
        return self._read(operation_name)


def coalesced_results(hook: FakeHook, names: list[str]) -> tuple[list[Any], OperationPoller]:
    poller = make_poller(hook, max_requests_per_minute=6000)

    async def scenario() -> list[Any]:
        waits = [
            poller.wait_for(name, lambda op: op is None or op["status"] == "DONE", poll_interval=0.01) for name in names
        ]
        return list(await asyncio.gather(*waits))

    return asyncio.run(scenario()), poller


@pytest.mark.parametrize("warn", [True, False], ids=["warned", "silently-omitted"])
def test_an_operation_a_list_leaves_out_is_read_on_its_own_not_taken_as_gone(
    warn: bool, caplog: pytest.LogCaptureFixture
) -> None:
    names = [f"operation-{i:02d}" for i in range(polling.MAX_LONG_POLLS + 8)]
    omitted = set(names[::3])
    hook = PartialListHook(omit=omitted, warn=warn)
    with caplog.at_level("WARNING", logger="airflow_machine_images.triggers.polling"):
        results, poller = coalesced_results(hook, names)
    assert [r and r["status"] for r in results] == ["DONE"] * len(names)  # nobody ends "not found"
    assert set(hook.gets) == omitted  # only the left-out ones are read one by one
    warned = [r for r in caplog.records if "warns that items may be missing" in r.getMessage()]
    assert len(warned) == (poller.stats.warned_cycles if warn else 0)
    if warn:
        assert 1 <= len(warned) <= poller.stats.cycles  # once per cycle, not once per waiter
        assert "UNREACHABLE" in warned[0].getMessage()


def test_only_a_404_of_the_operation_itself_ends_a_wait_as_not_found() -> None:
    names = [f"operation-{i:02d}" for i in range(polling.MAX_LONG_POLLS + 4)]
    hook = PartialListHook(omit=set(names[:5]), gone={names[-1]})
    results, _ = coalesced_results(hook, names)
    assert results[-1] is None
    assert [r["status"] for r in results[:-1]] == ["DONE"] * (len(names) - 1)


# ---------------------------------------------------------------------------------- budgets (issue 23)


def test_a_waiters_budget_is_its_own_never_above_the_projects_and_the_poller_follows_the_most_generous() -> None:
    """A poller kept to the smallest budget among its waiters: one frugal wait slowed every other."""
    hook = FakeHook(done_after=10**9)  # nothing finishes: the waits are cancelled
    poller = make_poller(hook, max_requests_per_minute=60)

    async def scenario() -> list[float]:
        seen = [poller.max_requests_per_minute]
        frugal = asyncio.create_task(poller.wait_for("op-1", lambda op: False, 0.01, max_requests_per_minute=1))
        await asyncio.sleep(0)
        seen.append(poller.max_requests_per_minute)  # alone: its own
        default = asyncio.create_task(poller.wait_for("op-2", lambda op: False, 0.01))
        greedy = asyncio.create_task(poller.wait_for("op-3", lambda op: False, 0.01, max_requests_per_minute=500))
        await asyncio.sleep(0)
        seen.append(poller.max_requests_per_minute)  # the most generous, never above the project's
        tasks = (frugal, default, greedy)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        seen.append(poller.max_requests_per_minute)
        return seen

    assert asyncio.run(scenario()) == [60, 1, 60, 60]


def test_a_frugal_waiters_own_reads_wait_while_the_others_long_poll_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its own long-polls keep to its budget (1 per window here); the other waiters are not held back."""
    monkeypatch.setattr(polling.windows, "BUDGET_WINDOW_SECONDS", 30.0)
    hook = FakeHook(done_after=4)  # every wait answers at once, RUNNING, until the 4th read
    poller = make_poller(hook, max_requests_per_minute=6000)

    async def scenario() -> tuple[dict[str, int], bool]:
        frugal = asyncio.create_task(poller.wait_for("frugal", lambda op: op["status"] == "DONE", 0.01, 1))
        others = [poller.wait_for(f"op-{n}", lambda op: op["status"] == "DONE", 0.01) for n in range(5)]
        await asyncio.gather(*others)
        reads, waiting = dict(hook.reads), not frugal.done()
        frugal.cancel()
        await asyncio.gather(frugal, return_exceptions=True)
        return reads, waiting

    reads, frugal_waiting = asyncio.run(scenario())
    assert {name: n for name, n in reads.items() if name != "frugal"} == {f"op-{n}": 4 for n in range(5)}
    assert reads["frugal"] == 1 and frugal_waiting  # its second read waits for its window, alone


def test_a_frugal_waiter_rides_along_the_coalesced_reads_of_the_others_at_no_cost() -> None:
    """Coalesced: a cycle follows the most eager waiter; the frugal one is answered by the same lists."""
    hook = FakeHook(done_after=3)
    poller = make_poller(hook, max_requests_per_minute=6000)
    names = [f"operation-{i:02d}" for i in range(polling.MAX_LONG_POLLS + 3)]

    async def scenario() -> list[Any]:
        done = lambda op: op["status"] == "DONE"  # noqa: E731
        frugal = poller.wait_for("frugal", done, 0.01, max_requests_per_minute=1)
        return list(await asyncio.gather(frugal, *(poller.wait_for(name, done, 0.01) for name in names)))

    results = asyncio.run(scenario())
    assert [r["status"] for r in results] == ["DONE"] * (len(names) + 1)
    assert hook.waits == 0 and hook.lists <= 2 * 3  # a few coalesced lists, not one per waiter, nor paced by 1/min


def test_every_poller_of_a_project_shares_one_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pollers were keyed by kind and zone, each with its own count: N zones spent N times the budget."""
    monkeypatch.setattr(polling.windows, "BUDGET_WINDOW_SECONDS", 600.0)  # nothing leaves it during the test
    pollers = [
        OperationPoller(FakeHook(), "demo-project", max_requests_per_minute=3, zone=zone)  # type: ignore[arg-type]
        for zone in (None, "us-central1-a", "us-east1-b")
    ]

    async def scenario() -> tuple[bool, bool, int]:
        for poller in pollers:  # one call each, three pollers: the project's three
            await poller._within_budget()
        window = polling.project_window("demo-project", 3)
        other = polling.project_window("other-project", 3)
        return window.try_take(), other.try_take(), window.used

    fourth_of_project, first_of_other, used = asyncio.run(scenario())
    assert (fourth_of_project, first_of_other, used) == (False, True, 3)
