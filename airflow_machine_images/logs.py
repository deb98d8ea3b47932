"""The logger type the step modules accept: a task's ``self.log`` (structlog in Airflow 3) or a stdlib logger."""

from __future__ import annotations

from typing import Any, Protocol


class TaskLogger(Protocol):
    """What the insert and delete steps log through."""

    def info(self, msg: Any, /, *args: Any) -> Any:
        """Log at INFO.

        :param msg: the %-format message.
        :param args: its arguments.
        """

    def warning(self, msg: Any, /, *args: Any) -> Any:
        """Log at WARNING.

        :param msg: the %-format message.
        :param args: its arguments.
        """
