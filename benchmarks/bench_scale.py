"""Triggerer scale: thousands of concurrent operation waits in one event loop.

``count`` machine-image inserts are made concurrently with the async hook; then one
:class:`MachineImageOperationTrigger` per operation is re-created from its serialized form and run
the way the triggerer runs it (a task per trigger iterating ``trigger.run()``, with a greenback
portal), all in one event loop, in real time, against the emulator in another process (so its CPU
does not distort the measured loop). Operation durations are spread evenly between ``dmin`` and
``dmax`` seconds (one source instance per duration); the triggers poll every 10 s (their default).

Measured: operation reads (``globalOperations.*``) per minute in the project while waiting (mean
over the wait, and the busiest 60-second window), peak RSS and its growth over the RSS before the
triggers were created (``VmHWM``, reset at that point, and a 0.25 s sampler), event-loop lag (a
ticker task sleeping 50 ms and recording its oversleep), and detection latency (the trigger's
event reaching the runner minus the operation's ``endTime``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.emulator_process import EmulatorProcess, epoch, project_of
from benchmarks.environment import monotonic_to_epoch_offset, prepare_airflow, use_emulator
from benchmarks.output import emit_json
from benchmarks.stats import busiest_minute, summary

if TYPE_CHECKING:
    from collections.abc import Iterator

PROJECT = "bench-scale"
ZONE = "us-central1-a"
OPERATION_READS = frozenset({"globalOperations.get", "globalOperations.list", "globalOperations.wait"})
TICK = 0.05


def rss_kib(field: str = "VmRSS") -> int:
    """A memory figure of this process from ``/proc/self/status``, in KiB (0 if unavailable).

    :param field: ``VmRSS`` (now) or ``VmHWM`` (peak since start or the last reset).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux ``clear_refs``); False if not permitted."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


async def insert_all(count: int, durations: list[float], concurrency: int) -> list[str]:
    """Start ``count`` inserts concurrently with the async hook; return the operation names.

    :param count: how many images.
    :param durations: one source instance per duration; images go round-robin.
    :param concurrency: inserts in flight at once.
    """
    from airflow_machine_images.hooks import ComputeEngineMachineImageAsyncHook

    hook = ComputeEngineMachineImageAsyncHook()
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> str:
        source = f"projects/{PROJECT}/zones/{ZONE}/instances/src-{index % len(durations)}"
        request_id = str(uuid.uuid4())
        async with gate:
            operation = await hook.execute_call(
                lambda api: api.insert_machine_image(
                    PROJECT, {"name": f"img-{index}"}, source_instance=source, request_id=request_id
                )
            )
        return str(operation["name"])

    async with hook.lease_client():
        return list(await asyncio.gather(*(one(i) for i in range(count))))


async def ticker(lags: list[tuple[float, float]], stop: asyncio.Event) -> None:
    """Sleep :data:`TICK` seconds over and over, recording when and how late each wake-up is.

    :param lags: where (loop time, oversleep in seconds) pairs go.
    :param stop: set to end.
    """
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(TICK)
        now = loop.time()
        lags.append((now, now - before - TICK))


async def rss_sampler(samples: list[int], pollers: dict[int, Any], stop: asyncio.Event) -> None:
    """Record RSS (KiB) every 0.25 s, and remember every poller seen (for its call counters).

    :param samples: where the readings go.
    :param pollers: id -> poller.
    :param stop: set to end.
    """
    from airflow_machine_images.triggers import polling

    while not stop.is_set():
        samples.append(rss_kib())
        pollers.update((id(p), p) for p in polling.active_pollers())
        await asyncio.sleep(0.25)


async def wait_all(operations: list[str], poll_interval: float) -> dict[str, Any]:
    """Run one trigger per operation in this loop, as the triggerer does; measure while they wait.

    :param operations: the operation names.
    :param poll_interval: the triggers' poll interval.
    """
    from airflow_machine_images.triggers import MachineImageOperationTrigger
    from benchmarks.triggerer import rebuild, run_trigger

    gc.collect()
    baseline = rss_kib()
    hwm_reset = reset_peak_rss()
    lags: list[tuple[float, float]] = []
    rss: list[int] = []
    pollers: dict[int, Any] = {}
    stop = asyncio.Event()
    probes = [asyncio.create_task(ticker(lags, stop)), asyncio.create_task(rss_sampler(rss, pollers, stop))]
    await asyncio.sleep(0.2)
    started = time.time()
    created_at = asyncio.get_running_loop().time()
    tasks = []
    for name in operations:  # the triggerer creates trigger tasks in one go for a batch of new triggers
        trigger = rebuild(
            MachineImageOperationTrigger(operation_name=name, project_id=PROJECT, poll_interval=poll_interval)
        )
        tasks.append(asyncio.create_task(run_trigger(trigger)))
    fired = await asyncio.gather(*tasks)
    finished = time.time()
    stop.set()
    await asyncio.gather(*probes)
    worst_at, _ = max(lags, key=lambda pair: pair[1], default=(created_at, 0.0))
    peak_sampled = max(rss, default=baseline)
    peak = max(peak_sampled, rss_kib("VmHWM") if hwm_reset else 0)
    return {
        "started": started,
        "finished": finished,
        "events": [(e.payload["status"], e.payload["operation"]["endTime"], e.received) for e in fired],
        "loop_lag": [lag for _, lag in lags],
        "loop_lag_max_at": worst_at - created_at,
        "rss_baseline_kib": baseline,
        "rss_peak_kib": peak,
        "rss_end_kib": rss_kib(),
        "hwm_reset": hwm_reset,
        "poller_stats": [vars(p.stats) for p in pollers.values()],
    }


