"""One aiohttp session and one set of credentials per (connection, impersonation chain, endpoint).

A triggerer runs thousands of triggers in one event loop. Giving each its own HTTP session and its
own token would open thousands of connection pools and refresh thousands of tokens; instead, every
async hook with the same key leases the same :class:`SharedClient`. The client is closed when the
last lease is returned.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    import aiohttp
    from google.auth.credentials import Credentials

    from airflow_machine_images.api.calls import ComputeApi

ClientKey = tuple[str, tuple[str, ...], str, str]
"""(connection id, impersonation chain, API endpoint, API version)."""


@dataclass(eq=False)
class SharedClient:
    """An HTTP session, credentials and request builder shared by every hook with one key.

    :param api: the request builder (endpoint and version).
    :param session: the aiohttp session (one connection pool).
    :param credentials: Google credentials, refreshed off the event loop when stale.
    :param anonymous: the credentials add nothing to requests.
    :param user_agent: the User-Agent header value.
    :param proxy: the proxy every request goes through (the endpoint's, chosen as ``requests`` would), or None.
    """

    api: ComputeApi
    session: aiohttp.ClientSession
    credentials: Credentials
    anonymous: bool
    user_agent: str
    proxy: str | None = None
    leases: int = 0
    _refresh_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def headers(self) -> dict[str, str]:
        """Request headers with a valid access token (refreshed in a thread, once for all callers)."""
        headers = {"User-Agent": self.user_agent}
        if self.anonymous:
            return headers
        if not self.credentials.valid:
            async with self._refresh_lock:
                if not self.credentials.valid:
                    await asyncio.to_thread(_refresh, self.credentials)
        self.credentials.apply(headers)
        return headers


def _refresh(credentials: Credentials) -> None:
    """Refresh ``credentials`` (blocking: run in a thread).

    :param credentials: Google credentials.
    """
    from google.auth.transport.requests import Request

    credentials.refresh(Request())


_clients: dict[tuple[asyncio.AbstractEventLoop, ClientKey], SharedClient] = {}
_creating: dict[tuple[asyncio.AbstractEventLoop, ClientKey], asyncio.Future[SharedClient]] = {}


@asynccontextmanager
async def lease(key: ClientKey, factory: Callable[[], Awaitable[SharedClient]]) -> AsyncIterator[SharedClient]:
    """Borrow the shared client for ``key`` in this event loop, creating it on first use.

    :param key: what identifies the client.
    :param factory: makes a new client (reads the connection, builds credentials and a session).
    """
    loop = asyncio.get_running_loop()
    slot = (loop, key)
    client = _clients.get(slot)
    if client is None:
        pending = _creating.get(slot)
        if pending is None:
            pending = loop.create_future()
            _creating[slot] = pending
            try:
                client = await factory()
            except BaseException as exc:
                pending.set_exception(exc)
                pending.exception()  # mark retrieved; waiters re-raise it themselves
                raise
            finally:
                _creating.pop(slot, None)
            _clients[slot] = client
            pending.set_result(client)
        else:
            client = await asyncio.shield(pending)
    client.leases += 1
    try:
        yield client
    finally:
        client.leases -= 1
        if client.leases == 0 and _clients.get(slot) is client:
            del _clients[slot]
            await client.session.close()


def active_clients() -> int:
    """How many shared clients are open (for tests and benchmarks)."""
    return len(_clients)
