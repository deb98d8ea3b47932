"""The process-wide registry of pollers: one per event loop, kind, client, project and zone."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_machine_images.hooks.asynchronous import ComputeEngineMachineImageAsyncHook
    from airflow_machine_images.hooks.shared_clients import ClientKey
    from airflow_machine_images.triggers.polling.coalescing import CoalescingPoller

_pollers: dict[
    tuple[asyncio.AbstractEventLoop, type[CoalescingPoller], ClientKey, str, str | None], CoalescingPoller
] = {}


def poller_for(
    kind: type[CoalescingPoller],
    hook: ComputeEngineMachineImageAsyncHook,
    project_id: str,
    *,
    max_requests_per_minute: float = 60.0,
    zone: str | None = None,
) -> CoalescingPoller:
    """The poller of this kind for the hook's client key, project and zone in the running loop.

    :param kind: :class:`OperationPoller` or :class:`MachineImagePoller`.
    :param hook: an async hook (the first one in makes the poller).
    :param project_id: the project.
    :param max_requests_per_minute: the poller's default budget, for waiters that bring none (the first
        caller's makes it: the triggers pass their triggerer's share of the configured total).
    :param zone: the zone of zonal operations (None: global).
    """
    for ended in [key for key in _pollers if key[0].is_closed()]:
        # A poller whose first wait failed before it began (e.g. a refused endpoint) never goes idle;
        # once its loop has ended (asyncio.run in a worker), nothing can use it again.
        del _pollers[ended]
    slot = (asyncio.get_running_loop(), kind, hook.client_key, project_id, zone)
    poller = _pollers.get(slot)
    if poller is None:
        poller = kind(hook, project_id, max_requests_per_minute=max_requests_per_minute, zone=zone)
        _pollers[slot] = poller

        def forget() -> None:
            if _pollers.get(slot) is poller and not poller.waiting:
                del _pollers[slot]

        poller.on_idle = forget
    return poller


def active_pollers() -> list[CoalescingPoller]:
    """The pollers currently registered in running or open loops (for tests and benchmarks)."""
    return [poller for (loop, *_), poller in _pollers.items() if not loop.is_closed()]
