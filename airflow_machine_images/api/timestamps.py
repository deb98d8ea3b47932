"""Reading the API's RFC 3339 timestamps (``creationTimestamp``, ``insertTime``, ``endTime``), and writing moments."""

from __future__ import annotations

from datetime import datetime, timezone


def format_moment(moment: float) -> str:
    """A moment for logs and messages, in UTC: ``2026-05-20 01:10:00 UTC``.

    :param moment: seconds since the epoch.
    """
    return datetime.fromtimestamp(moment, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


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
