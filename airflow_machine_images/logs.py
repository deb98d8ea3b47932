"""The logger type the step modules accept: a task's ``self.log`` (structlog in Airflow 3) or a stdlib logger."""

from __future__ import annotations

from collections.abc import Mapping
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


def log_operation_warnings(log: TaskLogger, operation: Mapping[str, Any]) -> int:
    """Log an operation's ``warnings[]`` (code, message, data): the API reports non-fatal problems there.

    Source: discovery documents, ``Operation.warnings`` ("If warning messages are generated during
    processing of the operation, this field will be populated"). Garbage entries are skipped.

    :param log: the task's or trigger's logger.
    :param operation: an Operation resource.
    :return: how many warnings were logged.
    """
    warnings = operation.get("warnings")
    logged = 0
    for warning in warnings if isinstance(warnings, list) else []:
        if isinstance(warning, Mapping):
            data = warning.get("data")
            pairs = (
                [f"{d.get('key')}={d.get('value')}" for d in data if isinstance(d, Mapping)]
                if isinstance(data, list)
                else []
            )
            log.warning(
                "Operation %s warns: %s: %s%s",
                operation.get("name"),
                warning.get("code"),
                warning.get("message"),
                f" ({', '.join(pairs)})" if pairs else "",
            )
            logged += 1
    return logged
