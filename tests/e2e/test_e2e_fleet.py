"""Issue 27: the fleet backup operator on a real Airflow stack, through a killed worker and a killed triggerer.

(f) 100 instances backed up in one task: the task runner is SIGKILLed (its whole process group) in the
    middle of submitting the batch; the retry replays what the server accepted and submits the rest,
    then defers once; the triggerer is SIGKILLed while that one trigger waits and a new one started. The
    run succeeds with one image per instance, every instance's inserts carrying one requestId, and the
    new triggerer fired the trigger.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.observe import trigger_run, watch_run
from tests.e2e.stack import PROJECT

if TYPE_CHECKING:
    from tests.e2e.metrics import Summary
    from tests.e2e.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

FLEET_DAG = "e2e_fleet_backup_operator"
SELECTOR = "e2e-kill"
INSTANCES = 100
#: Long enough that the operations still run when the new triggerer takes the trigger over (a dead
#: triggerer's triggers move after [triggerer] triggerer_health_check_threshold, 30 s).
OPERATION_SECONDS = 100.0
#: Each insert's answer is held this long, so that submitting 100 takes about 40 s: time to kill mid-batch.
SLOW_INSERT_SECONDS = 0.4
#: Inserts the server has answered or is answering when the task runner is killed.
KILL_AFTER_INSERTS = 35


def inserts(stack: Stack) -> list[dict[str, Any]]:
    """The image inserts of this case's fleet (the stack is shared: earlier cases' inserts are in the log too)."""
    assert stack.emulator is not None
    return [
        r
        for r in stack.emulator.requests()
        if r["action"] == "machineImages.insert" and "/instances/fleet-" in _source_of(r)
    ]


def _source_of(request: dict[str, Any]) -> str:
    """The source instance an insert names (its query parameter, or the body's field)."""
    return str(request["query"].get("sourceInstance") or (request.get("body") or {}).get("sourceInstance") or "")


def kill_task_runner(pid: int) -> int:
    """SIGKILL a task runner's process group (the supervisor gives each its own): a worker lost mid-task."""
    pgid = os.getpgid(pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    return pgid


def test_f_fleet_backup_survives_a_killed_worker_and_a_killed_triggerer(stack: Stack, summary: Summary) -> None:
    assert stack.api is not None and stack.emulator is not None
    api, emulator = stack.api, stack.emulator
    case = "test_f_fleet_backup_survives_a_killed_worker_and_a_killed_triggerer"
    for n in range(INSTANCES):
        emulator.add_instance(
            f"us-central1-{'abc'[n % 3]}/fleet-{n:03d}", OPERATION_SECONDS, labels={"fleet": SELECTOR}
        )
    emulator.inject_fault(
        kind="slow", action="machineImages.insert", times=INSTANCES, delay_seconds=SLOW_INSERT_SECONDS
    )
    jobs_before = {job["id"] for job in api.triggerer_jobs()}
    observation = trigger_run(api, FLEET_DAG, {"selector": SELECTOR})
    facts: dict[str, Any] = {}

    def on_sample(obs: Any, sample: Any) -> None:
        """Kill the task runner mid-batch, then the triggerer once the retry's trigger waits."""
        (ti,) = api.task_instances(obs.dag_id, obs.run_id)
        if "worker_killed_at" not in facts:
            sent = len(inserts(stack))
            if ti["state"] == "running" and ti.get("pid") and sent >= KILL_AFTER_INSERTS:
                facts["inserts_before_kill"] = sent
                facts["killed_task_pgid"] = kill_task_runner(int(ti["pid"]))
                facts["worker_killed_at"] = round(time.monotonic() - obs.started, 1)
            return
        if "triggerer_killed_at" in facts:
            return
        if ti["try_number"] >= 2 and ti["state"] == "deferred" and (ti.get("trigger") or {}).get("triggerer_id"):
            facts["trigger_id"] = ti["trigger"]["id"]
            facts["killed_triggerer_pid"] = stack.kill_triggerer()
            facts["triggerer_killed_at"] = round(time.monotonic() - obs.started, 1)
            facts["new_triggerer_log"] = str(stack.start_new_triggerer().log_path)

    watch_run(api, observation, timeout=600, on_sample=on_sample, describe=stack.failure_report)
    summary.add_case_facts(case, run_seconds=round(observation.seconds, 1), **facts)
    assert "worker_killed_at" in facts, f"the task runner was never seen submitting: {observation.state_history()}"
    assert "triggerer_killed_at" in facts, f"the retry's trigger was never seen waiting: {observation.state_history()}"
    assert facts["inserts_before_kill"] < INSTANCES, facts  # killed in the middle of the batch
    assert observation.final_state == "success", observation.state_history()

    # One READY image per instance, and no instance's insert ever sent under a second requestId.
    made = [i for i in emulator.machine_images() if (i.get("labels") or {}).get("purpose") == "e2e-fleet"]
    by_source = Counter(str(i["sourceInstance"]).rsplit("/instances/", 1)[-1] for i in made)
    assert len(by_source) == INSTANCES and set(by_source.values()) == {1}, by_source.most_common(3)
    assert {i["status"] for i in made} == {"READY"}
    ids: dict[str, set[str]] = {}
    for request in inserts(stack):
        source = _source_of(request)
        ids.setdefault(source, set()).add(request["query"]["requestId"])
    assert len(ids) == INSTANCES and all(len(request_ids) == 1 for request_ids in ids.values())
    result = api.xcom(observation.dag_id, observation.run_id, "backup", -1)
    assert result["summary"]["succeeded"] == INSTANCES and result["summary"]["failed"] == 0
    # The retry found the accepted inserts again by their requestIds (replays), and sent the rest fresh.
    assert result["summary"]["replayed"] >= facts["inserts_before_kill"] - 5, result["summary"]
    tries = api.tries(observation.dag_id, observation.run_id, "backup", -1)
    # The new triggerer fired the one trigger.
    new_jobs = {job["id"] for job in api.triggerer_jobs()} - jobs_before
    logs = list((stack.artifacts / "task-logs").rglob(f"run_id={observation.run_id}/**/attempt=*.log.trigger.*.log"))
    fired_by_new = [p.name for p in logs if int(p.name.rsplit(".trigger.", 1)[1].removesuffix(".log")) in new_jobs]
    summary.add_case_facts(
        case,
        tries=[t.get("state") for t in tries],
        replayed=result["summary"]["replayed"],
        deferrals=result["summary"]["deferrals"],
        inserts_sent=len(inserts(stack)),
        trigger_logs_of_new_triggerer=fired_by_new,
        project=PROJECT,
    )
    assert fired_by_new, f"no trigger log of the new triggerer job(s) {sorted(new_jobs)}: {[p.name for p in logs]}"
