"""Request windows: at most so many calls in any sliding minute, for a project or for one waiter's reads.

Compute Engine's rate quotas count a project's requests per minute (Compute Engine docs, "API rate
limits"), whichever poller sends them. So every poller of one project in a process (operations global
and per zone, machine images; every connection) takes its calls from one :class:`RequestWindow`, the
project's (:func:`project_window`: one per event loop and project, the triggerer's share of
``[machine_images] requests_per_minute_per_project``). A waiter's own reads (its long-polls, its
read-backs) are counted in a window of their own as well, so a waiter's smaller budget holds back only
what is done for it.
"""

from __future__ import annotations

import asyncio
from collections import deque

from airflow_machine_images import metrics

#: The window the request budget is counted over: a minute, plus margin for network jitter (the
#: server timestamps requests a little later, and not all equally late).
BUDGET_WINDOW_SECONDS = 60.5


class RequestWindow:
    """At most :attr:`limit` calls begin in any :data:`BUDGET_WINDOW_SECONDS` (a sliding window).

    :param limit: the most calls per window (at least one is always allowed).
    """

    def __init__(self, limit: float) -> None:
        self.limit = max(1, int(limit))
        self._started: deque[float] = deque()

    def _forget_old(self, now: float) -> None:
        while self._started and now - self._started[0] >= BUDGET_WINDOW_SECONDS:
            self._started.popleft()

    def try_take(self) -> bool:
        """Take a slot now if one is free; whether one was (never waits).

        Must be called in the running event loop, whose clock the window keeps.
        """
        now = asyncio.get_running_loop().time()
        self._forget_old(now)
        if len(self._started) >= self.limit:
            return False
        self._started.append(now)
        return True

    async def take(self) -> None:
        """Wait until a slot is free, then take it (bursts wait for the oldest call to leave the window)."""
        loop = asyncio.get_running_loop()
        if self.try_take():
            return
        began = loop.time()
        while not self.try_take():
            await asyncio.sleep(max(0.0, BUDGET_WINDOW_SECONDS - (loop.time() - self._started[0])))
        metrics.budget_wait(loop.time() - began)

    @property
    def used(self) -> int:
        """Calls begun in the current window (as last counted)."""
        return len(self._started)


_project_windows: dict[tuple[asyncio.AbstractEventLoop, str], RequestWindow] = {}


def project_window(project_id: str, limit: float) -> RequestWindow:
    """The request window every poller of ``project_id`` in the running loop shares.

    The first caller in a loop sets its limit (the triggers pass their triggerer's share of the
    configured total, the same for all of them; a benchmark may set a scaled one first).

    :param project_id: the project.
    :param limit: the most calls per window, if the window is made now.
    """
    for ended in [key for key in _project_windows if key[0].is_closed()]:
        del _project_windows[ended]
    slot = (asyncio.get_running_loop(), project_id)
    window = _project_windows.get(slot)
    if window is None:
        window = _project_windows[slot] = RequestWindow(limit)
    return window
