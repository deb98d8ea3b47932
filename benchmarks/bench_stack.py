"""A fleet backup on a real Airflow stack: the fleet backup operator or mapped inserts, one run per stack.

Each run starts a fresh e2e stack (:mod:`tests.e2e.stack`: private PostgreSQL, api-server, scheduler,
dag-processor, one triggerer, LocalExecutor with the harness's parallelism of 4; every other Airflow
option at its default: ``[core] max_map_length`` 1,024, ``[triggerer] capacity`` 1,000,
``max_active_tasks_per_dag`` 16), seeds ``--instances`` instances labelled ``fleet=<selector>`` in the
emulator with image inserts of ``--dmin`` to ``--dmax`` seconds (evenly spread, seeded), starts the
loop-lag probe (:mod:`benchmarks.loop_lag`) in the triggerer, triggers the backup DAG through the REST
API and watches it to its end:

* ``fleet``: ``e2e_fleet_backup_operator`` (:class:`ComputeEngineFleetBackupOperator`, default arguments);
* ``mapped``: ``bench_stack_mapped`` (list operator, then the deferrable insert operator mapped over it).

Measured: wall time from trigger to the run's end, task starts (the api-server's ``Task started`` lines
of the run's task instances: first starts, resumes after a deferral, retries), API calls per image (the
emulator's request log), the busiest 60 s of read calls against the per-project budget, the
triggerer's RSS (before and peak) and loop lag, the stored trigger rows (``trigger.kwargs`` bytes), and
the triggerer's "finished-since lists turned off" warnings (issue 27: none expected).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from benchmarks.environment import ARTIFACTS, REPO_ROOT
from benchmarks.output import emit_json
from benchmarks.stats import busiest_minute

if TYPE_CHECKING:
    from pathlib import Path

    from tests.e2e.rest import AirflowApi
    from tests.e2e.stack import Stack

DAGS = {"fleet": "e2e_fleet_backup_operator", "mapped": "bench_stack_mapped"}
PROBE_DAG = "bench_stack_lag_probe"
BENCH_DAGS = REPO_ROOT / "benchmarks" / "dags" / "bench_stack_backup.py"
ZONES = ("us-central1-a", "us-central1-b", "us-east1-b", "europe-west1-c")
#: Calls that change nothing (every other call is an insert).
READ_ACTIONS = re.compile(r"\.(get|list|wait|aggregatedList)$")
FINISHED = frozenset({"success", "failed"})


def seed(stack: Stack, count: int, selector: str, dmin: float, dmax: float) -> None:
    """``count`` instances labelled ``fleet=<selector>``, imaging in ``dmin``-``dmax`` s (evenly spread, shuffled)."""
    assert stack.emulator is not None
    durations = [dmin + (dmax - dmin) * n / max(1, count - 1) for n in range(count)]
    random.Random(27).shuffle(durations)
    for n, seconds in enumerate(durations):
        stack.emulator.add_instance(
            f"{ZONES[n % len(ZONES)]}/vm-{n:05d}", operation_seconds=round(seconds, 1), labels={"fleet": selector}
        )


def all_task_instances(api: AirflowApi, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """Every task instance of a run (paged: a mapped task has one per instance)."""
    from urllib.parse import quote

    found: list[dict[str, Any]] = []
    path = f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances"
    while True:  # the API caps a page at [api] maximum_page_limit (100 by default), whatever the limit asked
        answer = api.get(path, limit=100, offset=len(found))
        found += answer["task_instances"]
        if not answer["task_instances"] or len(found) >= int(answer["total_entries"]):
            return found


class Sampler(threading.Thread):
    """Every second: the triggerer's RSS; every 5 s: the stored trigger rows (bytes per class)."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(name="bench-stack-sampler", daemon=True)
        self.stack = stack
        self.stop_event = threading.Event()
        self.peak_rss = 0
        self.rows: dict[str, dict[str, int]] = {}

    def triggerer_rss(self) -> int:
        from tests.e2e.metrics import sample_memory

        pid = self.stack.triggerer.pid
        return sum(sample_memory({pid: "triggerer"}).rss.values())

    def trigger_rows(self) -> None:
        import sqlalchemy

        assert self.stack.postgres is not None
        engine = sqlalchemy.create_engine(self.stack.postgres.sqlalchemy_url)
        try:
            with engine.connect() as connection:
                rows = connection.execute(
                    sqlalchemy.text(
                        "SELECT classpath, count(*), max(length(kwargs)), sum(length(kwargs)) "
                        "FROM trigger GROUP BY classpath"
                    )
                ).all()
        finally:
            engine.dispose()
        for classpath, count, largest, total in rows:
            seen = self.rows.setdefault(
                str(classpath).rsplit(".", 1)[-1], {"rows": 0, "max_bytes": 0, "total_bytes": 0}
            )
            seen["rows"] = max(seen["rows"], int(count))
            seen["max_bytes"] = max(seen["max_bytes"], int(largest))
            seen["total_bytes"] = max(seen["total_bytes"], int(total))

    def run(self) -> None:
        tick = 0
        while not self.stop_event.is_set():
            try:
                self.peak_rss = max(self.peak_rss, self.triggerer_rss())
                if tick % 5 == 0:
                    self.trigger_rows()
            except Exception:  # a sample that failed (a process came or went) is skipped
                pass
            tick += 1
            self.stop_event.wait(1.0)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=30)


