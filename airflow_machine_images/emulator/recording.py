"""The request log: what clients sent, what they got, and when; bounded in entries and bytes.

The log lives as long as the emulator, which users leave running: it keeps at most ``max_entries``
requests and about ``max_bytes`` of them (the oldest go first; :meth:`RequestLog.count` still counts
every request since the last clear). A refused body (400, 413, or no known method) is kept only as a
summary (:func:`body_summary`: size, sha256, and its first bytes with anything key-like hidden): 20
refused 4 MB inserts once grew the emulator by 478 MB.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import re
import threading
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_MAX_LOG_BYTES",
    "DEFAULT_MAX_LOG_ENTRIES",
    "RecordedRequest",
    "RequestLog",
    "body_summary",
]

#: The most requests the log keeps (the oldest are forgotten first).
DEFAULT_MAX_LOG_ENTRIES = 100_000
#: About the most bytes the kept requests take (bodies, paths and queries as JSON, plus a fixed share each).
DEFAULT_MAX_LOG_BYTES = 64 * 1024 * 1024
#: What one record costs besides its body, path and query (its other fields, as JSON, roughly).
_RECORD_OVERHEAD = 256
#: The bytes of a refused body its summary shows.
SUMMARY_HEAD_BYTES = 64
#: Hidden in a summary's head: runs of 16 or more base64 characters (JSON escapes such as ``\/`` and
#: ``\u003d`` included), and the run the head's cut ends in, whatever its length: no piece of a key
#: longer than 15 characters survives, and names, numbers and JSON punctuation stay readable.
_KEY_LIKE = re.compile(r"[A-Za-z0-9+/_=\\-]{16,}|[A-Za-z0-9+/_=\\-]+$")


def body_summary(raw: bytes) -> dict[str, Any]:
    """What the log keeps of a refused request's body: its size, its sha256 and its first bytes, key-like runs hidden.

    :param raw: the body as received.
    """
    head = raw[:SUMMARY_HEAD_BYTES].decode("utf-8", "replace")
    return {
        "size": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "head": _KEY_LIKE.sub("[redacted]", head),
    }


@dataclass(frozen=True)
class RecordedRequest:
    """One API request as the emulator saw it (control endpoints are not recorded).

    :param action: ``machineImages.insert`` ... ``instances.get``, or ``unknown``.
    :param method: the effective HTTP method (after ``X-HTTP-Method-Override``).
    :param path: the URL path, without the query string.
    :param query: the query parameters (last value wins for repeated ones).
    :param body: the parsed JSON body as the client sent it (key material redacted), or None; always None
        for a refused body (answered 400 or 413, or sent to no known method).
    :param status: the HTTP status answered, or None when the connection was dropped without an answer.
    :param fault: the kind of fault injected into this request, if any.
    :param has_authorization: whether an ``Authorization`` header was sent (its value is never kept).
    :param started: ``time.monotonic()`` when the request had been read.
    :param finished: ``time.monotonic()`` when the answer was ready to send (or the connection was dropped).
    :param body_summary: for a refused body, :func:`body_summary` of it; else None.
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
    body_summary: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """:return: the record as a JSON-ready dict (for ``GET /_emulator/requests``)."""
        return dataclasses.asdict(self)

    def size(self) -> int:
        """:return: about how many bytes the record keeps (what the log's byte limit counts)."""
        kept = len(self.path) + len(json.dumps(self.query))
        if self.body is not None:
            kept += len(json.dumps(self.body))
        return kept + _RECORD_OVERHEAD


class RequestLog:
    """A thread-safe log of recorded requests, kept in arrival order, bounded in entries and bytes.

    :param max_entries: the most requests kept.
    :param max_bytes: about the most bytes kept (:meth:`RecordedRequest.size`).
    """

    def __init__(self, max_entries: int = DEFAULT_MAX_LOG_ENTRIES, max_bytes: int = DEFAULT_MAX_LOG_BYTES) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("the request log must be allowed at least one entry and one byte")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: collections.deque[tuple[int, RecordedRequest, int]] = collections.deque()
        self._bytes = 0
        self._arrivals = 0
        #: Every request since the last clear, by (action, status), forgotten ones included.
        self._counts: collections.Counter[tuple[str, int | None]] = collections.Counter()
        #: Requests forgotten to keep within the limits since the last clear.
        self.forgotten = 0

    def arrival(self) -> int:
        """Number a request as it arrives, so the log keeps arrival order even if answers overtake.

        :return: the arrival number.
        """
        with self._lock:
            self._arrivals += 1
            return self._arrivals

    def add(self, seq: int, record: RecordedRequest) -> None:
        """Keep a finished request, forgetting the oldest ones beyond the limits.

        :param seq: its arrival number from :meth:`arrival`.
        :param record: the record.
        """
        size = record.size()
        with self._lock:
            self._entries.append((seq, record, size))
            self._bytes += size
            self._counts[(record.action, record.status)] += 1
            while len(self._entries) > self.max_entries or (self._bytes > self.max_bytes and len(self._entries) > 1):
                _, _, dropped = self._entries.popleft()
                self._bytes -= dropped
                self.forgotten += 1

    def snapshot(self) -> list[RecordedRequest]:
        """:return: the kept requests, in arrival order."""
        with self._lock:
            entries = list(self._entries)
        entries.sort(key=lambda entry: entry[0])
        return [record for _, record, _ in entries]

    def kept_bytes(self) -> int:
        """:return: about how many bytes the kept requests take."""
        with self._lock:
            return self._bytes

    def clear(self) -> None:
        """Forget every recorded request (and the counts)."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            self._counts.clear()
            self.forgotten = 0

    def count(self, action: str | None = None, status: int | None = None) -> int:
        """Count finished requests since the last clear (also those forgotten to keep within the limits).

        :param action: only this action (None = any).
        :param status: only this answered status (None = any, dropped ones included).
        :return: how many.
        """
        with self._lock:
            return sum(
                n
                for (a, s), n in self._counts.items()
                if (action is None or a == action) and (status is None or s == status)
            )
