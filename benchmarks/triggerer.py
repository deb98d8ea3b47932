"""Run triggers the way Airflow's triggerer does: one task per trigger iterating ``trigger.run()``.

The triggerer re-creates each trigger from its serialized form, gives every trigger task a greenback
portal, iterates the async generator and calls ``cleanup()`` when it ends; these helpers do the same.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.triggers.base import BaseTrigger


@dataclass
class FiredEvent:
    """The first event a trigger yielded and when (epoch seconds) the runner received it."""

    payload: dict[str, Any]
    received: float


def rebuild(trigger: BaseTrigger) -> BaseTrigger:
    """Round-trip a trigger through ``serialize()`` and its class path, as the triggerer loads it.

    :param trigger: a trigger built by an operator.
    """
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    return cls(**kwargs)


async def run_trigger(trigger: BaseTrigger) -> FiredEvent:
    """Run one trigger to its first event, like ``TriggerRunner.run_trigger``.

    :param trigger: the trigger.
    :raises RuntimeError: it ended without an event.
    """
    import greenback

    await greenback.ensure_portal()
    fired: FiredEvent | None = None
    try:
        async for event in trigger.run():
            fired = FiredEvent(payload=event.payload, received=time.time())
            break
    finally:
        await trigger.cleanup()
    if fired is None:
        raise RuntimeError(f"{trigger!r} ended without an event")
    return fired


async def register_scaled_poller(project_id: str, max_requests_per_minute: float) -> None:
    """Create this loop's operation poller for ``project_id`` with another request budget.

    Triggers join the poller that exists for their (loop, connection, project); the first caller
    sets its budget. Time-scaled runs use this to scale the 60 requests/minute budget with the clock.

    :param project_id: the project.
    :param max_requests_per_minute: the budget, in requests per (scaled) minute.
    """
    from airflow_machine_images.hooks import ComputeEngineMachineImageAsyncHook
    from airflow_machine_images.triggers.polling import OperationPoller, poller_for

    poller_for(
        OperationPoller,
        ComputeEngineMachineImageAsyncHook(),
        project_id,
        max_requests_per_minute=max_requests_per_minute,
    )
    await asyncio.sleep(0)
