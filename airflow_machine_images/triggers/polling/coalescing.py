"""The generic coalescing poller: waiters, the cycle loop, budget pacing and long-polls.

:class:`CoalescingPoller` knows nothing of a resource kind: a subclass says how a cycle lists the
waited-for resources (:meth:`~CoalescingPoller.list_states`), how one is read on its own
(:meth:`~CoalescingPoller.get`) and, where the API has one, how one is long-polled
(:meth:`~CoalescingPoller.long_poll`). The per-resource pollers live next to this module
(:mod:`.operations`, :mod:`.machine_images`); the package docstring tells the whole reading.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_machine_images.api.list_warnings import ListWarning, describe_all, partial_warnings
from airflow_machine_images.api.paging import PageWalk, collect_pages
from airflow_machine_images.api.retry import EarlyAnswerBackoff
from airflow_machine_images.exceptions import ComputeEngineApiError, ResourceNotFoundError, TransientApiError
from airflow_machine_images.triggers.polling import windows
from airflow_machine_images.triggers.polling.windows import RequestWindow, project_window

if TYPE_CHECKING:
    from airflow_machine_images.hooks.asynchronous import ComputeEngineMachineImageAsyncHook

#: One logger for the pollers, named after the package (the name it had as one module, which logging
#: configurations may name).
log = logging.getLogger(__package__)

Resource = dict[str, Any]
#: Decides whether a waiter is finished, given the resource (None: it does not exist).
IsFinal = Callable[[Resource | None], bool]
ListPage = Callable[..., Awaitable[dict[str, Any]]]

#: Names per list call: keeps the filter (and so the URL) a few kilobytes long.
CHUNK_SIZE = 50
#: Up to this many waiters long-poll one each (a ~2-minute wait per waiter costs no more calls than a
#: list every 10 s for all of them); more are coalesced into list calls, until half as many remain.
MAX_LONG_POLLS = 12
#: Failed cycles in a row (after the hook's own retries) before waiters are failed.
MAX_FAILED_CYCLES = 3


def _resume_long_polls_at() -> int:
    """Coalescing stops once this few wait (half of :data:`MAX_LONG_POLLS`, at least a lone waiter)."""
    return max(1, MAX_LONG_POLLS // 2)


def name_filter(names: Iterable[str]) -> str:
    """A Compute list filter matching any of ``names`` (validated names contain no quotes).

    :param names: resource names.
    """
    return " OR ".join(f'(name = "{name}")' for name in sorted(names))


def chunks(names: Iterable[str], size: int = CHUNK_SIZE) -> list[list[str]]:
    """Split ``names`` into sorted lists of at most ``size``.

    :param names: resource names.
    :param size: the largest chunk.
    """
    ordered = sorted(names)
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


@dataclass(eq=False)
class _Waiter:
    is_final: IsFinal
    poll_interval: float
    future: asyncio.Future[Resource | None]
    #: This waiter's own budget (None: the poller's default), for the reads made for it alone.
    max_requests_per_minute: float | None = None


@dataclass
class PollerStats:
    """Counters for tests and benchmarks."""

    cycles: int = 0
    calls: int = 0
    long_polls: int = 0
    #: Per-resource reads of waited-for resources the lists did not show.
    gets: int = 0
    #: Cycles whose lists carried a warning that items may be missing.
    warned_cycles: int = 0
    #: "Finished since" lists read (operations only), reconciliations that checked them, and misses found.
    finished_listings: int = 0
    reconciliations: int = 0
    finished_list_misses: int = 0
    #: Reads of one resource put off to a later cycle because its waiters' own budget was spent.
    deferred_reads: int = 0


class CoalescingPoller(ABC):
    """Waits for many resources of one project with shared calls; one instance per loop and key.

    Budgets. Every call counts against the project's window (:func:`~.windows.project_window`), shared
    by every poller of the project in the event loop: at most ``max_requests_per_minute`` (the
    triggerer's share of the configured total) in any minute, whatever the kinds and zones. A waiter may
    bring a smaller budget of its own (its task's ``requests_per_minute_per_project``, this triggerer's
    share of it; never above the project's): it applies to that waiter only. Reads made for it alone
    (its long-polls, its read-backs) are paced by it; a read that serves other waiters too (a list, a
    long-poll another waiter shares) costs it nothing extra, and is paced by the most generous budget
    among the waiters it serves, so a smaller budget never slows the others.

    :param hook: the async hook (its shared client is leased while the poller runs).
    :param project_id: the project.
    :param max_requests_per_minute: the project's budget in this loop if this poller makes its window
        (the first poller of the project does), and the budget of waiters that bring none.
    :param zone: the zone of zonal resources (None: global ones); a poller serves one scope.
    """

    def __init__(
        self,
        hook: ComputeEngineMachineImageAsyncHook,
        project_id: str,
        *,
        max_requests_per_minute: float = 60.0,
        zone: str | None = None,
    ) -> None:
        self.hook = hook
        self.project_id = project_id
        self.zone = zone
        self.default_requests_per_minute = max_requests_per_minute
        self.stats = PollerStats()
        self._waiters: dict[str, set[_Waiter]] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failed_cycles = 0
        self._long_polls: dict[str, asyncio.Task[None]] = {}
        self._coalescing = False
        #: The windows of the reads made for one name alone (its waiters' own budget).
        self._own_windows: dict[str, RequestWindow] = {}
        self.on_idle: Callable[[], None] | None = None

    @property
    def max_requests_per_minute(self) -> float:
        """The most calls per minute this poller makes now: the most generous budget among its waiters
        (each at most the project's), the project's when nobody waits. Every poller of the project keeps
        to the project's window besides.
        """
        budgets = [self._budget_of(w) for ws in self._waiters.values() for w in ws if not w.future.done()]
        return max(budgets, default=self.default_requests_per_minute)

    def _budget_of(self, waiter: _Waiter) -> float:
        """A waiter's budget: its own if it brought one, never above the project's; else the project's."""
        own, default = waiter.max_requests_per_minute, self.default_requests_per_minute
        return default if own is None else min(own, default)

    def _own_window(self, name: str) -> RequestWindow:
        """The window of reads made for ``name`` alone, sized by the most generous budget among its waiters."""
        budgets = [self._budget_of(w) for w in self._waiters.get(name, ()) if not w.future.done()]
        window = self._own_windows.get(name)
        if window is None:
            window = self._own_windows[name] = RequestWindow(max(budgets, default=self.default_requests_per_minute))
        elif budgets:
            window.limit = max(1, int(max(budgets)))
        return window

    @property
    def waiting(self) -> int:
        """How many waits are still unanswered."""
        return sum(1 for ws in self._waiters.values() for w in ws if not w.future.done())

    def _pending_names(self) -> set[str]:
        return {name for name, ws in self._waiters.items() if any(not w.future.done() for w in ws)}

    async def wait_for(
        self, name: str, is_final: IsFinal, poll_interval: float, max_requests_per_minute: float | None = None
    ) -> Resource | None:
        """Wait until ``is_final`` holds for resource ``name``; return the resource (None if absent).

        Cancelling the caller unregisters the wait; the poller stops when nobody waits.

        :param name: the resource name.
        :param is_final: whether a state of the resource ends the wait.
        :param poll_interval: the longest pause this waiter accepts between checks.
        :param max_requests_per_minute: this waiter's own budget (None: the poller's default; never above
            it): it paces the reads made for this waiter alone, never the others' (see the class docstring).
        :raises ComputeEngineApiError: the API kept failing (or refused: permissions).
        """
        waiter = _Waiter(is_final, poll_interval, asyncio.get_running_loop().create_future(), max_requests_per_minute)
        self._waiters.setdefault(name, set()).add(waiter)
        self._changed.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"{type(self).__name__}:{self.project_id}")
        try:
            return await waiter.future
        finally:
            registered = self._waiters.get(name)
            if registered is not None:
                registered.discard(waiter)
                if not registered:
                    del self._waiters[name]
                    self._own_windows.pop(name, None)
            self._changed.set()

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        try:
            async with self.hook.lease_client():
                try:
                    while pending := self._pending_names():
                        self._changed.clear()
                        if self._should_long_poll(pending):
                            await self._long_poll_cycle(pending)
                        else:
                            await self._stop_long_polls()
                            await self._poll_cycle(pending)
                finally:
                    await self._stop_long_polls()
        except Exception as error:  # e.g. the credentials could not be made: fail everyone
            self._fail_all(error)
        finally:
            self._task = None
            if self.on_idle is not None and not self._waiters:
                self.on_idle()

    async def _poll_cycle(self, names: set[str]) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        calls_before = self.stats.calls
        self.stats.cycles += 1
        try:
            resources = await self.fetch(names)
        except ComputeEngineApiError as error:
            if not self._absorb_failure(error):
                return
            resources = {}
        else:
            self._failed_cycles = 0
        for name, resource in resources.items():
            self._resolve(name, resource)
        await self._pause_until(started + self._cycle_interval(max(1, self.stats.calls - calls_before)))

    def _cycle_interval(self, calls: int) -> float:
        """The pause from one cycle's start to the next: the soonest any waiter wants a check.

        A waiter wants one every ``poll_interval``, but no sooner than its budget allows for a cycle
        of ``calls`` calls; so the cycle follows the most eager waiter its budget lets go, and a waiter
        with a smaller budget rides along at no cost of its own. (The project's window caps every call.)

        :param calls: the calls the last cycle made.
        """
        wants = [
            max(w.poll_interval, calls * windows.BUDGET_WINDOW_SECONDS / self._budget_of(w))
            for ws in self._waiters.values()
            for w in ws
            if not w.future.done()
        ]
        return min(wants, default=10.0)

    def _should_long_poll(self, pending: set[str]) -> bool:
        """Long-poll each waiter while at most :data:`MAX_LONG_POLLS` wait; once coalescing, until half as many."""
        if not self.supports_long_poll:
            return False
        self._coalescing = len(pending) > (_resume_long_polls_at() if self._coalescing else MAX_LONG_POLLS)
        return not self._coalescing

    async def _long_poll_cycle(self, names: set[str]) -> None:
        """Keep one long-poll loop per waited name; return when one ends or somebody joins or leaves."""
        for name in set(self._long_polls) - names:  # nobody waits for it any more
            self._long_polls.pop(name).cancel()
        for name in names - self._long_polls.keys():
            self._long_polls[name] = asyncio.create_task(self._long_poll_until_final(name))
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait({changed, *self._long_polls.values()}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
        for name, task in list(self._long_polls.items()):
            if task.done():
                del self._long_polls[name]
                if not task.cancelled() and (unexpected := task.exception()) is not None:
                    raise unexpected  # not an API error: fail everyone, as a failed cycle would

    async def _long_poll_until_final(self, name: str) -> None:
        """Long-poll one resource until it is final, backing off after early answers; fail its waiters on errors."""
        loop = asyncio.get_running_loop()
        backoff = EarlyAnswerBackoff()
        failures = 0
        while True:
            asked = loop.time()
            self.stats.long_polls += 1
            try:
                resource = await self.long_poll(name)
            except ComputeEngineApiError as error:
                failures += 1
                if not isinstance(error, TransientApiError) or failures >= MAX_FAILED_CYCLES:
                    self._fail(name, error)
                    return
                log.warning("Waiting for %s in project %s failed (%s); trying again", name, self.project_id, error)
                await asyncio.sleep(self._poll_interval(name))
                continue
            failures = 0
            if self._resolve(name, resource):
                return
            pause = backoff.pause_after(loop.time() - asked, self._poll_interval(name))
            if pause > 0:
                await asyncio.sleep(pause)

    async def _stop_long_polls(self) -> None:
        """Abandon every long-poll (they only read) and wait until they are gone."""
        tasks, self._long_polls = list(self._long_polls.values()), {}
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _within_budget(self) -> None:
        """Wait until one more call keeps the project within its budget in any sliding minute.

        The window is the project's, shared by every poller of the project in this loop (kinds and
        zones alike): the cycle interval keeps each poller's average under its budget, and this caps the
        sum, bursts included (a cycle's list pages and read-backs).
        """
        await project_window(self.project_id, self.default_requests_per_minute).take()

    async def _own_read(self, name: str) -> None:
        """Wait until one more read made for ``name`` alone keeps within its waiters' own budget, then
        within the project's (:meth:`_within_budget`).

        :param name: the resource read.
        """
        await self._own_window(name).take()
        await self._within_budget()

    async def _pause_until(self, when: float) -> None:
        """Sleep until ``when``; wake early if nobody waits any more, or once few enough wait to long-poll."""
        loop = asyncio.get_running_loop()
        while (pending := self._pending_names()) and (remaining := when - loop.time()) > 0:
            if self.supports_long_poll and len(pending) <= _resume_long_polls_at():
                return
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=remaining)
            except asyncio.TimeoutError:
                return

    # ------------------------------------------------------------------ waiters

    def _poll_interval(self, name: str | None = None) -> float:
        """The shortest ``poll_interval`` among the waiters (of ``name``, if given) still waiting."""
        groups = self._waiters.values() if name is None else [self._waiters.get(name, set())]
        intervals = [w.poll_interval for ws in groups for w in ws if not w.future.done()]
        return min(intervals, default=10.0)

    def _resolve(self, name: str, resource: Resource | None) -> bool:
        """Wake the waiters of ``name`` that ``resource`` finishes; True if it finished any."""
        finished = False
        for waiter in list(self._waiters.get(name, ())):
            if not waiter.future.done() and waiter.is_final(resource):
                waiter.future.set_result(resource)
                finished = True
        return finished

    def _absorb_failure(self, error: ComputeEngineApiError) -> bool:
        """Count a failed cycle; fail every waiter if it is permanent or too many in a row. True = go on."""
        self._failed_cycles += 1
        if isinstance(error, TransientApiError) and self._failed_cycles < MAX_FAILED_CYCLES:
            log.warning("Polling project %s failed (%s); trying again next cycle", self.project_id, error)
            return True
        self._fail_all(error)
        return False

    def _fail(self, name: str, error: BaseException) -> None:
        for waiter in self._waiters.get(name, ()):
            if not waiter.future.done():
                waiter.future.set_exception(error)

    def _fail_all(self, error: BaseException) -> None:
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.future.done():
                    waiter.future.set_exception(error)

    # ------------------------------------------------------------------ reading states

    async def fetch(self, names: set[str]) -> dict[str, Resource | None]:
        """The current state of ``names`` that this cycle could establish; None for those known absent.

        The lists give the state of every name they show. A name they do not show is read on its own
        when its absence would end a wait (the lists may have left it out: a ``warning``, or no reason
        given); only a 404 there makes it None. A name whose absence would end no wait is left out of
        the answer (its waiters keep waiting), which costs no extra call.

        :param names: the resources waited for.
        """
        warnings: list[ListWarning] = []
        states: dict[str, Resource | None] = dict(await self.list_states(names, warnings))
        unlisted = sorted(name for name in names - states.keys() if self._absence_ends_a_wait(name))
        partial = partial_warnings(warnings)
        if partial:
            self.stats.warned_cycles += 1
            log.warning(
                "Listing project %s for %d waited-for resource(s): the list answer warns that items may be "
                "missing (%s); %d not listed are read one by one, never taken as absent",
                self.project_id,
                len(names),
                describe_all(partial),
                len(unlisted),
            )
        for name in unlisted:
            if not self._own_window(name).try_take():  # its waiters' own budget is spent: a later cycle
                self.stats.deferred_reads += 1
                continue
            states[name] = await self._get_one(name)
        return states

    def _absence_ends_a_wait(self, name: str) -> bool:
        return any(not w.future.done() and w.is_final(None) for w in self._waiters.get(name, ()))

    async def _get_one(self, name: str) -> Resource | None:
        """Read one resource; None only on a 404 (the one evidence of absence)."""
        await self._within_budget()
        self.stats.calls += 1
        self.stats.gets += 1
        try:
            return await self.get(name)
        except ResourceNotFoundError:
            return None

    # ------------------------------------------------------------------ what subclasses say

    supports_long_poll = False

    @abstractmethod
    async def list_states(self, names: set[str], warnings: list[ListWarning]) -> dict[str, Resource]:
        """The resources among ``names`` that the list calls show (absent ones are simply not in it).

        :param names: the resources waited for.
        :param warnings: append each list page's ``warning`` here.
        """

    @abstractmethod
    async def get(self, name: str) -> Resource:
        """Read one resource on its own.

        :param name: the resource name.
        :raises ResourceNotFoundError: it does not exist.
        """

    async def long_poll(self, name: str) -> Resource | None:
        """Wait server-side for one resource (only where :attr:`supports_long_poll`).

        :param name: the resource waited for.
        """
        raise NotImplementedError

    async def _list_all(self, list_page: ListPage, filter_: str, warnings: list[ListWarning]) -> list[Resource]:
        """Every item of a filtered list, page by page, each page within the budget and counted.

        :param list_page: the hook's one-page list method.
        :param filter_: the Compute list filter.
        :param warnings: each page's ``warning`` is appended here.
        """

        async def fetch(page_token: str | None) -> dict[str, Any]:
            await self._within_budget()
            self.stats.calls += 1
            return await list_page(project_id=self.project_id, filter_=filter_, page_token=page_token)

        walk = PageWalk(what=getattr(list_page, "__name__", "a paged list"))
        walk.warnings = warnings
        return await collect_pages(fetch, walk=walk)
