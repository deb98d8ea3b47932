"""End to end: ``dag.test()`` of a 50-instance mapped backup, blocking and deferrable.

The DAG (``benchmarks/dags/bench_mapped_backup.py``) maps
:class:`ComputeEngineInsertMachineImageOperator` over the fleet with ``.partial(...).expand(...)``.
Both modes run in one process (after one warm-up ``dag.test()`` that is not timed, since the first
costs ~8 s of Airflow start-up) against the emulator in another process. ``dag.test()`` runs mapped
task instances one after another, and runs a deferred task's trigger in line, so wall time is
roughly ``fleet * (operation + per-task overhead)`` in both modes; requests are counted per mode.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks.emulator_process import EmulatorProcess
from benchmarks.environment import prepare_airflow, use_emulator
from benchmarks.output import emit_json

DAG_FILE = Path(__file__).resolve().parent / "dags" / "bench_mapped_backup.py"
PROJECT = "bench-e2e"
MODES = ("blocking", "deferrable")


def _run_dag(dag_id: str, logical_date: datetime) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    dag = bag.get_dag(dag_id)
    if dag is None:
        raise RuntimeError(f"no DAG {dag_id}")
    return dag.test(logical_date=logical_date, run_after=logical_date)


def _states(dag_run: Any) -> dict[str, int]:
    return dict(Counter(str(ti.state) for ti in dag_run.get_task_instances()))


def run(instances: int = 50, operation_seconds: float = 1.0) -> dict[str, Any]:
    """Run the mapped backup in both modes; return wall times and request counts.

    :param instances: fleet size.
    :param operation_seconds: how long each image insert takes in the emulator.
    :return: JSON-ready results.
    """
    home = prepare_airflow()
    os.environ["BENCH_E2E_INSTANCES"] = str(instances)
    shutil.copy(DAG_FILE, home / "dags" / DAG_FILE.name)
    begun = time.monotonic()
    from airflow.utils.db import resetdb

    resetdb()
    results: dict[str, Any] = {"instances": instances, "operation_seconds": operation_seconds, "modes": {}}
    with EmulatorProcess(operation_seconds=operation_seconds, project=PROJECT) as emulator:
        use_emulator(emulator.url, PROJECT)
        for index in range(instances):
            emulator.add_instance(f"us-central1-a/vm-{index:02d}", PROJECT)
        # Warm-up (not timed): Airflow's first dag.test() in a process pays its start-up.
        _run_dag("bench_mapped_backup_warmup", datetime(2026, 1, 1, tzinfo=timezone.utc))
        for mode in MODES:
            emulator.clear_requests()
            before = {image["name"] for image in emulator.machine_images(PROJECT)}
            started = time.monotonic()
            dag_run = _run_dag(f"bench_mapped_backup_{mode}", datetime(2026, 2, 1, tzinfo=timezone.utc))
            wall = time.monotonic() - started
            records = emulator.requests()
            made = [i for i in emulator.machine_images(PROJECT) if i["name"] not in before]
            results["modes"][mode] = {
                "wall_seconds": wall,
                "requests": len(records),
                "requests_per_image": len(records) / instances,
                "requests_by_action": dict(sorted(Counter(r["action"] for r in records).items())),
                "task_states": _states(dag_run),
                "run_state": str(dag_run.state),
                "images_ready": sum(1 for image in made if image["status"] == "READY"),
            }
    results["elapsed"] = time.monotonic() - begun
    return results


def main(argv: list[str] | None = None) -> int:
    """Command line: print the results as JSON (or write them with ``--out``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=50, help="fleet size (default 50)")
    parser.add_argument("--operation-seconds", type=float, default=1.0, help="insert duration (default 1)")
    parser.add_argument("--out", help="write JSON here instead of stdout")
    args = parser.parse_args(argv)
    emit_json(run(args.instances, args.operation_seconds), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
