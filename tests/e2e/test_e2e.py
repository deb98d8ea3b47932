"""Issue 7: the package on a real multi-process Airflow 3 (scheduler, triggerer, API server, dag-processor).

Cases, in order (they share one stack; see conftest.py):

(a) the deferrable mapped backup over 3 instances: 3 images, every task seen DEFERRED, holding no slot;
(b) the triggerer is SIGKILLed while the triggers wait and a new one is started: every task finishes,
    exactly one image per instance;
(c) the operator's extra link through the REST API, and on the task's page in headless Chromium;
(d) the ``retries=1`` the suite allows for apache/airflow#67287 cannot hide real failures.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

from tests.e2e.browser import screenshot_link
from tests.e2e.observe import (
    RunObservation,
    RunProblems,
    Sample,
    TiKey,
    check_images,
    check_run,
    instance_of,
    ti_key,
    ti_label,
    trigger_run,
    watch_run,
)
from tests.e2e.scenarios import BACKUP_DAG, INSERT_OPERATOR, LINK_NAME, LINK_XCOM_KEY
from tests.e2e.stack import CASE_INSTANCES, PROJECT

if TYPE_CHECKING:
    from pathlib import Path

    from tests.e2e.metrics import Summary
    from tests.e2e.observe import ImageCheck
    from tests.e2e.rest import AirflowApi
    from tests.e2e.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

#: Seconds a backup run may take (images take 25 s, 45 s in case (b); the failover adds ~30-40 s).
RUN_TIMEOUT = 300.0
#: Case (b)'s images take this long, so the operations are still going when the new triggerer takes
#: the triggers over (a dead triggerer's triggers move after [triggerer] triggerer_health_check_threshold,
#: 30 s): the new triggerer really waits, instead of finding the operations already DONE.
FAILOVER_OPERATION_SECONDS = 45.0


@dataclass
class BackupRun:
    """A finished, checked backup run."""

    observation: RunObservation
    images: ImageCheck
    mapped: list[TiKey]
    task_id: str


_RUNS: dict[str, BackupRun] = {}
#: What the triggerer logs (in the trigger's own log file) when a trigger's event fires.
FIRED = "Trigger fired event"


# ---------------------------------------------------------------------- helpers


def mapped_insert_tis(tis: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The mapped task instances of the insert operator (the backup task, whatever its task_id)."""
    return sorted((ti for ti in tis if ti["map_index"] >= 0 and ti.get("operator") == INSERT_OPERATOR), key=ti_key)


def expected_images(api: AirflowApi, observation: RunObservation) -> dict[str, str]:
    """Image name -> source instance, from each mapped task's rendered fields, checked against its XCom."""
    expected: dict[str, str] = {}
    for ti in mapped_insert_tis(observation.final_tis):
        fields = ti.get("rendered_fields") or {}
        name, source = fields.get("name"), fields.get("source_instance")
        assert name and source, f"{ti_label(ti_key(ti))}: no rendered name/source_instance in {fields}"
        result = api.xcom(observation.dag_id, observation.run_id, ti["task_id"], ti["map_index"])
        assert isinstance(result, dict), f"{ti_label(ti_key(ti))}: return value XCom is {result!r}"
        assert result.get("name") == name, f"{ti_label(ti_key(ti))}: XCom name {result.get('name')} != {name}"
        assert result.get("status") == "READY", f"{ti_label(ti_key(ti))}: XCom status {result.get('status')}"
        expected[str(name)] = instance_of(str(source))
    return expected