@dataclass(frozen=True)
class Workload:
    """What a scale run waits for.

    :param count: concurrent waits (images inserted, one operation each).
    :param dmin: shortest operation, seconds.
    :param dmax: longest operation, seconds.
    :param poll_interval: the triggers' poll interval.
    :param concurrency: inserts in flight at once.
    """

    count: int
    dmin: float = 60.0
    dmax: float = 180.0
    poll_interval: float = 10.0
    concurrency: int = 32

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """Add ``--count``, ``--dmin``, ``--dmax``, ``--poll-interval`` and ``--out`` to a command line.

        :param parser: the command line's parser.
        """
        parser.add_argument("--count", type=int, default=1000, help="concurrent waits in all (default 1000)")
        parser.add_argument("--dmin", type=float, default=60.0, help="shortest operation, seconds (default 60)")
        parser.add_argument("--dmax", type=float, default=180.0, help="longest operation, seconds (default 180)")
        parser.add_argument("--poll-interval", type=float, default=10.0, help="trigger poll interval (default 10)")
        parser.add_argument("--out", help="write JSON here instead of stdout")

    @classmethod
    def from_arguments(cls, args: argparse.Namespace) -> Workload:
        """The workload a command line given :meth:`add_arguments` asked for.

        :param args: the parsed arguments.
        """
        return cls(args.count, dmin=args.dmin, dmax=args.dmax, poll_interval=args.poll_interval)


@dataclass
class Inserted:
    """The emulator with the workload's operations started in it, ready to be waited for.

    :param emulator: the emulator process (still running).
    :param operations: the operation names, in insert order.
    :param insert_seconds: how long the inserts took.
    :param offset: adds to a CLOCK_MONOTONIC reading to get epoch seconds.
    """

    emulator: EmulatorProcess
    operations: list[str]
    insert_seconds: float
    offset: float


@contextmanager
def inserted(workload: Workload) -> Iterator[Inserted]:
    """Start an emulator, seed its source instances and insert the workload's images concurrently.

    :param workload: how many images, their operations' durations, inserts in flight.
    """
    prepare_airflow()
    count, dmin, dmax = workload.count, workload.dmin, workload.dmax
    kinds = max(1, min(count, 61))
    durations = [dmin + (dmax - dmin) * i / max(1, kinds - 1) for i in range(kinds)]
    with EmulatorProcess(wait_deadline=120.0, project=PROJECT) as emulator:
        use_emulator(emulator.url, PROJECT)
        for index, seconds in enumerate(durations):
            emulator.add_instance(f"{ZONE}/src-{index}", PROJECT, operation_seconds=seconds)
        offset = monotonic_to_epoch_offset()
        t0 = time.monotonic()
        operations = asyncio.run(insert_all(count, durations, workload.concurrency))
        yield Inserted(emulator, operations, time.monotonic() - t0, offset)


def run(workload: Workload) -> dict[str, Any]:
    """Insert the workload's images, wait for all of them with triggers in one loop, and measure.

    :param workload: what to wait for.
    :return: JSON-ready results.
    """
    begun = time.monotonic()
    with inserted(workload) as setup:
        measured = asyncio.run(wait_all(setup.operations, workload.poll_interval))
        records = setup.emulator.requests()
    return analyse(workload, setup.insert_seconds, measured, records, setup.offset, begun)


def analyse(
    workload: Workload,
    insert_seconds: float,
    measured: dict[str, Any],
    records: list[dict[str, Any]],
    offset: float,
    begun: float,
) -> dict[str, Any]:
    """Turn the raw measurements into the reported figures.

    :param workload: what was waited for.
    :param insert_seconds: how long the inserts took.
    :param measured: :func:`wait_all`'s results.
    :param records: request records (the emulator's, or a process's own): ``action``, ``path``, ``started``.
    :param offset: adds to a CLOCK_MONOTONIC reading (``started``) to get epoch seconds.
    :param begun: ``time.monotonic()`` when the benchmark began.
    """
    start, end = measured["started"], measured["finished"]
    reads = [
        r["started"] + offset
        for r in records
        if r["action"] in OPERATION_READS and project_of(r) == PROJECT and start <= r["started"] + offset <= end
    ]
    minutes = (end - start) / 60.0
    latency = [received - epoch(end_time) for _, end_time, received in measured["events"]]
    statuses = sorted({status for status, _, _ in measured["events"]})
    return {
        "count": workload.count,
        "dmin": workload.dmin,
        "dmax": workload.dmax,
        "poll_interval": workload.poll_interval,
        "insert_seconds": insert_seconds,
        "wait_seconds": end - start,
        "statuses": statuses,
        "operation_reads": len(reads),
        "reads_by_action": {
            action: sum(1 for r in records if r["action"] == action and project_of(r) == PROJECT)
            for action in sorted(OPERATION_READS)
        },
        "reads_per_minute_mean": len(reads) / minutes if minutes >= 1.0 else float("nan"),
        "reads_busiest_minute": busiest_minute(reads),
        "rss_baseline_mib": measured["rss_baseline_kib"] / 1024,
        "rss_peak_mib": measured["rss_peak_kib"] / 1024,
        "rss_growth_mib": (measured["rss_peak_kib"] - measured["rss_baseline_kib"]) / 1024,
        "rss_end_mib": measured["rss_end_kib"] / 1024,
        "hwm_reset": measured["hwm_reset"],
        "loop_lag": summary(measured["loop_lag"]),
        "loop_lag_max_at": measured["loop_lag_max_at"],
        "detection_latency": summary(latency),
        "poller_stats": measured["poller_stats"],
        "elapsed": time.monotonic() - begun,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: print the results as JSON (or write them with ``--out``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    Workload.add_arguments(parser)
    args = parser.parse_args(argv)
    results = run(Workload.from_arguments(args))
    emit_json(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
