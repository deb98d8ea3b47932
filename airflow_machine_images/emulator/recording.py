"""The request log: what clients sent, what they got, and when."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["RecordedRequest", "RequestLog"]


@dataclass(frozen=True)
class RecordedRequest:
    """One API request as the emulator saw it (control endpoints are not recorded).

    :param action: ``machineImages.insert`` ... ``instances.get``, or ``unknown``.
    :param method: the effective HTTP method (after ``X-HTTP-Method-Override``).
    :param path: the URL path, without the query string.
    :param query: the query parameters (last value wins for repeated ones).
    :param body: the parsed JSON body as the client sent it, or None.
    :param status: the HTTP status answered, or None when the connection was dropped without an answer.
    :param fault: the kind of fault injected into this request, if any.
    :param has_authorization: whether an ``Authorization`` header was sent (its value is never kept).
    :param started: ``time.monotonic()`` when the request had been read.
    :param finished: ``time.monotonic()`` when the answer was ready to send (or the connection was dropped).
    """

    action: str
    method: str
    path: str
    query: dict[str, str]
    body: dict[str, Any] | None
    status: int | None
    fault: str | None
    has_authorization: bool
    started: float
    finished: float

    def to_json(self) -> dict[str, Any]:
        """:return: the record as a JSON-ready dict (for ``GET /_emulator/requests``)."""
        return dataclasses.asdict(self)


class RequestLog:
    """A thread-safe log of recorded requests, kept in arrival order."""

    def __init__(self) -> None:
        """Start empty."""
        self._lock = threading.Lock()
        self._entries: list[tuple[int, RecordedRequest]] = []
        self._arrivals = 0

    def arrival(self) -> int:
        """Number a request as it arrives, so the log keeps arrival order even if answers overtake.

        :return: the arrival number.
        """
        with self._lock:
            self._arrivals += 1
            return self._arrivals

    def add(self, seq: int, record: RecordedRequest) -> None:
        """Keep a finished request.

        :param seq: its arrival number from :meth:`arrival`.
        :param record: the record.
        """
        with self._lock:
            self._entries.append((seq, record))

    def snapshot(self) -> list[RecordedRequest]:
        """:return: the finished requests, in arrival order."""
        with self._lock:
            entries = list(self._entries)
        entries.sort(key=lambda entry: entry[0])
        return [record for _, record in entries]

    def clear(self) -> None:
        """Forget every recorded request."""
        with self._lock:
            self._entries.clear()

    def count(self, action: str | None = None, status: int | None = None) -> int:
        """Count finished requests.

        :param action: only this action (None = any).
        :param status: only this answered status (None = any, dropped ones included).
        :return: how many.
        """
        with self._lock:
            return sum(
                1
                for _, r in self._entries
                if (action is None or r.action == action) and (status is None or r.status == status)
            )
