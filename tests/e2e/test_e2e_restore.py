"""Issue 15 item 8: the weekly restore drill on the real multi-process stack, triggerer restarted mid-wait.

(e) ``example_restore_drill``: the newest image of an instance is restored (deferrable) into a scratch
    instance, checked RUNNING and deleted. While the restore's trigger waits on the zonal operation,
    the triggerer is SIGKILLed and a new one started: the new one fires the trigger, the run succeeds,
    exactly one instance was created (one ``instances.insert`` operation) and it is gone at the end.
    The drill's timings and the API calls it cost are recorded in ``e2e-summary.json``.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.observe import RunObservation, Sample, check_run, ti_label, trigger_run, wait_for_idle_dag, watch_run
from tests.e2e.stack import PROJECT
from tests.e2e.test_e2e import FIRED, first_timestamp, trigger_logs

if TYPE_CHECKING:
    from tests.e2e.metrics import Summary
    from tests.e2e.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

DRILL_DAG = "example_restore_drill"
RESTORE_TASK = "restore"
#: The drill's own source instance and its newest backup (an older one too).
SOURCE = "us-central1-a/drill-src"
ZONE = "us-central1-a"
RUN_TIMEOUT = 420.0
ZONAL = ("instances.", "zoneOperations.")


def _add_image(stack: Stack, name: str, source: str, created: str) -> None:
    assert stack.emulator is not None
    stack.emulator.add_machine_image(name, source, created)


def test_e_restore_drill_survives_a_triggerer_restart(stack: Stack, summary: Summary) -> None:
    """The deferrable restore outlives a killed triggerer; one instance made, checked, deleted."""
    assert stack.api is not None and stack.emulator is not None
    api, case = stack.api, "test_e_restore_drill_survives_a_triggerer_restart"
    stack.emulator.add_instance(SOURCE)
    _add_image(stack, "drill-src-old", SOURCE, "2026-01-01T00:00:00Z")
    _add_image(stack, "drill-src-new", SOURCE, "2026-02-01T00:00:00Z")
    # Unpausing the @weekly example schedules its latest run (default source web-1): give it an image too,
    # let it finish, then drive a manual run of our own.
    _add_image(stack, "web-1-for-drill", "us-central1-a/web-1", "2026-02-01T00:00:00Z")
    api.patch(f"/dags/{DRILL_DAG}", {"is_paused": False})
    scheduled = wait_for_idle_dag(api, DRILL_DAG, timeout=RUN_TIMEOUT)
    requests_before = len(stack.emulator.requests())
    old_triggerer_jobs = {job["id"] for job in api.triggerer_jobs()}
    observation = trigger_run(api, DRILL_DAG, {"source_instance": SOURCE, "zone": ZONE})
    failover: dict[str, Any] = {}

    def on_sample(obs: RunObservation, sample: Sample) -> None:
        """Once the restore is deferred with its trigger assigned to a triggerer: kill it, start another."""
        if failover or sample.states.get((RESTORE_TASK, -1)) != "deferred":
            return
        restore = next(ti for ti in api.task_instances(obs.dag_id, obs.run_id) if ti["task_id"] == RESTORE_TASK)
        if restore["state"] != "deferred" or not (restore.get("trigger") or {}).get("triggerer_id"):
            return
        failover["assigned_to"] = restore["trigger"]["triggerer_id"]
        failover["deferred_after_trigger_seconds"] = round(time.monotonic() - obs.started, 1)
        failover["killed_pid"] = stack.kill_triggerer()
        failover["killed_at"] = time.monotonic()
        failover["killed_at_wall"] = time.time()
        failover["new_triggerer_pid"] = stack.start_new_triggerer().pid

    watch_run(api, observation, timeout=RUN_TIMEOUT, on_sample=on_sample, describe=stack.failure_report)
    assert failover, "the restore was never seen DEFERRED with an assigned trigger\n" + observation.state_history()
    retries = check_run(api, observation, case, stack.artifacts / "task-logs")
    summary.retries.extend(retries)
    summary.task_instances_checked += len(observation.final_tis)

    restored = api.xcom(DRILL_DAG, observation.run_id, RESTORE_TASK, -1)
    deleted = api.xcom(DRILL_DAG, observation.run_id, "delete_scratch_instance", -1)
    assert restored["status"] == "RUNNING"
    assert restored["source_machine_image"] == f"projects/{PROJECT}/global/machineImages/drill-src-new"
    assert deleted["deleted"] is True and deleted["id"] == restored["id"]

    # The new triggerer fired the restore's trigger (its own log file, named after its job id).
    new_ids = {job["id"] for job in api.triggerer_jobs()} - old_triggerer_jobs
    assert new_ids, "no new TriggererJob registered after the restart"
    logs = trigger_logs(stack.artifacts / "task-logs", observation, (RESTORE_TASK, -1))
    fired_by_new = [p.name for job, p in logs if job in new_ids and FIRED in p.read_text(errors="replace")]
    assert fired_by_new, f"no trigger log of the new triggerer {sorted(new_ids)} shows the restore firing: {logs}"
    took_over = [first_timestamp(p) for job, p in logs if job in new_ids]

    # Exactly one instance made from one requestId, and deleted: every zonal call of this run is ours.
    calls = stack.emulator.requests()[requests_before:]
    inserts = [c for c in calls if c["action"] == "instances.insert"]
    assert len({c["query"]["requestId"] for c in inserts}) == 1, inserts
    assert all(restored["name"] in c["body"]["name"] for c in inserts)
    deletes = [c for c in calls if c["action"] == "instances.delete"]
    assert len({c["query"]["requestId"] for c in deletes}) == 1, deletes
    per_action = Counter(c["action"] for c in calls)
    states = {ti_label(k): v for k, v in sorted(observation.seen_states.items()) if v}
    summary.add_case_facts(
        case,
        dag_id=DRILL_DAG,
        run_id=observation.run_id,
        run_seconds=round(observation.seconds, 1),
        scheduled_runs_waited_for=scheduled,
        operation_seconds=stack.config.operation_seconds,
        restore_deferred_after_trigger_seconds=failover["deferred_after_trigger_seconds"],
        recovered_after_kill_seconds=round((observation.finished or 0) - failover["killed_at"], 1),
        new_triggerer_took_over_after_kill_seconds=(
            round(min(t for t in took_over if t is not None) - failover["killed_at_wall"], 1)
            if any(t is not None for t in took_over)
            else None
        ),
        api_calls_per_restored_instance=len(calls),
        api_calls_by_action=dict(sorted(per_action.items())),
        zonal_calls=sum(n for a, n in per_action.items() if a.startswith(ZONAL)),
        retried_task_instances=len(retries),
        states_seen=states,
        trigger_logs_of_new_triggerer=fired_by_new,
    )
