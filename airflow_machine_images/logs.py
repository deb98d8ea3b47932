"""The logger type the step modules accept: a task's ``self.log`` (structlog in Airflow 3) or a stdlib logger."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from airflow_machine_images.api.redaction import redact_key_material

#: The longest warning text logged (the server's words).
_MAX_WARNING_TEXT = 2000


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
    processing of the operation, this field will be populated"). Garbage entries are skipped; the
    server's words are redacted by shape (a trigger never sees the keys), like operation errors.

    :param log: the task's or trigger's logger.
    :param operation: an Operation resource.
    :return: how many warnings were logged.
    """
    warnings = operation.get("warnings")
    logged = 0
    for warning in warnings if isinstance(warnings, list) else []:
        if not isinstance(warning, Mapping):
            continue
        data = warning.get("data")
        pairs = (
            [f"{d.get('key')}={d.get('value')}" for d in data if isinstance(d, Mapping)]
            if isinstance(data, list)
            else []
        )
        text = f"{warning.get('code')}: {warning.get('message')}" + (f" ({', '.join(pairs)})" if pairs else "")
        log.warning("Operation %s warns: %s", operation.get("name"), redact_key_material(text[:_MAX_WARNING_TEXT]))
        logged += 1
    return logged
