"""Issue 16, items 3 and 4: the package on a distributed Airflow (CeleryExecutor, two workers, two triggerers).

The stack (``celery_stack`` in conftest.py) runs after the local one is closed: a private Redis as the
broker, the metadata DB as the result backend, Celery workers ``worker-1`` and ``worker-2`` (own
AIRFLOW_HOME, working directory and task log folder; each task instance records its worker's name as
its ``hostname``), triggerers ``triggerer-1`` and ``triggerer-2`` with ``[machine_images] triggerers = 2``.

Cases, in order (they share the stack):

(a) a mapped deferrable backup of 6 instances: task instances ran on both workers, the waits on both
    triggerers, one image per instance; and while every ``globalOperations.wait`` answers at once (as
    the real one may), so that the waits on both triggerers would read far more often than the budget
    allows, the project's operation reads stay within the configured per-project total across both
    triggerers in every 60 s;
(b) the worker running an insert is SIGKILLed (with its task runner) while the insert's answer is still
    on its way: Airflow fails that try once its heartbeat stops, the retry runs on the other worker and
    sends the same requestId, and the instance ends with exactly one image;
(c) the triggerer holding the most waits is SIGKILLed: the other takes them over, every run finishes,
    one image per instance.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pytest

from benchmarks.stats import busiest_minute
from tests.e2e.distributed import REQUESTS_PER_MINUTE, TRIGGERER_CAPACITY
from tests.e2e.observe import (
    RunObservation,
    Sample,
    check_images,
    check_run,
    instance_of,
    ti_key,
    ti_label,
    trigger_run,
    watch_run,
)
from tests.e2e.scenarios import BACKUP_DAG
from tests.e2e.test_e2e import FIRED, expected_images, first_timestamp, mapped_insert_tis, trigger_logs

if TYPE_CHECKING:
    from tests.e2e.observe import ImageCheck
    from tests.e2e.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

RUN_TIMEOUT = 240.0
#: Case (a)'s fleet: more waits than one triggerer may hold (capacity 4), so both get some.
FLEET_A = tuple(f"{zone}/cel-a{n}" for n, zone in enumerate(["us-central1-a", "us-central1-b", "us-east1-b"] * 2, 1))
FLEET_B = ("us-central1-a/cel-b1", "us-east1-b/cel-b2")
FLEET_C = ("us-central1-a/cel-c1", "us-central1-b/cel-c2", "us-east1-b/cel-c3", "us-central1-a/cel-c4")
#: Case (b): the first insert's answer is held back this long after the image exists (the emulator's
#: ``slow`` fault), so the worker is killed while that insert is in flight.
HELD_INSERT_SECONDS = 30.0
#: Case (c)'s images take this long, so the waits are still going when the other triggerer takes them
#: over (15 s after the kill: [triggerer] triggerer_health_check_threshold in the Celery stack).
FAILOVER_OPERATION_SECONDS = 30.0
#: The reads the triggers' pollers make (the benchmarks count the same).
POLL_ACTION_PREFIX = "globalOperations."
#: Case (a): this many ``globalOperations.wait`` calls answer at once, not DONE yet (the emulator's
#: ``early_wait`` fault; the real method "might return after zero seconds": globalOperations.wait in
#: the discovery document compute.v1.json).
#: Each waiter then asks again every ``poll_interval`` (2 s): 30 a minute per wait, far above the
#: 6 a minute each triggerer may spend, so the per-project budget is what limits the reads.
EARLY_WAITS = 100_000


def reads_started(stack: Stack, since: float) -> list[float]:
    """When each operation read (``globalOperations.*``) the emulator recorded started, from ``since`` on.

    :param since: a ``time.monotonic()`` value (the emulator's clock is the same machine's).
    """
    assert stack.emulator is not None
    return [
        float(r["started"])
        for r in stack.emulator.requests()
        if str(r.get("action", "")).startswith(POLL_ACTION_PREFIX) and float(r["started"]) >= since
    ]


def add_fleet(stack: Stack, instances: tuple[str, ...], operation_seconds: float | None = None) -> None:
    """Create the case's source instances in the emulator."""
    assert stack.emulator is not None
    for instance in instances:
        stack.emulator.add_instance(instance, operation_seconds=operation_seconds)


def tries_by_key(stack: Stack, observation: RunObservation) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """Every try of every mapped insert (history rows and the current one), oldest first."""
    assert stack.api is not None
    return {
        ti_key(ti): sorted(
            stack.api.tries(observation.dag_id, observation.run_id, ti["task_id"], ti["map_index"]),
            key=lambda t: int(t["try_number"]),
        )
        for ti in mapped_insert_tis(observation.final_tis)
    }


