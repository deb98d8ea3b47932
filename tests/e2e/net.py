"""Small network and waiting helpers."""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WaitTimeout(AssertionError):
    """A condition did not hold in time."""


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 1.0,
    on_timeout: Callable[[], str] | None = None,
) -> T:
    """Call ``probe`` until it returns something other than None (or False).

    :param what: what we wait for, for the failure message.
    :param probe: returns the result, or None/False to keep waiting; may raise to abort.
    :param timeout: seconds.
    :param interval: seconds between probes.
    :param on_timeout: extra diagnostics for the failure message.
    :raises WaitTimeout: naming ``what`` and the last probe's exception, if any.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = probe()
            if result is not None and result is not False:
                return result
        except (OSError, ValueError) as exc:  # connection refused, bad JSON while a server starts
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            extra = f"\n{on_timeout()}" if on_timeout else ""
            raise WaitTimeout(f"timed out after {timeout:.0f} s waiting for {what}{detail}{extra}")
        time.sleep(interval)