def start_probe(stack: Stack, work: Path) -> tuple[str, Path, Path]:
    """Trigger the loop-lag probe and wait until its task is deferred; its run id and files."""
    assert stack.api is not None
    out, stop = work / "loop-lag.json", work / "loop-lag.stop"
    run_id = stack.api.trigger(PROBE_DAG, {"out_path": str(out), "stop_path": str(stop)})["dag_run_id"]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        states = {ti["state"] for ti in stack.api.task_instances(PROBE_DAG, run_id)}
        if states == {"deferred"} and out.exists():
            return run_id, out, stop
        time.sleep(1.0)
    raise RuntimeError("the loop-lag probe never deferred")


def watch(api: AirflowApi, dag_id: str, run_id: str, timeout: float) -> str:
    """Poll the run until it ends; its final state ("timeout" if it did not end in time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = str(api.dag_run(dag_id, run_id)["state"])
        if state in FINISHED:
            return state
        time.sleep(2.0)
    return "timeout"


def task_starts(stack: Stack, ti_ids: set[str]) -> int:
    """How many times the run's task instances started (the api-server logs ``Task started`` per start)."""
    log = stack.airflow["api-server"].log_path
    pattern = re.compile(r"Task started.*ti_id=([0-9a-f-]{36})")
    return sum(
        1 for line in log.read_text(errors="replace").splitlines() if (m := pattern.search(line)) and m[1] in ti_ids
    )


def requests_summary(records: list[dict[str, Any]], images: int, started_at: float) -> dict[str, Any]:
    """API calls per image, by action, and the busiest 60 s of reads."""
    reads = [float(r["started"]) for r in records if READ_ACTIONS.search(str(r["action"]))]
    return {
        "requests": len(records),
        "requests_per_image": round(len(records) / images, 3) if images else None,
        "requests_by_action": dict(sorted(Counter(str(r["action"]) for r in records).items())),
        "reads": len(reads),
        "reads_busiest_minute": busiest_minute(reads),
    }


def timeline(
    stack: Stack, records: list[dict[str, Any]], started: float, trigger_epoch: float, wall: float
) -> dict[str, Any]:
    """Where the run's time went, in seconds from the trigger: inserts sent, operations done, run end."""
    assert stack.emulator is not None
    inserts = [float(r["started"]) - started for r in records if str(r["action"]).endswith(".insert")]
    operations = stack.emulator._call("GET", "/_emulator/operations", params={"project": stack.emulator.project})
    items = operations.get("items", operations) if isinstance(operations, dict) else operations
    ends = [
        datetime.fromisoformat(str(op["endTime"])).timestamp() - trigger_epoch
        for op in items or []
        if op.get("operationType") == "insert" and op.get("endTime")
    ]
    return {
        "first_insert": round(min(inserts), 1) if inserts else None,
        "last_insert": round(max(inserts), 1) if inserts else None,
        "last_operation_done": round(max(ends), 1) if ends else None,
        "run_end": round(wall, 1),
    }


def failure_of(stack: Stack, tis: list[dict[str, Any]]) -> str | None:
    """For a failed run: the failed task and the line of its log that says why (``max_map_length`` ...)."""
    failed = [ti for ti in tis if ti.get("state") in ("failed", "upstream_failed")]
    if not failed:
        return None
    first = failed[0]
    logs = sorted((stack.artifacts / "task-logs").rglob(f"task_id={first['task_id']}/**/attempt=*.log"))
    for path in logs:
        for line in path.read_text(errors="replace").splitlines():
            if "max_map_length" in line or "Error" in line or "error" in line:
                return f"{first['task_id']}[{first['map_index']}] {first['state']}: {line[:400]}"
    return f"{first['task_id']}[{first['map_index']}] {first['state']}"


