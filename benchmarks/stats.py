"""Small statistics helpers: medians, percentiles, formatting."""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence


def median(values: Sequence[float]) -> float:
    """The median, or NaN for no values.

    :param values: the samples.
    """
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile by linear interpolation (NaN for no values).

    :param values: the samples.
    :param pct: 0 to 100.
    """
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99 and max of ``values`` (NaN when empty).

    :param values: the samples.
    """
    return {
        "n": float(len(values)),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else math.nan,
    }


def fmt_seconds(value: float) -> str:
    """Human units: ``12 ms``, ``1.3 s``, ``2.5 min``.

    :param value: seconds.
    """
    if value is None or math.isnan(value):
        return "n/a"
    if abs(value) < 1.0:
        return f"{value * 1000:.0f} ms" if abs(value) >= 0.01 else f"{value * 1000:.1f} ms"
    if abs(value) < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def fmt_ratio(value: float) -> str:
    """``12x``, ``1.5x`` or ``0.31x``.

    :param value: a ratio.
    """
    if value is None or math.isnan(value) or math.isinf(value):
        return "n/a"
    if value >= 10:
        return f"{value:.0f}x"
    return f"{value:.2g}x" if value < 1 else f"{value:.1f}x"


def busiest_minute(starts: list[float]) -> int:
    """The most requests that started within any 60-second window.

    :param starts: request start times (seconds).
    """
    ordered = sorted(starts)
    best, low = 0, 0
    for high, value in enumerate(ordered):
        while value - ordered[low] >= 60.0:
            low += 1
        best = max(best, high - low + 1)
    return best