def worker_log_map_indexes(stack: Stack, observation: RunObservation, worker: str) -> list[int]:
    """The mapped insert's map indexes with a task log in ``worker``'s own task log folder."""
    folder = stack.worker_task_logs(worker) / f"dag_id={observation.dag_id}" / f"run_id={observation.run_id}"
    return sorted({int(p.name.split("=", 1)[1]) for p in folder.glob("task_id=*/map_index=*") if any(p.iterdir())})


def finish(
    stack: Stack, observation: RunObservation, instances: tuple[str, ...], before: list[dict[str, Any]]
) -> ImageCheck:
    """The run and its images: mapped inserts, one READY image per instance (one requestId each)."""
    assert stack.api is not None and stack.emulator is not None
    mapped = mapped_insert_tis(observation.final_tis)
    assert len(mapped) == len(instances), [ti_label(ti_key(t)) for t in mapped]
    return check_images(before, stack.emulator, expected_images(stack.api, observation), instances)


# ---------------------------------------------------------------------- (a)


def test_a_mapped_backup_spreads_over_both_workers_and_triggerers(celery_stack: Stack) -> None:
    """Six mapped inserts: tasks on both workers, waits on both triggerers, one image each, reads in budget."""
    stack = celery_stack
    assert stack.api is not None and stack.emulator is not None
    api = stack.api
    case = "test_a_mapped_backup_spreads_over_both_workers_and_triggerers"
    add_fleet(stack, FLEET_A)
    before = stack.emulator.machine_images()
    triggerer_jobs = {job["id"]: job["hostname"] for job in stack.alive_triggerer_jobs()}
    stack.emulator.inject_fault(kind="early_wait", action="globalOperations.wait", times=EARLY_WAITS)
    try:
        observation = trigger_run(api, BACKUP_DAG.dag_id, BACKUP_DAG.conf(FLEET_A, "cel-a"))
        watch_run(api, observation, timeout=RUN_TIMEOUT, describe=stack.failure_report)
    finally:
        stack.emulator.clear_faults()
    retries = check_run(api, observation, case, stack.artifacts / "task-logs")
    stack.summary.retries.extend(retries)
    stack.summary.task_instances_checked += len(observation.final_tis)
    images = finish(stack, observation, FLEET_A, before)

    # Workers: each try's hostname is the worker's name (tests/e2e/identity.py); the workers' own task
    # log folders say the same.
    tries = tries_by_key(stack, observation)
    hosts = {ti_label(key): sorted({str(t.get("hostname")) for t in rows}) for key, rows in tries.items()}
    workers_used = {host for names in hosts.values() for host in names}
    logs = {worker: worker_log_map_indexes(stack, observation, worker) for worker in stack.config.worker_names}
    assert workers_used == set(stack.config.worker_names), f"task instances' hostnames: {hosts}"
    assert all(logs.values()), f"map indexes with a task log, per worker folder: {logs}"

    # Triggerers: which TriggererJob each deferred wait was assigned to, as seen while polling.
    assigned: dict[str, set[int]] = {}
    for sample in observation.samples:
        for key, job_id in sample.triggerer_ids.items():
            if key[1] >= 0 and job_id is not None:
                assigned.setdefault(ti_label(key), set()).add(job_id)
    jobs_used = {job for jobs in assigned.values() for job in jobs}
    assert len(jobs_used) == 2 and jobs_used <= set(triggerer_jobs), (
        f"waits per triggerer job {assigned}; alive triggerer jobs {triggerer_jobs} (capacity "
        f"{TRIGGERER_CAPACITY} each, {len(FLEET_A)} waits)"
    )

    # The project's budget is a total across both triggerers, 6 a minute each. The early answers make
    # the waits on both triggerers ask for far more at the same time (each wait every 2 s).
    early = sum(1 for r in stack.emulator.requests() if r.get("fault") == "early_wait")
    reads = reads_started(stack, since=0.0)
    busiest = busiest_minute(reads)
    assert busiest <= REQUESTS_PER_MINUTE, (
        f"{busiest} operation reads in the busiest 60 s (configured total {REQUESTS_PER_MINUTE} for both triggerers)"
    )
    assert early > len(FLEET_A), f"only {early} early wait answers: the budget was never put to the test"
    stack.summary.add_case_facts(
        case,
        run_seconds=round(observation.seconds, 1),
        hostnames=hosts,
        task_logs_per_worker=logs,
        waits_per_triggerer={
            triggerer_jobs.get(j, str(j)): sorted(k for k, v in assigned.items() if j in v) for j in jobs_used
        },
        operation_reads=len(reads),
        early_wait_answers=early,
        operation_reads_busiest_60s=busiest,
        configured_total_per_minute=REQUESTS_PER_MINUTE,
        images=sorted(images.new_images),
        retried_task_instances=len(retries),
    )


