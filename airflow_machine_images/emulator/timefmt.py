"""Time for the emulator: one clock pairing wall time with ``time.monotonic()``, RFC 3339 text."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone, tzinfo

__all__ = ["Clock", "parse_rfc3339", "rfc3339"]


def _pacific() -> tzinfo:
    """The zone the real API writes its timestamps in (America/Los_Angeles), or a fixed -07:00."""
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo("America/Los_Angeles")
    except Exception:  # no tz database on this machine
        return timezone(timedelta(hours=-7))


_ZONE = _pacific()

_RFC3339 = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[Tt ](?P<time>\d{2}:\d{2}:\d{2})(?P<frac>\.\d+)?(?P<tz>[Zz]|[+-]\d{2}:?\d{2})?)?$"
)


def rfc3339(moment: datetime) -> str:
    """Format a moment the way Compute Engine does: local Pacific time, milliseconds and an offset.

    :param moment: an aware datetime (a naive one is taken as UTC).
    :return: e.g. ``2024-05-01T12:34:56.789-07:00``.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(_ZONE).isoformat(timespec="milliseconds")


def parse_rfc3339(text: str) -> datetime | None:
    """Parse an RFC 3339 timestamp (or a bare date), tolerant of ``Z`` and any fraction length.

    :param text: the text to parse.
    :return: an aware datetime (UTC when no offset is given), or None if the text is not a timestamp.
    """
    match = _RFC3339.match(text.strip())
    if match is None:
        return None
    clock = match.group("time") or "00:00:00"
    frac = (match.group("frac") or ".0")[1:7].ljust(6, "0")
    offset = match.group("tz") or "Z"
    if offset in ("Z", "z"):
        zone: tzinfo = timezone.utc
    else:
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        zone = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    try:
        return datetime.fromisoformat(f"{match.group('date')}T{clock}.{frac}").replace(tzinfo=zone)
    except ValueError:
        return None


class Clock:
    """Monotonic time for durations, mapped onto wall time for the timestamps the API shows.

    :param offset_seconds: how far the emulated server's clock runs ahead of this machine's (negative:
        behind). Google's servers and an Airflow worker need not agree on the time (a worker without
        NTP, a VM resumed from suspend): the package must never compare the two, and tests check that
        with an offset.
    """

    def __init__(self, offset_seconds: float = 0.0) -> None:
        """Pin the wall clock to the monotonic clock once, so timestamps never go backwards."""
        self._wall0 = time.time() + offset_seconds
        self._mono0 = time.monotonic()

    @staticmethod
    def now() -> float:
        """:return: the current ``time.monotonic()``."""
        return time.monotonic()

    def wall(self, mono: float) -> datetime:
        """The wall-clock moment of a monotonic instant.

        :param mono: a ``time.monotonic()`` value.
        :return: an aware UTC datetime.
        """
        return datetime.fromtimestamp(self._wall0 + (mono - self._mono0), tz=timezone.utc)

    def wall_seconds(self) -> float:
        """:return: the server's current time in seconds since the epoch (its HTTP ``Date``)."""
        return self._wall0 + (time.monotonic() - self._mono0)

    def mono(self, wall: datetime) -> float:
        """The monotonic instant of a wall-clock moment (inverse of :meth:`wall`).

        :param wall: an aware datetime.
        :return: the matching ``time.monotonic()`` value (may lie in the past or the future).
        """
        return self._mono0 + (wall.timestamp() - self._wall0)
