"""The wait for the per-source machine-image limit: a trigger that fires when the next try is allowed.

Compute Engine does not say when a source instance may be imaged again after a refusal
(:mod:`airflow_machine_images.flows.source_limit` works it out); the task defers to this trigger, which
sends no request and holds no worker slot, and resumes at the allowed time to submit the next generation.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import TYPE_CHECKING, Any

from airflow_machine_images.api.timestamps import format_moment
from airflow_machine_images.compat import BaseTrigger, TriggerEvent
from airflow_machine_images.events import EVENT_INVALID_ARGUMENT, EVENT_TIMEOUT

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["SourceLimitWaitTrigger"]


class SourceLimitWaitTrigger(BaseTrigger):
    """Yield one ``success`` event at ``at`` (the per-source limit's next allowed try), or an error event when
    the task's deadline comes first or the stored kwargs cannot be used.

    The event carries ``message``, ``deadline`` and ``extra`` (``event_extra`` unchanged: the generation to
    submit and the waits so far).

    :param at: when the next submission is allowed (seconds since the epoch).
    :param deadline: the task's deadline (seconds since the epoch), carried back in the event.
    :param event_extra: JSON-serialisable data returned unchanged in the event.
    """

    def __init__(self, *, at: float, deadline: float | None = None, event_extra: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.at = at
        self.deadline = deadline
        self.event_extra = event_extra if event_extra is not None else {}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The class path (this package's, as for every trigger here) and the kwargs: a moment and bookkeeping."""
        return (
            f"airflow_machine_images.triggers.{type(self).__qualname__}",
            {"at": self.at, "deadline": self.deadline, "event_extra": self.event_extra},
        )

    def _problem(self) -> str | None:
        """Why the stored kwargs (from the database) cannot be used, or None."""
        for name in ("at", "deadline"):
            value = getattr(self, name)
            if value is None and name == "deadline":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                return f"Invalid {name}: must be a moment in seconds since the epoch"
        if not isinstance(self.event_extra, dict):
            return "Invalid event_extra: must be a dict"
        return None

    def _event(self, status: str, message: str, reason: str | None = None) -> TriggerEvent:
        extra = self.event_extra if isinstance(self.event_extra, dict) else {}
        body: dict[str, Any] = {"status": status, "message": message, "deadline": self.deadline, "extra": extra}
        if reason is not None:
            body["reason"] = reason
        return TriggerEvent(body)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Sleep until ``at`` (no request is sent) and yield the event."""
        problem = self._problem()
        if problem is not None:
            yield self._event("error", problem, EVENT_INVALID_ARGUMENT)
            return
        if self.deadline is not None and self.at > self.deadline:
            message = (
                f"The per-source limit allows the next try at {format_moment(self.at)}, after the task's deadline "
                f"({format_moment(self.deadline)})"
            )
            yield self._event("error", message, EVENT_TIMEOUT)
            return
        self.log.info("Waiting for the per-source limit: the next try is allowed at %s", format_moment(self.at))
        await asyncio.sleep(max(0.0, self.at - time.time()))
        yield self._event("success", f"The per-source limit allows the next try ({format_moment(self.at)})")
