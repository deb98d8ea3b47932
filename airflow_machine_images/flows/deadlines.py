"""A task's deadline, carried across deferrals: every wait of one task shares its ``timeout``.

The deadline is wall-clock time (seconds since the epoch) because it travels from the worker to the
triggerer and back, through trigger kwargs and events, and may cross machines.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass(frozen=True)
class Deadline:
    """When a task stops waiting.

    :param at: the deadline, in seconds since the epoch.
    """

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        """The deadline ``seconds`` from now.

        :param seconds: the task's timeout.
        """
        return cls(time.time() + seconds)

    @classmethod
    def from_event(cls, event: Mapping[str, Any], timeout: float) -> Deadline:
        """The deadline a trigger's event reports, else ``timeout`` from now (an event of an older release).

        :param event: the trigger's event.
        :param timeout: the task's timeout.
        """
        at = event.get("deadline")
        return cls(float(at)) if isinstance(at, (int, float)) and not isinstance(at, bool) else cls.after(timeout)

    def remaining(self) -> float:
        """Seconds left (0 once passed)."""
        return max(0.0, self.at - time.time())