# ---------------------------------------------------------------------- (b)


def test_b_worker_killed_mid_insert_retries_on_the_other(celery_stack: Stack) -> None:
    """SIGKILL the worker whose insert is in flight: the retry runs on the other worker; one image per instance."""
    stack = celery_stack
    assert stack.api is not None and stack.emulator is not None
    api, emulator = stack.api, stack.emulator
    case = "test_b_worker_killed_mid_insert_retries_on_the_other"
    add_fleet(stack, FLEET_B)
    before = stack.emulator.machine_images()
    old = {image["name"] for image in before}
    emulator.inject_fault(kind="slow", action="machineImages.insert", times=1, delay_seconds=HELD_INSERT_SECONDS)
    observation = trigger_run(api, BACKUP_DAG.dag_id, BACKUP_DAG.conf(FLEET_B, "cel-b"))
    kill: dict[str, Any] = {}

    def on_sample(obs: RunObservation, sample: Sample) -> None:
        """Once the held insert's image exists (its answer not sent yet), kill the worker running its task."""
        if kill:
            return
        answered = {
            str((r.get("body") or {}).get("name"))
            for r in emulator.requests()
            if r.get("action") == "machineImages.insert"
        }
        held = [
            image
            for image in emulator.machine_images()
            if image["name"] not in old
            and image["name"] not in answered
            and instance_of(str(image.get("sourceInstance", ""))) in FLEET_B
        ]
        if not held:
            return
        map_index = FLEET_B.index(instance_of(str(held[0]["sourceInstance"])))
        ti = next(
            (t for t in mapped_insert_tis(api.task_instances(obs.dag_id, obs.run_id)) if t["map_index"] == map_index),
            None,
        )
        if ti is None or ti["state"] != "running" or ti.get("hostname") not in stack.config.worker_names:
            return
        kill.update(
            worker=ti["hostname"],
            map_index=map_index,
            image=held[0]["name"],
            at=time.monotonic(),
            at_wall=time.time(),
            after_trigger_seconds=round(time.monotonic() - obs.started, 1),
        )
        kill["process_groups"] = stack.kill_worker(ti["hostname"])

    watch_run(api, observation, timeout=RUN_TIMEOUT, on_sample=on_sample, describe=stack.failure_report)
    assert kill, "no worker was killed: no insert was ever seen in flight\n" + observation.state_history()
    assert observation.final_state == "success", observation.state_history()
    assert all(ti["state"] == "success" for ti in observation.final_tis), observation.state_history()

    # The killed try failed once its heartbeat stopped; the retry ran on the other worker.
    tries = tries_by_key(stack, observation)
    killed_key = next(key for key in tries if key[1] == kill["map_index"])
    rows = tries[killed_key]
    assert [int(t["try_number"]) for t in rows] == [1, 2], rows
    first, second = rows
    assert first["hostname"] == kill["worker"] and first["state"] in ("failed", "up_for_retry"), first
    assert second["hostname"] != kill["worker"] and second["hostname"] in stack.config.worker_names, second
    assert second["state"] == "success", second

    # Exactly one image per instance, and the dead try's insert and the retry's carried one requestId.
    # The held answer is recorded when it is written (to the dead worker's closed connection).
    def inserts_of_held() -> list[str]:
        return [
            str((r.get("query") or {}).get("requestId"))
            for r in emulator.requests()
            if r.get("action") == "machineImages.insert" and (r.get("body") or {}).get("name") == kill["image"]
        ]

    deadline = time.monotonic() + HELD_INSERT_SECONDS + 30
    while len(inserts_of_held()) < 2 and time.monotonic() < deadline:
        time.sleep(1)
    request_ids = inserts_of_held()
    assert len(request_ids) >= 2, f"expected the dead try's insert and the retry's, got {request_ids}"
    images = finish(stack, observation, FLEET_B, before)

    def wall(stamp: str | None) -> float | None:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else None

    failed_at, retried_at = wall(first.get("end_date")), wall(second.get("start_date"))
    stack.summary.add_case_facts(
        case,
        killed_worker=kill["worker"],
        killed_process_groups=kill["process_groups"],
        killed_after_trigger_seconds=kill["after_trigger_seconds"],
        killed_map_index=kill["map_index"],
        try_1_failed_after_kill_seconds=round(failed_at - kill["at_wall"], 1) if failed_at else None,
        retry_started_after_kill_seconds=round(retried_at - kill["at_wall"], 1) if retried_at else None,
        run_finished_after_kill_seconds=round((observation.finished or 0) - kill["at"], 1),
        retry_worker=second["hostname"],
        insert_request_ids=request_ids,
        images=sorted(images.new_images),
    )