def finish_backup_run(
    stack: Stack,
    summary: Summary,
    case: str,
    observation: RunObservation,
    before: list[dict[str, Any]],
    instances: tuple[str, ...],
) -> BackupRun:
    """The checks every backup case shares: run and TIs succeeded (retries explained), 3 mapped TIs, images."""
    assert stack.api is not None and stack.emulator is not None
    try:
        retries = check_run(stack.api, observation, case, stack.artifacts / "task-logs")
    except RunProblems as problems:
        summary.retries.extend(problems.retries)
        raise
    summary.retries.extend(retries)
    summary.task_instances_checked += len(observation.final_tis)
    mapped = mapped_insert_tis(observation.final_tis)
    assert len(mapped) == len(instances), (
        f"expected {len(instances)} mapped {INSERT_OPERATOR} task instances, "
        f"got {[ti_label(ti_key(t)) for t in mapped]}"
    )
    images = check_images(before, stack.emulator, expected_images(stack.api, observation), instances)
    summary.add_case_facts(
        case,
        dag_id=observation.dag_id,
        run_id=observation.run_id,
        run_seconds=round(observation.seconds, 1),
        images=sorted(images.new_images),
        insert_requests={name: len(ids) for name, ids in images.insert_requests.items()},
        retried_task_instances=len(retries),
        states_seen={ti_label(k): v for k, v in sorted(observation.seen_states.items()) if v},
    )
    run = BackupRun(
        observation=observation, images=images, mapped=[ti_key(t) for t in mapped], task_id=mapped[0]["task_id"]
    )
    _RUNS[case] = run
    return run


def trigger_logs(task_logs: Path, observation: RunObservation, key: TiKey) -> list[tuple[int, Path]]:
    """The trigger log files of one task instance: ``attempt=N.log.trigger.<triggerer job id>.log``."""
    folder = task_logs / f"dag_id={observation.dag_id}" / f"run_id={observation.run_id}" / f"task_id={key[0]}"
    if key[1] >= 0:
        folder = folder / f"map_index={key[1]}"
    found = []
    for path in sorted(folder.glob("attempt=*.log.trigger.*.log")):
        job_id = path.name.rsplit(".trigger.", 1)[1].removesuffix(".log")
        if job_id.isdigit():
            found.append((int(job_id), path))
    return found


def first_timestamp(path: Path) -> float | None:
    """The epoch time of a JSON log file's first line (``{"timestamp": "...Z", ...}``), if any."""
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            stamp = json.loads(handle.readline())["timestamp"]
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except (OSError, ValueError, KeyError, TypeError):
        return None


def deferred_without_slot(sample: Sample, key: TiKey) -> bool:
    """In this poll, ``key`` was deferred and the default pool counted no slot for any deferred task.

    Compared with every DAG run's task instances in the same poll (other runs may be going too): the
    pool's occupied slots equal the running + queued ones, its running slots the running ones, and it
    counts every deferred one as deferred, not occupied (``include_deferred`` is false).
    """
    if sample.states.get(key) != "deferred" or not sample.pool or not sample.everywhere:
        return False
    pool, everywhere = sample.pool, sample.everywhere
    return (
        pool.get("include_deferred") is False
        and pool.get("occupied_slots") == everywhere["running"] + everywhere["queued"]
        and pool.get("running_slots") == everywhere["running"]
        and pool.get("deferred_slots") == everywhere["deferred"] >= 1
    )


# ---------------------------------------------------------------------- (a)


