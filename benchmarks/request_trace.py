"""Record, on the client side, every HTTP request this process sends, shaped like the emulator's records.

The emulator's request log says what a project received but not which process sent it, and a
``status != "DONE"`` list from one triggerer looks exactly like another's. A process that needs its
own share therefore records its requests itself: an aiohttp ``TraceConfig`` is added to every
``aiohttp.ClientSession`` created after :func:`record_requests` (the hook makes its session later, when
the first trigger runs). aiohttp has no process-wide hook, so the session's constructor is wrapped to
add the trace; it only observes (aiohttp's documented tracing signals), and nothing of ours is patched.
Each record has the emulator's ``action`` (from the emulator's own routing table), ``path`` and
``started`` (``time.monotonic()``, CLOCK_MONOTONIC, comparable with the emulator's timestamps), so the
analysis of :mod:`benchmarks.bench_scale` applies to it unchanged.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import aiohttp

from airflow_machine_images.emulator.api import route


def request_record(method: str, path: str, started: float) -> dict[str, Any]:
    """One request as the emulator would record it (the fields the benchmarks read).

    :param method: the HTTP method.
    :param path: the URL path, percent-encoded, without the query.
    :param started: ``time.monotonic()`` when the request was sent.
    """
    return {"action": route(method, path).action, "method": method, "path": path, "started": started}


def record_requests() -> list[dict[str, Any]]:
    """From now on, record every request of every new aiohttp session of this process.

    :return: the list the records are appended to, in sending order.
    """
    records: list[dict[str, Any]] = []

    async def on_request_start(
        session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestStartParams
    ) -> None:
        records.append(request_record(params.method, params.url.raw_path, time.monotonic()))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    original = aiohttp.ClientSession.__init__

    @functools.wraps(original)
    def traced_init(self: aiohttp.ClientSession, *args: Any, trace_configs: Any = None, **kwargs: Any) -> None:
        original(self, *args, trace_configs=[*(trace_configs or ()), trace], **kwargs)

    aiohttp.ClientSession.__init__ = traced_init  # type: ignore[method-assign]
    return records
