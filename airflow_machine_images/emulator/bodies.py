"""JSON bodies: reading requests (with a nesting limit), keeping them without key material, writing answers."""

from __future__ import annotations

import json
from typing import Any

from airflow_machine_images.emulator import errors

__all__ = ["MAX_JSON_DEPTH", "REDACTED", "SECRET_FIELDS", "json_bytes", "parse_json_body", "redact_secrets"]

#: The deepest JSON nesting a body may have (protobuf's default recursion limit is 100).
MAX_JSON_DEPTH = 100
#: Fields whose values are secret: the request log keeps them as ``[redacted]``.
SECRET_FIELDS = frozenset({"rawKey", "rsaEncryptedKey"})
REDACTED = "[redacted]"


def json_bytes(payload: Any) -> bytes:
    """:param payload: JSON-ready data. :return: it as compact JSON bytes (an answer's body)."""
    return json.dumps(payload, separators=(",", ":")).encode()


def _too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` (parsed JSON) nests lists and objects deeper than ``limit`` (no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, (dict, list)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (current.values() if isinstance(current, dict) else current))
    return False


def parse_json_body(body: bytes) -> Any:
    """A request body as JSON (None when empty).

    :param body: the raw body.
    :raises ApiError: 400 when it is not JSON, or nests deeper than :data:`MAX_JSON_DEPTH`.
    """
    if not body.strip():
        return None
    try:
        parsed = json.loads(body)
    except RecursionError:
        raise errors.parse_error(f"the JSON is nested too deeply (more than {MAX_JSON_DEPTH} levels)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.parse_error(str(exc)) from None
    if _too_deep(parsed):
        raise errors.parse_error(f"the JSON is nested too deeply (more than {MAX_JSON_DEPTH} levels)")
    return parsed


def redact_secrets(value: Any) -> Any:
    """A copy of parsed JSON with every ``rawKey``/``rsaEncryptedKey`` value replaced by ``[redacted]``.

    :param value: a parsed body (at most :data:`MAX_JSON_DEPTH` deep).
    """
    if isinstance(value, dict):
        return {key: REDACTED if key in SECRET_FIELDS else redact_secrets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_secrets(item) for item in value]
    return value