@pytest.mark.usefixtures("backup_dag_idle")
def test_a_deferrable_mapped_backup(stack: Stack, summary: Summary) -> None:
    """Three deferrable mapped inserts: each seen DEFERRED holding no pool slot; exactly 3 READY images."""
    assert stack.api is not None and stack.emulator is not None
    api = stack.api
    instances = CASE_INSTANCES["a"]
    before = stack.emulator.machine_images()
    observation = trigger_run(api, BACKUP_DAG.dag_id, BACKUP_DAG.conf(instances, "case-a"))
    links_while_deferred: dict[TiKey, dict[str, str | None]] = {}

    def on_sample(obs: RunObservation, sample: Sample) -> None:
        """Read each deferred TI's extra link once, while it is still deferred."""
        for key, state in sample.states.items():
            if state == "deferred" and key[1] >= 0 and key not in links_while_deferred:
                links_while_deferred[key] = api.extra_links(obs.dag_id, obs.run_id, key[0], key[1])

    watch_run(api, observation, timeout=RUN_TIMEOUT, on_sample=on_sample, describe=stack.failure_report)
    run = finish_backup_run(stack, summary, "test_a_deferrable_mapped_backup", observation, before, instances)

    never_deferred = [ti_label(k) for k in run.mapped if not observation.ever_seen(k, "deferred")]
    assert not never_deferred, f"never seen DEFERRED: {never_deferred}\n{observation.state_history()}"
    no_free_slot = [
        ti_label(k) for k in run.mapped if not any(deferred_without_slot(s, k) for s in observation.samples)
    ]
    assert not no_free_slot, (
        f"no poll showed these deferred without a pool slot: {no_free_slot}; pools seen: "
        f"{[s.pool for s in observation.samples if any(v == 'deferred' for v in s.states.values())][:5]}"
    )
    # The moment with the most tasks deferred at once, as evidence in the summary.
    best = max(observation.samples, key=lambda s: sum(1 for k in run.mapped if s.states.get(k) == "deferred"))
    pool_keys = ("slots", "occupied_slots", "running_slots", "queued_slots", "deferred_slots", "open_slots")
    summary.add_case_facts(
        "test_a_deferrable_mapped_backup",
        most_deferred_at_once=sum(1 for k in run.mapped if best.states.get(k) == "deferred"),
        pool_at_that_moment={k: best.pool.get(k) for k in pool_keys}
        | {"task_instances_everywhere": best.everywhere}
        | {"include_deferred": best.pool.get("include_deferred")},
        polls=len(observation.samples),
    )
    missing_links = [ti_label(k) for k in run.mapped if not (links_while_deferred.get(k) or {}).get(LINK_NAME)]
    assert not missing_links, f"no {LINK_NAME!r} link while deferred for {missing_links}: {links_while_deferred}"


# ---------------------------------------------------------------------- (b)


@pytest.mark.usefixtures("backup_dag_idle")
def test_b_triggerer_killed_while_triggers_wait(stack: Stack, summary: Summary) -> None:
    """SIGKILL the triggerer while all three triggers wait, start a new one: all finish, one image each."""
    assert stack.api is not None and stack.emulator is not None
    api = stack.api
    case = "test_b_triggerer_killed_while_triggers_wait"
    instances = CASE_INSTANCES["b"]
    for instance in instances:
        stack.emulator.add_instance(instance, operation_seconds=FAILOVER_OPERATION_SECONDS)
    before = stack.emulator.machine_images()
    old_triggerer_jobs = {job["id"] for job in api.triggerer_jobs()}
    observation = trigger_run(api, BACKUP_DAG.dag_id, BACKUP_DAG.conf(instances, "case-b"))
    failover: dict[str, Any] = {}

    def on_sample(obs: RunObservation, sample: Sample) -> None:
        """Once every mapped insert is deferred and its trigger is assigned to a triggerer: crash it."""
        deferred = sum(1 for key, state in sample.states.items() if key[1] >= 0 and state == "deferred")
        if failover or deferred < len(instances):
            return
        inserts = mapped_insert_tis(api.task_instances(obs.dag_id, obs.run_id))
        if len(inserts) != len(instances):
            return
        waiting = all(ti["state"] == "deferred" and (ti.get("trigger") or {}).get("triggerer_id") for ti in inserts)
        if not waiting:
            return
        failover["assigned_to"] = sorted({ti["trigger"]["triggerer_id"] for ti in inserts})
        failover["trigger_ids"] = sorted(ti["trigger"]["id"] for ti in inserts)
        failover["killed_pid"] = stack.kill_triggerer()
        failover["killed_at"] = time.monotonic()
        failover["killed_at_wall"] = time.time()
        failover["killed_after_trigger_seconds"] = round(failover["killed_at"] - obs.started, 1)
        new = stack.start_new_triggerer()
        failover["new_triggerer_pid"] = new.pid
        failover["new_triggerer_log"] = str(new.log_path)

    watch_run(api, observation, timeout=RUN_TIMEOUT, on_sample=on_sample, describe=stack.failure_report)
    assert failover, (
        "the triggerer was never killed: the mapped inserts were never all DEFERRED with assigned triggers at once\n"
        + observation.state_history()
    )
    run = finish_backup_run(stack, summary, case, observation, before, instances)

    # The triggers the dead triggerer held were finished by the new one.
    assert stack.triggerer.running(), "the replacement triggerer died:\n" + stack.triggerer.describe()
    new_jobs = [job for job in api.triggerer_jobs() if job["id"] not in old_triggerer_jobs]
    assert new_jobs, "no new TriggererJob registered after the restart"
    assert set(failover["assigned_to"]) <= old_triggerer_jobs, failover
    # Each trigger writes its own log next to the task's, named after the triggerer job that ran it.
    new_ids = {job["id"] for job in new_jobs}
    fired_by_new: dict[str, list[str]] = {}
    takeovers: list[float | None] = []
    for key in run.mapped:
        logs = trigger_logs(stack.artifacts / "task-logs", observation, key)
        fired_by_new[ti_label(key)] = [
            path.name for job_id, path in logs if job_id in new_ids and FIRED in path.read_text(errors="replace")
        ]
        takeovers.extend(first_timestamp(path) for job_id, path in logs if job_id in new_ids)
    took_over = [stamp for stamp in takeovers if stamp is not None]
    not_by_new = [label for label, paths in fired_by_new.items() if not paths]
    assert not not_by_new, (
        f"no trigger log of the new triggerer job(s) {sorted(new_ids)} shows these triggers firing: {not_by_new}"
    )
    summary.add_case_facts(
        case,
        killed_pid=failover["killed_pid"],
        killed_after_trigger_seconds=failover["killed_after_trigger_seconds"],
        recovered_after_kill_seconds=round((observation.finished or 0) - failover["killed_at"], 1),
        new_triggerer_took_over_after_kill_seconds=round(min(took_over) - failover["killed_at_wall"], 1)
        if took_over
        else None,
        operation_seconds=FAILOVER_OPERATION_SECONDS,
        old_triggerer_jobs=failover["assigned_to"],
        new_triggerer_jobs=[job["id"] for job in new_jobs],
        trigger_ids=failover["trigger_ids"],
        trigger_logs_of_new_triggerer=fired_by_new,
        new_triggerer_log=failover["new_triggerer_log"],
    )
    for key in run.mapped:
        assert observation.ever_seen(key, "deferred"), f"{ti_label(key)} never DEFERRED"


