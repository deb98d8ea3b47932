"""Serial console arguments of a boot check: the patterns it searches for and the port it reads."""

from __future__ import annotations

import re

from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.validation.primitives import require_str, show_value

#: The longest pattern accepted (a boot line is short; a huge pattern is a mistake or an attack).
MAX_PATTERN_CHARS = 1000
#: ``instances.getSerialPortOutput`` ``port``: "minimum": "1", "maximum": "4" (discovery documents).
SERIAL_PORTS = (1, 2, 3, 4)


def validate_console_pattern(value: object, parameter: str) -> re.Pattern[str]:
    """Compile a console pattern: a Python regular expression, searched in each console line.

    :param value: the pattern, as rendered.
    :param parameter: the argument name used in the error message.
    :raises MachineImageValidationError: not a non-empty string of at most :data:`MAX_PATTERN_CHARS`
        characters, not a valid regular expression, or one that matches an empty line (it would pass
        any console, even one with no output).
    """
    rule = f"must be a regular expression (Python 're' syntax) of 1 to {MAX_PATTERN_CHARS} characters"
    text = require_str(value, parameter, rule)
    if not text or len(text) > MAX_PATTERN_CHARS:
        raise MachineImageValidationError(parameter, rule, show_value(text))
    try:
        compiled = re.compile(text, re.MULTILINE)
    except re.error as error:
        rule = f"{rule}; it does not compile ({error})"
        raise MachineImageValidationError(parameter, rule, show_value(text)) from None
    if compiled.search("") is not None:
        raise MachineImageValidationError(
            parameter, "must not match an empty line: it would pass a console with no output", show_value(text)
        )
    return compiled


def validate_serial_port(value: object, parameter: str = "port") -> int:
    """Check a serial port number, 1 to 4.

    :param value: the port.
    :param parameter: the argument name used in the error message.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value not in SERIAL_PORTS:
        rule = "must be 1, 2, 3 or 4 (the instance's serial ports)"
        raise MachineImageValidationError(parameter, rule, show_value(value))
    return value
