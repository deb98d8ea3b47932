"""The ``requests`` side of the sync hook: a deadline for the whole call and a bounded read of the answer.

``requests`` (through urllib3) applies its timeouts to each socket operation, so a server that
sends a byte every second never trips a 60-second read timeout and can hold a worker for as long as
it likes. Here every connection of the hook's session is watched: while a call runs under
:class:`CallDeadline`, a timer shuts the call's socket down when the deadline passes, and the
blocked read returns at once. Bodies are read in chunks up to a limit instead of all at once.

Imported only by the sync hook's methods, never when a DAG file is parsed (it loads ``requests``).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import TYPE_CHECKING, Any

from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, PoolManager, ProxyManager
from urllib3.connection import HTTPConnection, HTTPSConnection

if TYPE_CHECKING:
    from collections.abc import Iterable
    from types import TracebackType

_active = threading.local()


class CallDeadline:
    """Shut down the sockets a call uses on this thread once ``seconds`` have passed.

    :param seconds: the whole call's deadline, from now.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._connections: list[HTTPConnection] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True

    def __enter__(self) -> CallDeadline:
        _active.deadline = self
        self._timer.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._timer.cancel()
        _active.deadline = None

    def watch(self, connection: HTTPConnection) -> None:
        """Shut ``connection`` down at the deadline (at once if it passed).

        :param connection: a connection the call is about to use.
        """
        with self._lock:
            if self.expired:
                _shut_down(connection)
            else:
                self._connections.append(connection)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for connection in self._connections:
                _shut_down(connection)


def _shut_down(connection: HTTPConnection) -> None:
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _watch(connection: HTTPConnection) -> None:
    deadline: CallDeadline | None = getattr(_active, "deadline", None)
    if deadline is not None:
        deadline.watch(connection)


class _WatchedHTTPConnection(HTTPConnection):
    """An HTTP connection the running call's deadline can cut (while connecting and while in use)."""

    def connect(self) -> None:
        _watch(self)
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    """An HTTPS connection the running call's deadline can cut (the TLS handshake included)."""

    def connect(self) -> None:
        _watch(self)
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self)
        super().request(*args, **kwargs)


class _WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOLS = {"http": _WatchedHTTPConnectionPool, "https": _WatchedHTTPSConnectionPool}


class DeadlineAdapter(HTTPAdapter):
    """A ``requests`` adapter whose connections (direct, or through an HTTP(S) proxy) :class:`CallDeadline` can cut."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        manager: PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if type(manager) is ProxyManager:  # SOCKS managers keep their own connection classes
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


def mount_deadline_adapters(session: Any) -> None:
    """Make every connection of ``session`` (a ``requests.Session``) cuttable by :class:`CallDeadline`.

    :param session: the session.
    """
    adapter = DeadlineAdapter()
    session.mount("https://", adapter)
    session.mount("http://", adapter)


def read_limited(chunks: Iterable[bytes], declared: str | None, limit: int) -> bytes | None:
    """The body from ``chunks``, or None as soon as it is known to exceed ``limit`` bytes.

    :param chunks: the (decoded) body in pieces.
    :param declared: the Content-Length header, if any (an answer that announces too much is not read).
    :param limit: the most bytes accepted.
    """
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        return None
    parts: list[bytes] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
    return b"".join(parts)