def measure_run(stack: Stack, pattern: str, count: int, work: Path, timeout: float) -> dict[str, Any]:
    """Trigger one backup run on a started, seeded stack and measure it."""
    assert stack.api is not None and stack.emulator is not None
    api, dag_id = stack.api, DAGS[pattern]
    probe_run, lag_out, lag_stop = start_probe(stack, work)
    sampler = Sampler(stack)
    rss_before = sampler.triggerer_rss()
    stack.emulator._call("DELETE", "/_emulator/requests")
    sampler.start()
    started, trigger_epoch = time.monotonic(), time.time()
    run_id = api.trigger(dag_id, {"selector": "bench"})["dag_run_id"]
    state = watch(api, dag_id, run_id, timeout)
    wall = time.monotonic() - started
    records = stack.emulator.requests()
    lag_stop.write_text("stop")
    watch(api, PROBE_DAG, probe_run, 60)
    sampler.stop()
    tis = all_task_instances(api, dag_id, run_id)
    images = [
        i
        for i in stack.emulator.machine_images()
        if (i.get("labels") or {}).get("purpose", "").endswith(("fleet", "mapped"))
    ]
    ready = Counter(
        str(i.get("sourceInstance", "")).rsplit("/instances/", 1)[-1] for i in images if i.get("status") == "READY"
    )
    triggerer_log = "\n".join(p.read_text(errors="replace") for p in stack.artifacts.glob("triggerer*.log"))
    return {
        "pattern": pattern,
        "dag_id": dag_id,
        "instances": count,
        "run_state": state,
        "wall_seconds": round(wall, 1),
        "task_instances": len(tis),
        "task_instance_states": dict(Counter(str(ti.get("state")) for ti in tis)),
        "task_starts": task_starts(stack, {str(ti["id"]) for ti in tis}),
        "images_ready": sum(ready.values()),
        "instances_with_two_images": sum(1 for n in ready.values() if n > 1),
        **requests_summary(records, sum(ready.values()), started),
        "triggerer_rss_before_mb": round(rss_before / 2**20, 1),
        "triggerer_rss_peak_mb": round(sampler.peak_rss / 2**20, 1),
        "loop_lag": json.loads(lag_out.read_text()) if lag_out.exists() else None,
        "trigger_rows": sampler.rows,
        "finished_lists_turned_off": triggerer_log.count("is turned off"),
        "failure": failure_of(stack, tis) if state != "success" else None,
        "timeline": timeline(stack, records, started, trigger_epoch, wall),
    }


def run(pattern: str, count: int, dmin: float, dmax: float, parallelism: int, timeout: float) -> dict[str, Any]:
    """One run on a fresh stack; the stack is always stopped.

    :param pattern: ``fleet`` or ``mapped``.
    :param count: instances.
    :param dmin: shortest image insert, seconds.
    :param dmax: longest image insert, seconds.
    :param parallelism: ``[core] parallelism`` (the e2e harness's 4).
    :param timeout: seconds to wait for the run.
    """
    from tests.e2e.metrics import Summary
    from tests.e2e.stack import Stack, StackConfig

    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    artifacts = ARTIFACTS / "stack" / f"{pattern}-{count}-{stamp}"
    artifacts.mkdir(parents=True, exist_ok=True)
    config = StackConfig(
        dag_ids=(DAGS[pattern], PROBE_DAG),
        instances=(),
        operation_seconds=dmax,
        parallelism=parallelism,
        extra_dags=(BENCH_DAGS,),
    )
    summary = Summary(artifacts_dir=str(artifacts))
    stack = Stack(config, artifacts, summary)
    began = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load_before = os.getloadavg()[0]
    try:
        stack.start()
        seed(stack, count, "bench", dmin, dmax)
        result = measure_run(stack, pattern, count, artifacts, timeout)
    finally:
        stack.close()
    return result | {
        "operation_seconds": [dmin, dmax],
        "parallelism": parallelism,
        "started": began,
        "load_average": {"before": load_before, "after": os.getloadavg()[0]},
        "stack_start_seconds": summary.stack_start_seconds,
        "artifacts": str(artifacts),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: print the results as JSON (or write them with ``--out``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pattern", choices=sorted(DAGS), required=True)
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--dmin", type=float, default=60.0, help="shortest image insert, seconds (default 60)")
    parser.add_argument("--dmax", type=float, default=120.0, help="longest image insert, seconds (default 120)")
    parser.add_argument("--parallelism", type=int, default=4, help="[core] parallelism (default 4, the harness's)")
    parser.add_argument("--timeout", type=float, default=7200.0, help="seconds to wait for the run")
    parser.add_argument("--out", help="write JSON here instead of stdout")
    args = parser.parse_args(argv)
    emit_json(run(args.pattern, args.instances, args.dmin, args.dmax, args.parallelism, args.timeout), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
