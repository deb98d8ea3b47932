"""Standing behaviours of the real service the emulator can be told to have: quotas and partial lists.

Each is off by default and set by constructor argument, ``PUT /_emulator/options`` or a command-line
flag; each models a documented behaviour of Compute Engine:

* ``rate_quota_per_minute``: API rate quotas are per project per minute; once a project has made that
  many requests, every further request answers 403 ``rateLimitExceeded`` (ErrorInfo
  ``RATE_LIMIT_EXCEEDED``) until the quota refills at the start of the next minute (Compute Engine
  docs, "API rate limits", cloud.google.com/compute/api-quota). ``rate_quota_window_seconds`` shortens
  the minute for tests; windows start at multiples of it on the wall clock, as minutes do. Which
  requests count against which of the real per-group quotas is not modelled: every API request counts
  (the stricter reading); refused requests do not.
* ``concurrent_operations_limit``: too many operations in flight answer 403 with ErrorInfo
  ``CONCURRENT_OPERATIONS_QUOTA_EXCEEDED``, which clears only as running operations finish (docs,
  "Operations quota"; Terraform's ``is403ConcurrentOperationsQuotaError``). Counted per project over
  its unfinished operations, checked on every insert/delete/setLabels before it is processed, a
  request that would replay a remembered requestId included (unverified; the stricter reading).
* ``request_id_ttl_seconds``: how long a requestId is remembered; after it, a repeated requestId
  starts a new operation. Compute Engine's discovery document (revision 20261106) names no time; other
  Google APIs' ``request_id`` fields promise "at least 60 minutes after the first request" (e.g. the
  VM Migration, Network Connectivity and Batch client references). None (the default) remembers forever.
* ``partial_list_fraction`` / ``partial_list_warning``: list answers leave out that share of the page's
  items and carry ``warning`` {code, message, data} (discovery: ``OperationList.warning``,
  ``MachineImageList.warning``, codes ``UNREACHABLE``, ``PARTIAL_SUCCESS``,
  ``LIST_OVERHEAD_QUOTA_EXCEED``); a ``partial_list_warning`` of None leaves items out silently.
* ``source_image_limit_scale``: machine images of one source instance "at most once every 10 minutes, at
  most 6 requests in 60 minutes" (Create machine images page); a scale of 1 applies those windows, a
  smaller one shortens them for tests, None (the default: existing tests image one source several times a
  minute) turns the limit off. Answered as :class:`~.machine_image_store.SourceImageLimit` says.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import random

__all__ = ["LIST_WARNING_CODES", "EmulatorOptions", "RateQuota", "thin_list"]

#: The list warning codes that say items may be missing (discovery enum of ``*List.warning.code``).
LIST_WARNING_CODES = ("UNREACHABLE", "PARTIAL_SUCCESS", "LIST_OVERHEAD_QUOTA_EXCEED")
_WARNING_MESSAGES = {
    "UNREACHABLE": "Scope '{scope}' is unreachable; results from it are missing.",
    "PARTIAL_SUCCESS": "Success is reported, but some results may be missing due to errors.",
    "LIST_OVERHEAD_QUOTA_EXCEED": "Some resources can't be retrieved due to list overhead quota exceed.",
}


@dataclass
class EmulatorOptions:
    """The standing options (see the module text for what each models).

    :param rate_quota_per_minute: requests per project per window before 403 ``rateLimitExceeded`` (None = no quota).
    :param rate_quota_window_seconds: the window ("minute") the rate quota refills after.
    :param concurrent_operations_limit: unfinished operations per project before 403
        ``CONCURRENT_OPERATIONS_QUOTA_EXCEEDED`` on insert/delete/setLabels (None = no limit).
    :param request_id_ttl_seconds: how long requestIds are remembered (None = forever).
    :param partial_list_fraction: the share of each list page's items left out (0 = none).
    :param partial_list_warning: the ``warning.code`` of a thinned list (None = leave items out silently).
    :param source_image_limit_scale: the per-source-instance machine-image limit's windows times this (None = off).
    """

    rate_quota_per_minute: int | None = None
    rate_quota_window_seconds: float = 60.0
    concurrent_operations_limit: int | None = None
    request_id_ttl_seconds: float | None = None
    partial_list_fraction: float = 0.0
    partial_list_warning: str | None = "UNREACHABLE"
    source_image_limit_scale: float | None = None

    def __post_init__(self) -> None:
        """Reject values that make no sense (each error names the option)."""
        self.validate()

    def validate(self) -> None:
        """:raises ValueError: naming the option and its rule."""
        for name in ("rate_quota_per_minute", "concurrent_operations_limit"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a whole number of at least 1, or null; got {value!r}")
        for name in ("rate_quota_window_seconds", "request_id_ttl_seconds", "source_image_limit_scale"):
            value = getattr(self, name)
            if value is None and name != "rate_quota_window_seconds":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                unit = "" if name == "source_image_limit_scale" else " of seconds"
                raise ValueError(f"{name} must be a positive number{unit}; got {value!r}")
        fraction = self.partial_list_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= fraction < 1.0:
            raise ValueError(f"partial_list_fraction must be at least 0 and below 1; got {fraction!r}")
        if self.partial_list_warning is not None and self.partial_list_warning not in LIST_WARNING_CODES:
            raise ValueError(
                f"partial_list_warning must be one of {', '.join(LIST_WARNING_CODES)} or null; "
                f"got {self.partial_list_warning!r}"
            )

    def updated(self, changes: dict[str, Any]) -> EmulatorOptions:
        """A copy with ``changes`` applied and checked.

        :param changes: option names and new values.
        :raises ValueError: an unknown option or a bad value.
        """
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"Unknown options: {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
        return EmulatorOptions(**{**asdict(self), **changes})

    def to_json(self) -> dict[str, Any]:
        """:return: the options as ``GET /_emulator/options`` shows them."""
        return asdict(self)


class RateQuota:
    """Requests admitted per project per window; the count starts again in each new window."""

    def __init__(self, wall: Any = time.time) -> None:
        """:param wall: the wall clock (windows start at multiples of the window length on it)."""
        self._wall = wall
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, int]] = {}

    def admit(self, project: str, limit: int | None, window: float) -> bool:
        """Count one request of ``project`` if the quota has room.

        :param project: the project the request is for.
        :param limit: requests per window (None = unlimited).
        :param window: the window length in seconds.
        :return: False when the quota is used up (the request is refused and not counted).
        """
        if limit is None:
            return True
        current = math.floor(self._wall() / window)
        with self._lock:
            started, count = self._counts.get(project, (current, 0))
            if started != current:
                count = 0
            if count >= limit:
                self._counts[project] = (current, count)
                return False
            self._counts[project] = (current, count + 1)
            return True


def thin_list(
    payload: dict[str, Any], fraction: float, code: str | None, rng: random.Random, scope: str = "global"
) -> int:
    """Leave ``fraction`` of a list page's items out (at least one when there are any) and add ``warning``.

    :param payload: a ``*List`` answer, changed in place.
    :param fraction: the share of items to leave out (0 < fraction < 1).
    :param code: the warning code (None: no warning, items left out silently).
    :param rng: the random source choosing which items go.
    :param scope: the scope named in the warning's data.
    :return: how many items were left out.
    """
    items = payload.get("items") or []
    omitted = min(len(items), max(1, round(fraction * len(items)))) if items and fraction > 0 else 0
    if omitted:
        gone = set(rng.sample(range(len(items)), omitted))
        kept = [item for index, item in enumerate(items) if index not in gone]
        if kept:
            payload["items"] = kept
        else:
            payload.pop("items", None)
    if code is not None and fraction > 0:
        payload["warning"] = {
            "code": code,
            "message": _WARNING_MESSAGES[code].format(scope=scope),
            "data": [{"key": "scope", "value": scope}],
        }
    return omitted
