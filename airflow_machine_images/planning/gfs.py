"""Grandfather-father-son retention: which images the counting rules keep, with restic's semantics. Pure, no I/O.

The rules, per source instance, among its READY images with a readable creation time (restic's
``forget --keep-last/--keep-daily/--keep-weekly/--keep-monthly/--keep-yearly``, man page
``restic-forget(1)``; borg ``prune`` has the same shape):

* ``keep_last`` N: an image is kept when fewer than N images of its source are strictly newer (images
  made in the same instant are kept or deleted together);
* ``keep_daily`` / ``keep_weekly`` / ``keep_monthly`` / ``keep_yearly`` N: the images are put in
  periods (UTC calendar days; ISO 8601 weeks, Monday to Sunday, numbered within their ISO year;
  calendar months; calendar years, all in UTC). Of the N most recent periods *that have an image*, the
  newest image of each is kept (all of them if several share the newest instant). A period without an
  image does not count: seven dailies of a source imaged every other day reach back fourteen days;
* the newest image of a source is always kept (the safety rule of every retention run), whatever the
  counts say;
* an image kept by any rule stays: the rules keep the union.

One difference from restic, on purpose: restic 0.17 and later also keep the oldest snapshot of a group
when a period rule has counts left over ("If there are not enough snapshots to keep one for each
duration related --keep-{within-,}" option, the oldest snapshot in the group is kept additionally",
``restic-forget(1)`` of 0.17). That rule is not applied here: the kept set then depends only on the N
most recent periods, as the issue that asked for these rules states them, and an old image is kept for
a reason a dry run can name. ``max_age`` (keep everything younger than a duration, measured from now,
not from the newest image as restic's ``--keep-within`` is) is applied by
:mod:`airflow_machine_images.planning.retention`, which calls this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Final

from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.validation.primitives import show_value

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["PERIOD_RULES", "KeepCounts", "keep_reasons", "period_of"]

#: The calendar rules, finest first, as their arguments name them (``keep_daily``, ...).
PERIOD_RULES: Final = ("daily", "weekly", "monthly", "yearly")
#: The reason of the safety rule: the newest READY image of a source is always kept.
NEWEST: Final = "newest"
#: The reason of ``keep_last``.
LAST: Final = "last"


def period_of(rule: str, when: datetime) -> str:
    """The period of ``rule`` that ``when`` falls in, in UTC: ``2026-05-20``, ``2026-W21``, ``2026-05``, ``2026``.

    The labels of one rule sort as their periods do (ISO weeks are numbered within their ISO year, so
    ``2026-W01`` may begin on 29 December 2025, and sorts after ``2025-W52``).

    :param rule: one of :data:`PERIOD_RULES`.
    :param when: an aware moment.
    :raises ValueError: an unknown rule.
    """
    utc = when.astimezone(timezone.utc)
    if rule == "daily":
        return f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
    if rule == "weekly":
        year, week, _ = utc.isocalendar()
        return f"{year:04d}-W{week:02d}"
    if rule == "monthly":
        return f"{utc.year:04d}-{utc.month:02d}"
    if rule == "yearly":
        return f"{utc.year:04d}"
    raise ValueError(f"unknown period rule {rule!r}")


@dataclass(frozen=True)
class KeepCounts:
    """The counting rules of a policy (None: the rule is not used).

    :param last: ``keep_last``: the newest N images.
    :param daily: ``keep_daily``: the newest image of each of the N most recent UTC days with an image.
    :param weekly: ``keep_weekly``: the same per ISO week.
    :param monthly: ``keep_monthly``: the same per calendar month.
    :param yearly: ``keep_yearly``: the same per calendar year.
    """

    last: int | None = None
    daily: int | None = None
    weekly: int | None = None
    monthly: int | None = None
    yearly: int | None = None

    def __post_init__(self) -> None:
        for rule in ("last", *PERIOD_RULES):
            value = getattr(self, rule)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                why = f" (keep_{rule}=0 would keep nothing by it: leave it out instead)" if value == 0 else ""
                if rule == "last" and value == 0:  # the wording of earlier releases, which guides DAG authors
                    why = " (keep_last=0 would delete every image of a source; leave it out to keep by other rules)"
                raise MachineImageValidationError(f"keep_{rule}", f"must be an integer >= 1{why}", show_value(value))

    @property
    def any(self) -> bool:
        """Whether any counting rule is set."""
        return any(getattr(self, rule) is not None for rule in ("last", *PERIOD_RULES))

    def describe(self) -> str:
        """The rules set, as arguments (``keep_last=3, keep_daily=7``)."""
        return ", ".join(
            f"keep_{rule}={getattr(self, rule)}" for rule in ("last", *PERIOD_RULES) if getattr(self, rule) is not None
        )


def keep_reasons(dated: Sequence[tuple[datetime, str]], counts: KeepCounts) -> dict[str, list[str]]:
    """Which counting rules keep each image of one source: ``{"img": ["newest", "last", "daily:2026-05-20"]}``.

    :param dated: the source's READY images as (creation time, name), newest first (ties in any order).
    :param counts: the counting rules.
    :return: every name of ``dated`` mapped to the reasons that keep it (an empty list: none does).
    """
    reasons: dict[str, list[str]] = {name: [] for _, name in dated}
    if not dated:
        return reasons
    newest = dated[0][0]
    newer = 0  # how many images are strictly newer than the one at hand
    for index, (when, name) in enumerate(dated):
        if index and when < dated[index - 1][0]:
            newer = index
        if when == newest:
            reasons[name].append(NEWEST)
        if counts.last is not None and newer < counts.last:
            reasons[name].append(LAST)
    for rule in PERIOD_RULES:
        wanted = getattr(counts, rule)
        if wanted is None:
            continue
        chosen: dict[str, datetime] = {}  # period -> the creation time of its newest image, newest period first
        for when, name in dated:
            period = period_of(rule, when)
            if period not in chosen:
                if len(chosen) == wanted:
                    break  # every later image is in an older period, beyond the N most recent
                chosen[period] = when
            if chosen[period] == when:
                reasons[name].append(f"{rule}:{period}")
    return reasons