# ---------------------------------------------------------------------- (c)


@pytest.mark.usefixtures("backup_dag_idle")
def test_c_extra_link_in_rest_api_and_ui(stack: Stack, summary: Summary, artifacts: Path) -> None:
    """The REST API returns the "Machine Image" link of each mapped insert; Chromium shows it on the task page."""
    assert stack.api is not None
    api = stack.api
    case = "test_c_extra_link_in_rest_api_and_ui"
    run = _RUNS.get("test_a_deferrable_mapped_backup") or _RUNS.get("test_b_triggerer_killed_while_triggers_wait")
    if run is None:  # the earlier cases failed: make a run of our own
        before = stack.emulator.machine_images() if stack.emulator else []
        observation = trigger_run(api, BACKUP_DAG.dag_id, BACKUP_DAG.conf(CASE_INSTANCES["c"], "case-c"))
        watch_run(api, observation, timeout=RUN_TIMEOUT, describe=stack.failure_report)
        run = finish_backup_run(stack, summary, case, observation, before, CASE_INSTANCES["c"])
    obs = run.observation
    urls: dict[TiKey, str] = {}
    for key in run.mapped:
        links = api.extra_links(obs.dag_id, obs.run_id, key[0], key[1])
        url = links.get(LINK_NAME)
        name = str(_rendered(obs, key).get("name"))
        assert url, f"{ti_label(key)}: no {LINK_NAME!r} link in {links}"
        assert url.startswith("https://console.cloud.google.com/"), url
        assert quote(name, safe="") in url and f"project={PROJECT}" in url, f"{url} does not name {name} in {PROJECT}"
        stored = api.xcom(obs.dag_id, obs.run_id, key[0], key[1], key=LINK_XCOM_KEY)
        assert stored == url, f"{ti_label(key)}: XCom {LINK_XCOM_KEY}={stored!r}, links endpoint says {url!r}"
        urls[key] = url

    key = run.mapped[0]
    # The task instance's Details tab lists its extra links as buttons (<a href=URL>NAME</a>).
    page = f"{api.base_url}/dags/{obs.dag_id}/runs/{quote(obs.run_id, safe='')}/tasks/{key[0]}/mapped/{key[1]}/details"
    check = screenshot_link(
        stack.registry,
        page,
        link_name=LINK_NAME,
        link_href=urls[key],
        screenshot=artifacts / "task-page-extra-link.png",
        log_path=artifacts / "chromium.log",
    )
    summary.screenshots.append(str(check.screenshot))
    summary.add_case_facts(
        case, page=page, link=urls[key], screenshot=str(check.screenshot), page_title=check.raw.get("title")
    )
    assert check.screenshot.exists() and check.screenshot.stat().st_size > 10_000, (
        f"no usable PNG at {check.screenshot}"
    )
    assert check.found, (
        f"the {LINK_NAME!r} link ({urls[key]}) is not on {page} (final URL {check.raw.get('finalUrl')}): "
        f"{check.raw.get('error')}\npage text: {check.raw.get('bodyText', '')[:1500]}"
    )
    assert LINK_NAME in check.text and check.href == urls[key], check.raw


