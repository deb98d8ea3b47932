"""Airflow 2.11 for real: the scheduler (LocalExecutor) and the classic triggerer on PostgreSQL run the
deferrable examples, and a task's deadline set before it defers ends its wait in the triggerer.

Airflow 2 only: ``make compat`` and ``make compat-ci`` run it in the ``airflow2.11-py3.11`` cell (the
cell's own venv, the built wheel); on Airflow 3 it is skipped, saying so, and ``test_e2e.py`` runs the
Airflow 3 stack instead. Three runs at once on one stack:

- ``example_machine_image`` with ``[operators] default_deferrable`` on: its insert defers to
  ``MachineImageOperationTrigger``, the triggerer fires it, the task resumes and returns the summary;
- ``example_machine_image_sensor``: the insert returns at once and the deferrable operation sensor waits
  in the triggerer;
- ``e2e_deadline``: a deferrable insert with ``timeout=8`` on an instance whose image takes 60 s; the
  trigger carries the deadline the worker set and fires a timeout event at it.
"""

from __future__ import annotations

import importlib.metadata
import json
import time
from typing import TYPE_CHECKING

import pytest

from tests.e2e.airflow2 import Airflow2Stack

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not importlib.metadata.version("apache-airflow").startswith("2."),
        reason="Airflow 2 only: the airflow2.11-py3.11 compat cell runs it (make compat-ci); Airflow 3: test_e2e.py",
    ),
]

TRIGGER = "airflow_machine_images.triggers.waits.MachineImageOperationTrigger"
#: dag_id -> (run_id, conf, the task that defers, the run's expected end state).
RUNS = {
    "example_machine_image": (
        "e2e-af2-operator",
        {"image_prefix": "web-2", "source_instance": "us-central1-a/web-2"},
        "create_image",
        "success",
    ),
    "example_machine_image_sensor": ("e2e-af2-sensor", {}, "wait_for_image", "success"),
    "e2e_deadline": ("e2e-af2-deadline", {}, "create_image", "failed"),
}
FINISHED = ("success", "failed")


@pytest.fixture(scope="module")
def stack(artifacts: Path) -> Iterator[Airflow2Stack]:
    """PostgreSQL, the emulator (8 s images; 60 s for ``slow-1``), scheduler and triggerer, DAGs parsed."""
    harness = Airflow2Stack(artifacts, ("us-central1-a/web-1", "us-central1-a/web-2"), operation_seconds=8.0)
    try:
        try:
            harness.start()
            assert harness.emulator is not None
            harness.emulator.add_instance("us-central1-a/slow-1", operation_seconds=60.0)
            harness.wait_dags_parsed(tuple(RUNS))
        except BaseException:
            print(f"\nthe Airflow 2 stack failed to start; process logs:\n{harness.failure_report(60)}")
            raise
        yield harness
    finally:
        print("\n".join(harness.close()))


def _watch(stack: Airflow2Stack, timeout: float) -> dict[str, set[str]]:
    """Poll until every run has finished; return the states each deferring task was seen in."""
    seen: dict[str, set[str]] = {dag_id: set() for dag_id in RUNS}
    deadline = time.monotonic() + timeout
    while True:
        for dag_id, (run_id, _, task_id, _) in RUNS.items():
            rows = stack.query(
                "SELECT state FROM task_instance WHERE dag_id = :d AND run_id = :r AND task_id = :t",
                d=dag_id, r=run_id, t=task_id,
            )  # fmt: skip
            seen[dag_id].update(str(row["state"]) for row in rows if row["state"])
        run_ids = [run_id for run_id, *_ in RUNS.values()]
        runs = stack.query("SELECT dag_id, state FROM dag_run WHERE run_id = ANY(:ids)", ids=run_ids)
        if len(runs) == len(RUNS) and all(run["state"] in FINISHED for run in runs):
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"runs not finished after {timeout:.0f} s: {runs}; task states seen: {seen}")
        time.sleep(0.5)


def test_deferrable_examples_and_the_deadline_on_the_real_triggerer(stack: Airflow2Stack) -> None:
    started = time.monotonic()
    stack.trigger({dag_id: (run_id, conf) for dag_id, (run_id, conf, _, _) in RUNS.items()})
    seen = _watch(stack, timeout=240)
    elapsed = time.monotonic() - started

    states = {row["dag_id"]: row["state"] for row in stack.query("SELECT dag_id, state FROM dag_run")}
    assert states == {dag_id: expected for dag_id, (_, _, _, expected) in RUNS.items()}, stack.failure_report(30)
    # Each waiting task was deferred (it held no worker slot), to our trigger, and the triggerer ran it.
    for dag_id, task_states in seen.items():
        assert "deferred" in task_states, (dag_id, task_states)
    # Airflow 2's triggerer writes each trigger's log next to its task's: attempt=1.log.trigger.<job id>.log.
    triggerer_jobs = {row["id"] for row in stack.query("SELECT id FROM job WHERE job_type = 'TriggererJob'")}
    trigger_logs = sorted(stack.task_logs.glob("**/attempt=1.log.trigger.*.log"))
    assert {int(path.name.rsplit(".", 2)[-2]) for path in trigger_logs} <= triggerer_jobs, trigger_logs
    fired = [
        line
        for path in trigger_logs
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
        if " fired: TriggerEvent" in line
    ]
    assert len(fired) == len(RUNS), fired
    assert sum("'status': 'success'" in line for line in fired) == 2, fired
    assert sum("'reason': 'timeout'" in line for line in fired) == 1, fired

    # The operator's summary reached XCom; the sensor's too; two READY images, one per source.
    assert stack.emulator is not None
    images = {image["name"]: image for image in stack.emulator.machine_images()}
    ready = sorted(name for name, image in images.items() if image["status"] == "READY")
    assert len(ready) == 2 and not any(name.startswith("slow-1") for name in ready), images
    xcoms = stack.query(
        "SELECT dag_id, task_id, value FROM xcom WHERE key = 'return_value' AND dag_id = ANY(:ids)",
        ids=["example_machine_image", "example_machine_image_sensor"],
    )
    by_task = {(row["dag_id"], row["task_id"]): json.loads(bytes(row["value"])) for row in xcoms}
    assert by_task[("example_machine_image", "create_image")]["status"] == "READY"
    assert by_task[("example_machine_image", "create_image")]["name"] in ready
    assert by_task[("example_machine_image_sensor", "wait_for_image")]["status"] == "DONE"

    # The deadline: set on the worker before deferring, kept by the trigger, it ended the 60 s wait.
    (task_log,) = stack.task_logs.glob("dag_id=e2e_deadline/**/task_id=create_image/attempt=1.log")
    text = task_log.read_text(encoding="utf-8", errors="replace")
    assert "was not DONE by the task's deadline" in text and "Marking task as FAILED" in text, text[-3000:]
    print(f"\nAirflow 2 e2e: the runs finished {elapsed:.0f} s after triggering; the triggerer fired {len(fired)}")
