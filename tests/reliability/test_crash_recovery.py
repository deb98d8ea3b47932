"""Crash recovery: a worker SIGKILLed mid-insert, and a triggerer SIGKILLed mid-wait.

Both crashes happen in real child processes; the emulator runs in the test process, so it outlives
them and its books tell what reached the server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_machine_images.emulator import Fault
from airflow_machine_images.flows.request_ids import TaskInstanceIdentity, derive_request_id
from airflow_machine_images.operators import ComputeEngineInsertMachineImageOperator
from tests.reliability.conftest import PROJECT, SOURCE
from tests.reliability.harness import REPO_ROOT, FakeTaskInstance, context_of

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from airflow_machine_images.emulator import ComputeEngineEmulator

pytestmark = pytest.mark.reliability

IDENTITY: dict[str, Any] = {
    "dag_id": "crash",
    "task_id": "create",
    "run_id": "scheduled__2026-06-01T00:00:00+00:00",
    "map_index": 3,
}


def start(*args: str) -> subprocess.Popen[str]:
    """A worker or triggerer process of the same deployment (same config, so the same Fernet key)."""
    from airflow.configuration import conf

    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.crash_worker", *args],
        cwd=REPO_ROOT,
        env={**os.environ, "AIRFLOW__CORE__FERNET_KEY": conf.get("core", "fernet_key")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(process: subprocess.Popen[str], marker: str, timeout: float = 120) -> dict[str, Any]:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"exit {process.returncode}\n{out}\n{err[-4000:]}"
    line = next(line for line in out.splitlines() if line.startswith(marker + " "))
    return dict(json.loads(line[len(marker) + 1 :]))


def kill(process: subprocess.Popen[str]) -> str:
    os.kill(process.pid, signal.SIGKILL)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    return out


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def insert_operations(emulator: ComputeEngineEmulator) -> list[dict[str, Any]]:
    return [op for op in emulator.operations(PROJECT) if op["operationType"] == "insert"]


def test_worker_killed_between_insert_and_answer_is_completed_by_the_retry(emulator: ComputeEngineEmulator) -> None:
    spec = {**IDENTITY, "name": "img-crash", "source_instance": SOURCE}
    expected_request_id = derive_request_id(
        TaskInstanceIdentity(**IDENTITY), project_id=PROJECT, resource_name="img-crash", verb="insert"
    )
    # The server does the insert, then holds its answer back for a minute: the worker dies meanwhile.
    emulator.inject(Fault(kind="slow", action="machineImages.insert", delay_seconds=60))
    first = start("worker", json.dumps({**spec, "try_number": 1}))
    wait_for(lambda: bool(insert_operations(emulator)), "the insert to reach the server")
    assert emulator.count("machineImages.insert") == 0, "the insert must still be unanswered"
    assert "RESULT" not in kill(first)
    (accepted,) = insert_operations(emulator)
    assert accepted["clientOperationId"] == expected_request_id

    # Airflow's retry: the same task instance, the next try, on a fresh worker process.
    result = finish(start("worker", json.dumps({**spec, "try_number": 2})), "RESULT")

    assert result["status"] == "READY"
    assert result["request_id"] == expected_request_id
    assert result["operation_name"] == accepted["name"]  # the server replayed the original operation
    assert len(insert_operations(emulator)) == 1
    assert [i["name"] for i in emulator.machine_images(PROJECT)] == ["img-crash"]
    answered = [r for r in emulator.requests if r.action == "machineImages.insert" and r.status == 200]
    assert [r.query["requestId"] for r in answered] == [expected_request_id]


def test_trigger_killed_mid_wait_resumes_from_its_stored_kwargs(
    emulator: ComputeEngineEmulator, tmp_path: Path
) -> None:
    from airflow.models.trigger import Trigger
    from airflow.sdk.exceptions import TaskDeferred

    emulator.add_instance("us-central1-a/slow-1", operation_seconds=20)
    ti = FakeTaskInstance(**IDENTITY, try_number=1)
    context = context_of(ti)

    def operator() -> ComputeEngineInsertMachineImageOperator:
        return ComputeEngineInsertMachineImageOperator(
            task_id="create",
            name="img-slow",
            source_instance="us-central1-a/slow-1",
            deferrable=True,
            poll_interval=0.2,
        )

    with pytest.raises(TaskDeferred) as deferred:
        operator().execute(context)
    classpath, kwargs = deferred.value.trigger.serialize()
    stored = tmp_path / "trigger-kwargs"
    stored.write_text(Trigger.encrypt_kwargs(kwargs), encoding="utf-8")

    # The first triggerer's first wait returns at once (so we see it waiting); then it long-polls.
    emulator.inject(Fault(kind="early_wait", action="globalOperations.wait"))
    first = start("trigger", classpath, str(stored))
    wait_for(lambda: emulator.count("globalOperations.wait") >= 1 or first.poll() is not None, "the first wait")
    assert first.poll() is None, first.communicate()
    time.sleep(0.5)  # now inside the next long-poll
    assert emulator.operations(PROJECT)[0]["status"] != "DONE"
    assert "EVENT" not in kill(first)

    # A new triggerer process re-creates the trigger from the same stored kwargs and finishes the wait.
    event = finish(start("trigger", classpath, str(stored)), "EVENT")
    assert event["status"] == "success"
    assert event["operation"]["status"] == "DONE"

    # The task resumes on a fresh worker with the event, as the task runner resumes it.
    result = operator().resume_execution("execute_complete", {"event": event}, context)
    assert result["status"] == "READY"
    assert result["request_id"] == insert_operations(emulator)[0]["clientOperationId"]
    assert len(insert_operations(emulator)) == 1
    assert [i["name"] for i in emulator.machine_images(PROJECT)] == ["img-slow"]