# ---------------------------------------------------------------------- (c)


def test_c_triggerer_killed_its_waits_move_to_the_other(celery_stack: Stack) -> None:
    """SIGKILL the triggerer holding the most waits: the other takes them over and fires them; one image each."""
    stack = celery_stack
    assert stack.api is not None and stack.emulator is not None
    api = stack.api
    case = "test_c_triggerer_killed_its_waits_move_to_the_other"
    add_fleet(stack, FLEET_C, FAILOVER_OPERATION_SECONDS)
    before = stack.emulator.machine_images()
    jobs = {job["id"]: job["hostname"] for job in stack.alive_triggerer_jobs()}
    assert sorted(jobs.values()) == list(stack.config.triggerer_names), jobs
    observation = trigger_run(api, BACKUP_DAG.dag_id, BACKUP_DAG.conf(FLEET_C, "cel-c"))
    kill: dict[str, Any] = {}

    def on_sample(obs: RunObservation, sample: Sample) -> None:
        """Once every wait is assigned to a triggerer, kill the one holding the most."""
        if kill:
            return
        inserts = mapped_insert_tis(api.task_instances(obs.dag_id, obs.run_id))
        if len(inserts) != len(FLEET_C) or not all(
            ti["state"] == "deferred" and (ti.get("trigger") or {}).get("triggerer_id") for ti in inserts
        ):
            return
        holders: dict[int, list[int]] = {}
        for ti in inserts:
            holders.setdefault(int(ti["trigger"]["triggerer_id"]), []).append(int(ti["map_index"]))
        victim = max(holders, key=lambda job: len(holders[job]))
        kill.update(job=victim, name=jobs[victim], moved=sorted(holders[victim]), holders=holders)
        kill["at"], kill["at_wall"] = time.monotonic(), time.time()
        kill["after_trigger_seconds"] = round(kill["at"] - obs.started, 1)
        kill["pid"] = stack.kill_triggerer(jobs[victim])

    watch_run(api, observation, timeout=RUN_TIMEOUT, on_sample=on_sample, describe=stack.failure_report)
    assert kill, "no triggerer was killed: the waits were never all assigned at once\n" + observation.state_history()
    retries = check_run(api, observation, case, stack.artifacts / "task-logs")
    stack.summary.retries.extend(retries)
    stack.summary.task_instances_checked += len(observation.final_tis)
    images = finish(stack, observation, FLEET_C, before)

    survivor = next(job for job in jobs if job != kill["job"])
    assert stack.airflow[jobs[survivor]].running(), stack.airflow[jobs[survivor]].describe()
    # Each moved wait has a trigger log written by the survivor's job, which shows it firing there.
    taken_over: dict[int, float | None] = {}
    for map_index in kill["moved"]:
        key = (mapped_insert_tis(observation.final_tis)[0]["task_id"], map_index)
        logs = [
            path for job_id, path in trigger_logs(stack.artifacts / "task-logs", observation, key) if job_id == survivor
        ]
        fired = [path for path in logs if FIRED in path.read_text(errors="replace")]
        assert fired, f"{ti_label(key)}: no trigger log of the surviving job {survivor} shows it firing: {logs}"
        taken_over[map_index] = first_timestamp(fired[0])
    moved_in = [stamp - kill["at_wall"] for stamp in taken_over.values() if stamp is not None]
    stack.summary.add_case_facts(
        case,
        killed_triggerer=kill["name"],
        killed_job=kill["job"],
        waits_per_job_at_kill=kill["holders"],
        surviving_job=survivor,
        killed_after_trigger_seconds=kill["after_trigger_seconds"],
        taken_over_after_kill_seconds=round(min(moved_in), 1) if moved_in else None,
        run_finished_after_kill_seconds=round((observation.finished or 0) - kill["at"], 1),
        operation_seconds=FAILOVER_OPERATION_SECONDS,
        images=sorted(images.new_images),
        retried_task_instances=len(retries),
    )
