"""Waiting for operations: the coalesced "finished since" lists, their reconciliation, and long-polls.

See :class:`OperationPoller`; the watermark and the filter it lists with live in
:mod:`airflow_machine_images.triggers.finished_operations`.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_machine_images.api.list_warnings import partial_warnings
from airflow_machine_images.exceptions import InvalidRequestError, ResourceNotFoundError
from airflow_machine_images.triggers.finished_operations import (
    UNFINISHED_FILTER,
    FinishedListCoverage,
    ServerWatermark,
    done_since_filter,
    ended_after,
    ended_before,
)
from airflow_machine_images.triggers.polling.coalescing import CoalescingPoller, Resource, chunks, name_filter

if TYPE_CHECKING:
    from airflow_machine_images.api.list_warnings import ListWarning
    from airflow_machine_images.hooks.asynchronous import ComputeEngineMachineImageAsyncHook

log = logging.getLogger(__package__)

#: Items per list page: ``maxResults``' default and its maximum (discovery documents, ``*.list``).
LIST_PAGE_SIZE = 500
#: Coalesced operation cycles per reconciliation (every sixth reads every waited-for operation again:
#: about a minute at the default 10 s poll interval), the fallback that bounds how long a completion
#: the "finished since" lists missed can go unseen.
RECONCILE_EVERY_CYCLES = 6


class OperationPoller(CoalescingPoller):
    """Waits for operations to be DONE: global ones, or those of one zone (``zone``).

    While coalescing, a cycle reads what it can from one paged list of the operations that finished
    since the previous list's coverage ended, whatever else the cycle read first
    (:mod:`airflow_machine_images.triggers.finished_operations`): completions and their
    outcome in the same calls, about one call per 500 completions. Only operations it has not yet
    seen unfinished are read first (by name filters, or through the list of unfinished operations
    when that takes fewer calls), and every :data:`RECONCILE_EVERY_CYCLES` cycles, or after a list
    that warns of missing items, all of them are: the reconciliation that finds any completion the
    filtered lists missed. A 400 for the filter, a listed operation that does not match it, or a
    miss turns the filtered lists off for the poller's life; every cycle then reconciles, the
    reading used before (unfinished list, then name read-backs).

    Zonal operations have the same methods as global ones (``zoneOperations.list``/``wait``), so
    the same coalescing applies per project and zone.
    """

    supports_long_poll = True

    def __init__(
        self,
        hook: ComputeEngineMachineImageAsyncHook,
        project_id: str,
        *,
        max_requests_per_minute: float = 60.0,
        zone: str | None = None,
    ) -> None:
        super().__init__(hook, project_id, max_requests_per_minute=max_requests_per_minute, zone=zone)
        #: Waited-for operations last seen unfinished, with that reading.
        self._running: dict[str, Resource] = {}
        #: The newest server time seen on any operation (the miss check's bound).
        self._watermark = ServerWatermark()
        #: Where the next "finished since" list starts (issue 27: never moved by other reads of the cycle).
        self._coverage = FinishedListCoverage()
        #: Whether cycles read the "finished since" list (off for good after a 400, a mismatch or a miss).
        self.finished_lists = True
        self._cycles_since_reconcile = 0
        self._reconcile_next = False
        self._last_finished_list_warned = False
        #: When (loop time) the last "finished since" list was answered.
        self._finished_answered_at: float | None = None
        #: Items of the last list of unfinished operations (None: not listed yet).
        self._unfinished_count: int | None = None

    async def _list_page(self, **kwargs: Any) -> dict[str, Any]:
        """One page of the scope's operations list (``globalOperations.list`` or ``zoneOperations.list``).

        Every list the poller reads comes through here, so the server times on the page are observed in
        the order they were answered: a waited-for operation not yet running here that the page shows
        unfinished bounds where the next "finished since" list may start (:class:`FinishedListCoverage`).
        """
        page = await self.hook.list_operations_page(zone=self.zone, **kwargs)
        items = page.get("items") or []
        for op in items:
            self._watermark.observe(op)
        for op in items:
            name = op.get("name")
            if op.get("status") != "DONE" and name in self._waiters and name not in self._running:
                self._coverage.seen_unfinished(self._watermark.newest)
        return page

    async def list_states(self, names: set[str], warnings: list[ListWarning]) -> dict[str, Resource]:
        """The states of ``names`` this cycle established (see the class docstring for the reading).

        :param names: the operations waited for.
        :param warnings: each list page's ``warning`` is appended here.
        """
        self._running = {name: op for name, op in self._running.items() if name in names}
        if not self._running:
            self._coverage.reset()
        running_before = set(self._running)
        use_finished = self.finished_lists and self._coverage.start() is not None and bool(self._running)
        due = self._cycles_since_reconcile + 1 >= RECONCILE_EVERY_CYCLES
        reconcile = not use_finished or self._reconcile_next or due
        verify = set(names) if reconcile else names - running_before
        unfinished: dict[str, Resource] | None = None
        if verify and len(chunks(verify)) > self._unfinished_pages():
            unfinished = await self._list_unfinished(warnings)
        count_misses = reconcile and use_finished and not self._last_finished_list_warned
        self.stats.reconciliations += reconcile and use_finished
        self._cycles_since_reconcile = 0 if reconcile else self._cycles_since_reconcile + 1
        self._reconcile_next = False
        finished: dict[str, Resource] = {}
        if use_finished and (unfinished is not None or names - verify):
            finished = await self._list_finished(names, warnings)
        states: dict[str, Resource] = {}
        to_read: set[str] = set()
        for name in names:
            if name in finished:
                states[name] = finished[name]
            elif unfinished is not None and name in unfinished:
                states[name] = unfinished[name]
            elif name in verify or unfinished is not None:
                to_read.add(name)
            else:
                states[name] = self._running[name]  # not finished since the last cycle: still running
        read = await self._read_by_name(to_read, warnings)
        if count_misses:
            self._check_misses(read, running_before)
        states.update(read)
        self._running = {name: op for name, op in states.items() if op.get("status") != "DONE"}
        return states

    def _unfinished_pages(self) -> int:
        """Calls one list of the scope's unfinished operations is expected to take."""
        count = self._unfinished_count if self._unfinished_count is not None else len(self._pending_names())
        return max(1, -(-count // LIST_PAGE_SIZE))

    async def _list_unfinished(self, warnings: list[ListWarning]) -> dict[str, Resource]:
        """Every unfinished operation of the scope, by name (paged)."""
        operations = await self._list_all(self._list_page, UNFINISHED_FILTER, warnings)
        self._unfinished_count = len(operations)
        return {str(op["name"]): op for op in operations if "name" in op}

    async def _list_finished(self, names: set[str], warnings: list[ListWarning]) -> dict[str, Resource]:
        """The waited-for operations among those that finished since the watermark (paged).

        :param names: the operations waited for.
        :param warnings: each list page's ``warning`` is appended here.
        """
        start, after = self._coverage.start(), self._coverage.text()
        assert start is not None and after is not None
        page_warnings: list[ListWarning] = []
        try:
            operations = await self._list_all(self._list_page, done_since_filter(after), page_warnings)
        except InvalidRequestError as error:
            self._stop_finished_lists(f"the server refused the filter ({error})")
            return {}
        warnings.extend(page_warnings)
        self._finished_answered_at = asyncio.get_running_loop().time()
        self._last_finished_list_warned = bool(partial_warnings(page_warnings))
        self._reconcile_next = self._last_finished_list_warned
        self.stats.finished_listings += 1
        if strays := sum(1 for op in operations if not ended_after(op, start)):
            self._stop_finished_lists(f"{strays} listed operation(s) did not match the filter")
        self._coverage.listed(self._watermark.newest)  # every time seen so far was at or before its answer
        return {str(op["name"]): op for op in operations if op.get("name") in names}

    async def _read_by_name(self, names: set[str], warnings: list[ListWarning]) -> dict[str, Resource]:
        """Read ``names`` with chunked name filters (those the lists do not show are left out)."""
        states: dict[str, Resource] = {}
        for chunk in chunks(names):
            for op in await self._list_all(self._list_page, name_filter(chunk), warnings):
                if op.get("name") in chunk:
                    states[str(op["name"])] = op
        return states

    def _check_misses(self, read: dict[str, Resource], running_before: set[str]) -> None:
        """Turn the filtered lists off if a reconciliation found a completion they should have shown.

        An operation seen unfinished in an earlier cycle that ended more than the watermark's overlap
        before the last "finished since" list was answered should have been in it (or in an earlier
        one). The list's server time is bounded by the newest server time seen now minus the seconds
        that passed here since (durations only: the two clocks are never compared).
        """
        answered, newest = self._finished_answered_at, self._watermark.newest
        if answered is None or newest is None:
            return
        elapsed = asyncio.get_running_loop().time() - answered
        limit = newest - timedelta(seconds=self._watermark.overlap_seconds + elapsed)
        missed = [name for name, op in read.items() if name in running_before and ended_before(op, limit)]
        if missed:
            self.stats.finished_list_misses += len(missed)
            self._stop_finished_lists(f"{len(missed)} completion(s) they should have shown were missed")

    def _stop_finished_lists(self, why: str) -> None:
        if self.finished_lists:
            log.warning(
                "Project %s: listing the operations finished since the last cycle is turned off (%s); "
                "every cycle now reads the unfinished operations and the finished ones by name",
                self.project_id,
                why,
            )
        self.finished_lists = False

    async def get(self, name: str) -> Resource:
        """One ``globalOperations.get`` (``zoneOperations.get`` for a zone)."""
        return await self.hook.get_operation(operation_name=name, project_id=self.project_id, zone=self.zone)

    async def long_poll(self, name: str) -> Resource | None:
        """One ``globalOperations.wait`` (``zoneOperations.wait`` for a zone; a 404 is evidence of absence: None)."""
        await self._own_read(name)
        self.stats.calls += 1
        try:
            return await self.hook.wait_operation(operation_name=name, project_id=self.project_id, zone=self.zone)
        except ResourceNotFoundError:
            return None
