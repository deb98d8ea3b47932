"""Reading the API's RFC 3339 timestamps (``creationTimestamp``, ``insertTime``, ``endTime``)."""

from __future__ import annotations

from datetime import datetime


def parse_timestamp(value: object) -> datetime | None:
    """An RFC 3339 timestamp of the API (``creationTimestamp``, ``insertTime``) as an aware datetime.

    :param value: the field's value; None if absent, unreadable or without a time zone.
    """
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
