"""What operators need to know about Jinja templates in their arguments."""

from __future__ import annotations


def is_templated(value: object) -> bool:
    """Whether a value holds a Jinja template (so it can only be checked once rendered).

    :param value: an argument value (strings, and dicts of them, are looked into).
    """
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(is_templated(k) or is_templated(v) for k, v in value.items())
    return False
