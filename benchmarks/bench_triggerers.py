"""Triggerer scale with several triggerers: the waits spread over processes sharing one project's budget.

Like :mod:`benchmarks.bench_scale` (same emulator, same inserts, same operation durations), but once
the operations exist the waits are split between ``triggerers`` separate processes, each running its
share of :class:`MachineImageOperationTrigger` instances in its own event loop exactly as the
single-process benchmark does (:func:`benchmarks.bench_scale.wait_all`), with
``AIRFLOW__MACHINE_IMAGES__TRIGGERERS`` set to the number of processes and the configured per-project
total left at its default (60), so each process's poller keeps to ``total // triggerers``.

The split alternates: operation ``i`` (in insert order) goes to triggerer ``i % triggerers``. Airflow
assigns triggers first come, first served (``Trigger.assign_unassigned``: each triggerer's loop claims
unassigned triggers up to its ``[triggerer] capacity``), so which triggerer gets which wait depends on
timing; alternating is the even, interleaved spread of tasks deferring over time. The budget split does
not depend on it: every triggerer keeps to its share however many waits it holds.

The processes start their triggers together (each signals that it has imported Airflow and the
package, then all are released at once). Measured: operation reads in the project across all processes
from the emulator's request log (busiest 60-second window and mean over the wait); each process's own
reads, recorded on its client side (:mod:`benchmarks.request_trace`: the server's log cannot tell a
``status != "DONE"`` list of one process from another's); detection latency over all waits; each
process's waits, RSS, event-loop lag and poller counters. RSS figures of the whole are sums over the
processes.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_scale import PROJECT, Workload, analyse, inserted, wait_all
from benchmarks.environment import REPO_ROOT, prepare_airflow, use_emulator
from benchmarks.output import emit_json
from benchmarks.request_trace import record_requests

#: How the waits are spread over the triggerers (see the module docstring).
SPLIT = "alternate"
#: Seconds a triggerer process may take to start (import Airflow and the package).
START_TIMEOUT = 180.0


def split(operations: list[str], triggerers: int) -> list[list[str]]:
    """Spread the waits over ``triggerers`` processes, alternating: operation ``i`` goes to ``i % triggerers``.

    :param operations: the operation names, in insert order.
    :param triggerers: how many triggerer processes (>= 1).
    :raises ValueError: ``triggerers`` is below 1.
    """
    if triggerers < 1:
        raise ValueError(f"triggerers must be >= 1, got {triggerers}")
    return [operations[index::triggerers] for index in range(triggerers)]


def combine(measured: list[dict[str, Any]]) -> dict[str, Any]:
    """Several processes' :func:`~benchmarks.bench_scale.wait_all` results as one whole.

    The wait spans the first start to the last finish; events, lag samples and poller counters are
    pooled; RSS figures are summed over the processes (the peaks' sum bounds the pair's peak); the worst
    lag's time is that of the process with the worst lag.

    :param measured: each process's results.
    """
    worst = max(measured, key=lambda m: max(m["loop_lag"], default=0.0))
    return {
        "started": min(m["started"] for m in measured),
        "finished": max(m["finished"] for m in measured),
        "events": [event for m in measured for event in m["events"]],
        "loop_lag": [lag for m in measured for lag in m["loop_lag"]],
        "loop_lag_max_at": worst["loop_lag_max_at"],
        "rss_baseline_kib": sum(m["rss_baseline_kib"] for m in measured),
        "rss_peak_kib": sum(m["rss_peak_kib"] for m in measured),
        "rss_end_kib": sum(m["rss_end_kib"] for m in measured),
        "hwm_reset": all(m["hwm_reset"] for m in measured),
        "poller_stats": [stats for m in measured for stats in m["poller_stats"]],
    }


def analyse_shared(
    workload: Workload,
    insert_seconds: float,
    shares: list[dict[str, Any]],
    records: list[dict[str, Any]],
    offset: float,
    begun: float,
) -> dict[str, Any]:
    """The whole (from the emulator's log) and each process (from its own request records).

    :param workload: what was waited for, in all.
    :param insert_seconds: how long the inserts took.
    :param shares: each triggerer process's output (:func:`triggerer_main`).
    :param records: the emulator's request records.
    :param offset: adds to a CLOCK_MONOTONIC reading to get epoch seconds.
    :param begun: ``time.monotonic()`` when the benchmark began.
    :raises RuntimeError: the processes read different budgets.
    """
    budgets = [share["budget"] for share in shares]
    if any(budget != budgets[0] for budget in budgets):
        raise RuntimeError(f"the triggerer processes read different budgets: {budgets}")
    pooled = combine([share["measured"] for share in shares])
    whole = analyse(workload, insert_seconds, pooled, records, offset, begun)
    processes = [
        {
            **analyse(
                dataclasses.replace(workload, count=share["waits"]),
                insert_seconds,
                share["measured"],
                share["requests"],
                offset,
                begun,
            ),
            "pid": share["pid"],
            "budget": share["budget"],
        }
        for share in shares
    ]
    return {**whole, "triggerers": len(shares), "split": SPLIT, "budget": budgets[0], "processes": processes}


def run_triggerers(
    shares: list[list[str]], poll_interval: float, endpoint: str, work: Path, timeout: float
) -> list[dict[str, Any]]:
    """Run each share of the waits in its own triggerer process, released together; return their outputs.

    :param shares: the operation names of each process.
    :param poll_interval: the triggers' poll interval.
    :param endpoint: the emulator's URL.
    :param work: a folder for the job, signal and output files.
    :param timeout: seconds every process may take once released.
    :raises RuntimeError: a process failed or did not start in time.
    """
    go = work / "go"
    env = {**os.environ, "AIRFLOW__MACHINE_IMAGES__TRIGGERERS": str(len(shares))}
    processes: list[tuple[subprocess.Popen[bytes], Path, Path]] = []
    try:
        for index, operations in enumerate(shares):
            job, ready, out = work / f"job-{index}.json", work / f"ready-{index}", work / f"out-{index}.json"
            job.write_text(
                json.dumps(
                    {
                        "endpoint": endpoint,
                        "operations": operations,
                        "poll_interval": poll_interval,
                        "ready": str(ready),
                        "go": str(go),
                    }
                ),
                encoding="utf-8",
            )
            command = [sys.executable, "-m", "benchmarks.bench_triggerers", "--triggerer-job", str(job)]
            command += ["--out", str(out)]
            processes.append((subprocess.Popen(command, cwd=REPO_ROOT, env=env), ready, out))
        deadline = time.monotonic() + START_TIMEOUT
        while not all(ready.exists() for _, ready, _ in processes):
            if any(process.poll() is not None for process, _, _ in processes):
                raise RuntimeError("a triggerer process exited before it was ready")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the triggerer processes were not ready within {START_TIMEOUT:.0f} s")
            time.sleep(0.05)
        go.touch()
        for index, (process, _, _) in enumerate(processes):
            if process.wait(timeout=timeout) != 0:
                raise RuntimeError(f"triggerer process {index} exited with status {process.returncode}")
        return [json.loads(out.read_text(encoding="utf-8")) for _, _, out in processes]
    finally:
        for process, _, _ in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def triggerer_main(job_file: Path, out: str | None) -> None:
    """One triggerer process: wait for its share of the operations, as the single-process benchmark does.

    :param job_file: the job (:func:`run_triggerers` writes it).
    :param out: where the output JSON goes (stdout if None).
    """
    job = json.loads(job_file.read_text(encoding="utf-8"))
    prepare_airflow()
    use_emulator(job["endpoint"], PROJECT)
    requests = record_requests()
    from airflow_machine_images import triggers  # after prepare_airflow: it imports Airflow
    from airflow_machine_images.triggers import budget

    del triggers  # imported now so that its cost stays out of the measured wait
    Path(job["ready"]).touch()
    go = Path(job["go"])
    while not go.exists():
        time.sleep(0.01)
    measured = asyncio.run(wait_all(job["operations"], job["poll_interval"]))
    result = {
        "pid": os.getpid(),
        "waits": len(job["operations"]),
        "budget": {
            "total": budget.configured_total(),
            "triggerers": budget.configured_triggerers(),
            "share": budget.shares(None)[0],
        },
        "measured": measured,
        "requests": requests,
    }
    emit_json(result, out)


def run(workload: Workload, triggerers: int = 2) -> dict[str, Any]:
    """Insert the workload's images, wait for them in ``triggerers`` processes, and measure.

    :param workload: what to wait for, in all.
    :param triggerers: triggerer processes sharing the project's budget.
    :return: JSON-ready results.
    """
    begun = time.monotonic()
    timeout = 600.0 + 10 * workload.dmax
    with (
        tempfile.TemporaryDirectory(prefix="ami-bench-triggerers-") as work,
        inserted(workload) as setup,
    ):
        shares = split(setup.operations, triggerers)
        outputs = run_triggerers(shares, workload.poll_interval, setup.emulator.url, Path(work), timeout)
        records = setup.emulator.requests()
    return analyse_shared(workload, setup.insert_seconds, outputs, records, setup.offset, begun)


def main(argv: list[str] | None = None) -> int:
    """Command line: print the results as JSON (or write them with ``--out``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    Workload.add_arguments(parser)
    parser.add_argument("--triggerers", type=int, default=2, help="triggerer processes (default 2)")
    parser.add_argument("--triggerer-job", type=Path, help=argparse.SUPPRESS)  # internal: be one triggerer
    args = parser.parse_args(argv)
    if args.triggerer_job is not None:
        triggerer_main(args.triggerer_job, args.out)
        return 0
    if args.triggerers < 1:
        parser.error(f"--triggerers must be >= 1, got {args.triggerers}")
    emit_json(run(Workload.from_arguments(args), args.triggerers), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
