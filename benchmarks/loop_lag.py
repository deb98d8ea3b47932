"""A trigger that measures the triggerer's event-loop lag while it runs beside the triggers under test.

It sleeps 50 ms in a loop and records how much later than asked each wake-up came (the same measure
as :mod:`benchmarks.bench_scale`'s probe), writes the percentiles to ``out_path`` every few seconds,
and ends (with the same figures in its event) once ``stop_path`` exists. The real-stack benchmark
(:mod:`benchmarks.bench_stack`) defers one task to it before the backup starts.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from benchmarks.stats import percentile

#: Seconds each probe sleeps.
PROBE_SECONDS = 0.05
#: Seconds between two writes of the figures.
WRITE_EVERY = 5.0


def lag_figures(lags: list[float]) -> dict[str, Any]:
    """Percentiles (seconds) of the wake-up lags measured so far.

    :param lags: seconds each wake-up came late.
    """
    ordered = sorted(lags)
    return {
        "samples": len(ordered),
        "p50": percentile(ordered, 50) if ordered else None,
        "p99": percentile(ordered, 99) if ordered else None,
        "max": ordered[-1] if ordered else None,
    }


class LoopLagProbeTrigger(BaseTrigger):
    """Measure the loop lag until ``stop_path`` exists.

    :param out_path: where the figures are written (JSON), every few seconds and at the end.
    :param stop_path: the probe ends once this file exists.
    """

    def __init__(self, out_path: str, stop_path: str) -> None:
        super().__init__()
        self.out_path = out_path
        self.stop_path = stop_path

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The class path and kwargs."""
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            "out_path": self.out_path,
            "stop_path": self.stop_path,
        }

    async def run(self) -> Any:
        """Sleep, measure, write; yield the figures once told to stop."""
        loop = asyncio.get_running_loop()
        lags: list[float] = []
        written = loop.time()
        while True:
            asked = loop.time()
            await asyncio.sleep(PROBE_SECONDS)
            lags.append(max(0.0, loop.time() - asked - PROBE_SECONDS))
            if loop.time() - written >= WRITE_EVERY:
                written = loop.time()
                figures = lag_figures(lags)
                await asyncio.to_thread(Path(self.out_path).write_text, json.dumps(figures))
                if await asyncio.to_thread(os.path.exists, self.stop_path):
                    yield TriggerEvent(figures)
                    return
