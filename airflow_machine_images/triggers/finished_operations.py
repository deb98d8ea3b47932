"""Which operations finished since the last look: a server-time watermark and the list filter for it.

At scale the coalescing operation poller learns completions and their outcome from one paged list
of the operations that finished since its last cycle::

    (status = "DONE") (endTime > "2026-11-30T01:02:03.456-08:00")

instead of listing every unfinished operation and then reading the finished ones back by name
(50 names per call, the URL's limit). Each returned operation is whole, ``error`` included, so the
answer needs no read-back.

What the sources say:

* The ``filter`` parameter of ``globalOperations.list`` / ``zoneOperations.list`` (discovery documents
  ``compute.beta.json`` and ``compute.v1.json``): an AIP-160 expression "must specify the field
  name, an operator, and the value ... The operator must be either ``=``, ``!=``, ``>``, ``<``,
  ``<=``, ``>=`` or ``:``", nested and several parenthesized expressions are ANDed by default.
* ``Operation.endTime``: "[Output Only] The time that this operation was completed. This value is in
  RFC3339 text format." ``insertTime`` and ``startTime`` likewise (same documents).
* AIP-160 (https://google.aip.dev/160, "Literals"): timestamps are RFC 3339 strings, UTC offsets
  supported, so ``>`` compares them as instants. The emulator implements exactly that
  (:func:`airflow_machine_images.emulator.filters.compile_filter`).

What no source settles, so nothing here relies on it for correctness:

* Whether Compute Engine compares ``endTime`` as an instant or as text. Older answers said its list
  filters only took ``eq``/``ne`` (googleapis/google-api-go-client#256, 2018;
  googleapis/google-api-python-client#1001, 2020). The watermark is written in the server's own form
  (its offset, milliseconds), so the two readings agree except across a change of the server's UTC
  offset (it writes Pacific time, ``-07:00``/``-08:00``).
* How soon a finished operation shows in a list. Each list starts :data:`OVERLAP_SECONDS` before
  where the previous one's coverage ended (:class:`FinishedListCoverage`), so a completion that
  becomes visible a little late is still listed.

The poller guards the rest (:class:`~airflow_machine_images.triggers.polling.operations.OperationPoller`):
every returned operation is checked against the filter (a server that ignored it would be caught), a 400 for the
filter turns the form off, and a reconciliation every few cycles (the old unfinished-list reading)
finds any waited-for operation the filtered lists missed; one miss turns the form off for the
poller's life. The watermark is server time only: the worker's clock is never compared with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from airflow_machine_images.api.timestamps import parse_timestamp

__all__ = [
    "OVERLAP_SECONDS",
    "UNFINISHED_FILTER",
    "FinishedListCoverage",
    "ServerWatermark",
    "done_since_filter",
    "ended_after",
    "ended_before",
]

#: How far behind the newest server time seen the next "finished since" list starts.
OVERLAP_SECONDS = 10.0
#: The list of every operation of the scope that is not finished (the reconciliation's reading).
UNFINISHED_FILTER = 'status != "DONE"'
#: The timestamp fields the server writes on operations, each no later than the moment it answers.
_SERVER_TIMES = ("insertTime", "startTime", "endTime")


def done_since_filter(after: str) -> str:
    """The filter of the operations that finished after ``after`` (documented AIP-160 form, ANDed terms).

    :param after: an RFC 3339 timestamp in the server's own form (validated: no quotes).
    """
    return f'(status = "DONE") (endTime > "{after}")'


@dataclass
class ServerWatermark:
    """The newest server timestamp seen on any operation; where the next "finished since" list starts.

    Every ``insertTime``/``startTime``/``endTime`` the server wrote was at or before the moment it
    answered, so an operation that was not finished then ends after the newest one seen.

    :param overlap_seconds: how far behind the newest time seen the next list starts.
    """

    overlap_seconds: float = OVERLAP_SECONDS
    _newest: datetime | None = None

    def observe(self, operation: dict[str, Any]) -> None:
        """Take the server times written on ``operation`` into account.

        :param operation: an operation as the API returned it.
        """
        for field in _SERVER_TIMES:
            moment = parse_timestamp(operation.get(field))
            if moment is not None and (self._newest is None or moment > self._newest):
                self._newest = moment

    @property
    def newest(self) -> datetime | None:
        """The newest server time seen (None: none yet)."""
        return self._newest

    @property
    def known(self) -> bool:
        """Whether any server time has been seen."""
        return self._newest is not None

    def start(self) -> datetime | None:
        """The instant the next list starts after (None: no server time seen yet)."""
        if self._newest is None:
            return None
        return self._newest - timedelta(seconds=self.overlap_seconds)

    def text(self) -> str | None:
        """:meth:`start` in the server's own form: its UTC offset, milliseconds."""
        start = self.start()
        return None if start is None else start.isoformat(timespec="milliseconds")


@dataclass
class FinishedListCoverage:
    """Where the next "finished since" list starts: where what the poller knows of its operations ends.

    Every waited-for operation seen unfinished is known not to have finished before the newest server
    time seen at or before that reading (every time the server wrote was at or before its answer). A
    "finished since" list then shows the completions up to its own answer, whose time is at least the
    newest server time seen when it was read. So the next list must start where the earlier of the two
    ends: the previous list's coverage, lowered by any operation first seen unfinished since (its
    reading's bound). The newest time seen elsewhere in the cycle (a list of unfinished operations
    read right before, which shows the newest waits' ``insertTime``) must not move the start: that
    made a list cover only the overlap instead of the interval since the previous one (issue 27).

    :param overlap_seconds: how far before the covered time the next list starts (late visibility).
    """

    overlap_seconds: float = OVERLAP_SECONDS
    _covered_to: datetime | None = None

    def seen_unfinished(self, bound: datetime | None) -> None:
        """A waited-for operation was read unfinished; ``bound`` is the newest server time seen by then.

        :param bound: the newest server time seen at or before that reading (None: none yet).
        """
        if bound is not None and (self._covered_to is None or bound < self._covered_to):
            self._covered_to = bound

    def listed(self, bound: datetime | None) -> None:
        """A "finished since" list was answered; ``bound`` is the newest server time seen by then.

        :param bound: the newest server time seen at or before its answer.
        """
        if bound is not None:
            self._covered_to = bound

    def reset(self) -> None:
        """Nothing is waited for any more: the next operation seen unfinished starts the coverage."""
        self._covered_to = None

    def start(self) -> datetime | None:
        """The instant the next list starts after (None: nothing covered yet)."""
        return None if self._covered_to is None else self._covered_to - timedelta(seconds=self.overlap_seconds)

    def text(self) -> str | None:
        """:meth:`start` in the server's own form: its UTC offset, milliseconds."""
        start = self.start()
        return None if start is None else start.isoformat(timespec="milliseconds")


def ended_after(operation: dict[str, Any], start: datetime) -> bool:
    """Whether ``operation`` is DONE with an ``endTime`` after ``start``: what the filter asked for.

    :param operation: a listed operation.
    :param start: the instant the list started after.
    """
    ended = parse_timestamp(operation.get("endTime"))
    return operation.get("status") == "DONE" and ended is not None and ended > start


def ended_before(operation: dict[str, Any], start: datetime) -> bool:
    """Whether ``operation`` is DONE and ended at or before ``start`` (a later list would not show it).

    :param operation: an operation read back on its own.
    :param start: the instant the lists start after.
    """
    ended = parse_timestamp(operation.get("endTime"))
    return operation.get("status") == "DONE" and ended is not None and ended <= start