def _rendered(observation: RunObservation, key: TiKey) -> dict[str, Any]:
    for ti in observation.final_tis:
        if ti_key(ti) == key:
            return dict(ti.get("rendered_fields") or {})
    return {}


# ---------------------------------------------------------------------- (d)


def test_d_retries_do_not_hide_real_failures(stack: Stack, summary: Summary) -> None:
    """A task failing on both tries, and one failing once for a reason other than #67287, are both reported."""
    assert stack.api is not None
    observation = trigger_run(stack.api, "e2e_real_failures", {})
    watch_run(stack.api, observation, timeout=RUN_TIMEOUT, describe=stack.failure_report)
    with pytest.raises(RunProblems) as caught:
        check_run(stack.api, observation, "test_d_retries_do_not_hide_real_failures", stack.artifacts / "task-logs")
    problems = caught.value.problems
    assert observation.final_state == "failed"
    assert any(p.startswith("fails_every_try ended 'failed' after 2 tries") for p in problems), problems
    assert any(p.startswith("fails_first_try needed a retry: try 1 ended 'failed'") for p in problems), problems
    assert not any("fails_first_try ended" in p for p in problems), problems  # it did succeed on try 2
    summary.add_case_facts(
        "test_d_retries_do_not_hide_real_failures",
        detected=[p.splitlines()[0] for p in problems[:-1]],
        race_retries_in_backup_runs=summary.race_retries,
        retries_in_backup_runs=len(summary.retries),
    )


def test_d_wrong_image_counts_are_failures() -> None:
    """The image check fails on a duplicate, a missing and a foreign image (no stack needed)."""

    class FakeEmulator:
        def __init__(self, images: list[dict[str, Any]]) -> None:
            self.images = images

        def machine_images(self) -> list[dict[str, Any]]:
            return self.images

        def requests(self) -> list[dict[str, Any]]:
            return []

    def image(name: str, source: str) -> dict[str, Any]:
        url = f"https://www.googleapis.com/compute/beta/projects/{PROJECT}/zones/{source.replace('/', '/instances/')}"
        return {"name": name, "sourceInstance": url, "status": "READY"}

    expected = {"a-web-1": "us-central1-a/web-1", "a-web-2": "us-central1-a/web-2"}
    good = [image("a-web-1", "us-central1-a/web-1"), image("a-web-2", "us-central1-a/web-2")]
    instances = sorted(set(expected.values()))
    check_images([], FakeEmulator(good), expected, instances)  # type: ignore[arg-type]
    for wrong, reason in [
        ([*good, image("a-web-1-again", "us-central1-a/web-1")], "2 new images"),
        (good[:1], "0 new images"),
        ([good[0], image("a-web-2", "us-central1-b/db-1")], "was made from"),
        ([*good, image("web-2-copy", "us-central1-a/web-2")], "2 new images"),
    ]:
        with pytest.raises(AssertionError, match=reason):
            check_images([], FakeEmulator(wrong), expected, instances)  # type: ignore[arg-type]
