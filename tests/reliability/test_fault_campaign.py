"""Fault campaign: many image creations through the insert operator against a misbehaving server.

The emulator (a separate process) answers a random share of every API request with 429/500/503
(with ``Retry-After``), a dropped connection, an insert that is carried out but never answered, an
answer slower than the client's timeout, a ``wait`` that returns at once, an insert operation
that fails (``RESOURCE_OPERATION_RATE_EXCEEDED``, the per-source limit, which the task waits out with the
wait scaled to the campaign's clock; ``INTERNAL_ERROR`` in the runs that need Airflow retries) or
carries ``warnings``, a 403 ``rateLimitExceeded``
or ``CONCURRENT_OPERATIONS_QUOTA_EXCEEDED``, or a list answer that leaves 30 % of its items out with a
``warning``; on top, standing quotas refuse requests beyond a per-project rate (per 2-second
"minute") and beyond a number of operations in flight; and it forgets every requestId it remembers
every few seconds, as the real API does after an undocumented time. Tasks are retried as Airflow
retries them (same task instance, next try). Afterwards the server's books are audited against what the tasks reported.

Short form (``make test``): 200 creations. Long form (``make reliability``):
``RELIABILITY_CREATIONS=2000 HYPOTHESIS_PROFILE=long``.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pytest

from airflow_machine_images.emulator import FAULT_KINDS
from airflow_machine_images.triggers import polling
from tests.reliability.conftest import PROJECT, connection_json, load_dag
from tests.reliability.dags.reliability_dags import MAPPED_NAMES
from tests.reliability.harness import (
    CAMPAIGN_RATE_WINDOW_SECONDS,
    SUMMARIES,
    EmulatorProcess,
    TaskOutcome,
    TaskSpec,
    TryRecord,
    insert_operator,
    run_campaign,
    settle_and_audit,
    wait_until_settled,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from airflow.models.dagrun import DagRun

    from airflow_machine_images.operators import ComputeEngineInsertMachineImageOperator
    from tests.reliability.harness import ClientSettings

pytestmark = pytest.mark.reliability

CREATIONS = int(os.environ.get("RELIABILITY_CREATIONS", "200"))
FAULT_RATE = float(os.environ.get("RELIABILITY_FAULT_RATE", "0.4"))
SEED = int(os.environ.get("RELIABILITY_SEED", "20260"))
WORKERS = int(os.environ.get("RELIABILITY_WORKERS", "16"))
#: Airflow retries per task (so up to RETRIES + 1 tries).
RETRIES = 3
#: The emulator forgets every requestId this often (seconds).
FORGET_EVERY = 4.0
SOURCES = tuple(f"us-central1-{zone}/web-{n}" for zone in "ab" for n in (1, 2))
#: Operation length, long-poll deadline and the delay of "slow" faults: longer than every client timeout.
OPERATION_SECONDS = 0.3
WAIT_DEADLINE = 1.0
SLOW_SECONDS = 3.0
#: Standing quotas of the campaign's emulator: refusals come in bursts, as at midnight.
QUOTA_OPTIONS = {
    "rate_quota_per_minute": 48,
    "rate_quota_window_seconds": CAMPAIGN_RATE_WINDOW_SECONDS,
    "concurrent_operations_limit": 8,
    "partial_list_fraction": 0.3,
    "partial_list_warning": "UNREACHABLE",
}
#: Fewer long-polls per triggerer than in production, so that the deferrable half also waits through
#: the coalesced list calls (which the partial_list faults thin out).
CAMPAIGN_MAX_LONG_POLLS = 2
#: pytest-timeout for the campaigns, which grow with RELIABILITY_CREATIONS (the default is 300 s a test).
CAMPAIGN_TIMEOUT = 300 + CREATIONS


#: The per-source limit's wait in the campaign (the service's is 600 s).
SOURCE_LIMIT_WAIT_SECONDS = 1.0


@pytest.fixture
def faulty_emulator(fast_clients: ClientSettings, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorProcess]:
    assert SLOW_SECONDS > fast_clients.long_poll_timeout > WAIT_DEADLINE
    assert fast_clients.read_timeout < SLOW_SECONDS
    emulator = EmulatorProcess(
        project=PROJECT, instances=SOURCES, operation_seconds=OPERATION_SECONDS, wait_deadline=WAIT_DEADLINE, seed=SEED
    )
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", connection_json(emulator.url))
    # A failed insert operation with RESOURCE_OPERATION_RATE_EXCEEDED is the per-source limit: the task waits
    # it out (flows/source_limit.py). The campaign's clock is compressed (a 2-second "minute"), so is the wait.
    monkeypatch.setenv("AIRFLOW__MACHINE_IMAGES__SOURCE_IMAGE_LIMIT_WAIT_SECONDS", str(SOURCE_LIMIT_WAIT_SECONDS))
    monkeypatch.setattr(polling.coalescing, "MAX_LONG_POLLS", CAMPAIGN_MAX_LONG_POLLS)
    emulator.set_options(**QUOTA_OPTIONS)
    try:
        yield emulator
    finally:
        emulator.stop()


def make_operator(spec: TaskSpec) -> ComputeEngineInsertMachineImageOperator:
    return insert_operator(spec, timeout=120, retries=RETRIES)


#: Every fault kind that applies to a call the creations make (``label_filter_drop`` applies only to
#: ``instances.aggregatedList``, which no creation sends).
CAMPAIGN_KINDS = [kind for kind in FAULT_KINDS if kind != "label_filter_drop"]


#: A failed insert operation that is not the per-source limit (which the task waits out instead of failing).
INTERNAL_ERROR: dict[str, Any] = {"error_code": "INTERNAL_ERROR"}


def inject_random_faults(emulator: EmulatorProcess, rate: float, seed: int, **operation_error: Any) -> None:
    """Random faults; failed insert operations are the per-source limit unless ``operation_error`` says
    otherwise (``error_code``)."""
    emulator.random_faults(
        rate=rate,
        kinds=CAMPAIGN_KINDS,
        statuses=[500, 503, 429],
        retry_after_seconds=1,
        slow_seconds=SLOW_SECONDS,
        seed=seed,
        **operation_error,
    )


def campaign_specs(count: int, run_id: str) -> list[TaskSpec]:
    """Half blocking, half deferrable; mapped tasks of one DAG run, one image name per map index."""
    return [
        TaskSpec(
            dag_id="reliability_campaign",
            task_id="create_deferrable" if index % 2 else "create_blocking",
            run_id=run_id,
            map_index=index // 2,
            name=f"rel-{index:05d}",
            source_instance=SOURCES[index % len(SOURCES)],
            deferrable=bool(index % 2),
        )
        for index in range(count)
    ]


class Amnesia:
    """Makes the emulator forget every requestId every ``every`` seconds while the campaign runs."""

    def __init__(self, emulator: EmulatorProcess, every: float) -> None:
        self.emulator, self.every, self.times = emulator, every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="amnesia", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.emulator.forget_request_ids()
            self.times += 1

    def __enter__(self) -> Amnesia:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.timeout(CAMPAIGN_TIMEOUT)
def test_fault_campaign(faulty_emulator: EmulatorProcess) -> None:
    assert CREATIONS >= 200, "the campaign's acceptance needs at least 200 creations"
    # One scripted partial list on the first list call: the random ones hit list calls only by chance (few
    # are made when the triggers long-poll), and a campaign that never met one would prove nothing of them.
    faulty_emulator.inject(kind="partial_list")
    inject_random_faults(faulty_emulator, FAULT_RATE, SEED)
    with Amnesia(faulty_emulator, FORGET_EVERY) as amnesia:
        outcomes, seconds = run_campaign(
            campaign_specs(CREATIONS, f"campaign__{SEED}"), make_operator, retries=RETRIES, workers=WORKERS
        )
    report, _ = settle_and_audit(
        faulty_emulator,
        "bulk: execute/defer/trigger/resume",
        outcomes,
        seconds=seconds,
        request_id_forgotten=amnesia.times,
    )

    assert report.duplicates == []
    assert report.lost == []
    assert report.unexplained == []
    assert report.creations == CREATIONS and report.deferrable == CREATIONS // 2
    assert report.fault_rate >= 0.30, f"only {report.fault_rate:.1%} of requests were faulted"
    assert set(CAMPAIGN_KINDS) <= set(report.faults_by_kind), f"some fault kinds never fired: {report.faults_by_kind}"
    standing = {"rate_quota", "concurrent_operations_limit", "partial_list_fraction"}
    assert standing <= set(report.faults_by_kind), report.faults_by_kind
    assert report.succeeded + report.failed == CREATIONS
    # Each deferral stored trigger kwargs that hold identifiers and settings only.
    assert all("rawKey" not in kwargs for o in outcomes for kwargs in o.trigger_kwargs)
    assert any(o.trigger_kwargs for o in outcomes if o.spec.deferrable)


@pytest.mark.timeout(CAMPAIGN_TIMEOUT)
def test_without_retries_failures_are_explained_and_lost_images_are_adopted_by_the_retry(
    faulty_emulator: EmulatorProcess,
) -> None:
    """With no Airflow retries and half of all requests faulted, tasks fail: each must say why.

    An image the server made for a task that failed is "lost" only until the task instance runs
    again: its next try (faults off, same identity) must adopt it through the requestId replay,
    without a new insert operation.
    """
    count = max(40, CREATIONS // 5)
    specs = campaign_specs(count, f"no-retries__{SEED}")
    # Failed operations that are not the per-source limit: a task with no retries fails on them.
    inject_random_faults(faulty_emulator, 0.5, SEED + 1, **INTERNAL_ERROR)
    outcomes, seconds = run_campaign(specs, make_operator, retries=0, workers=WORKERS)
    report, operations = settle_and_audit(faulty_emulator, "no retries, 50% faults", outcomes, seconds=seconds)
    assert report.duplicates == []
    assert report.unexplained == []
    assert report.failed > 0, "with no retries and 50% faults some tasks must fail"

    failed = [o.spec for o in outcomes if not o.succeeded]
    inserts_before = sum(1 for op in operations if op.get("operationType") == "insert")
    retried, _ = run_campaign(failed, make_operator, retries=0, workers=WORKERS, first_try=2)
    assert all(o.succeeded for o in retried), [o.final_error for o in retried if not o.succeeded]
    after = wait_until_settled(faulty_emulator)
    images = {i["name"]: i for i in faulty_emulator.machine_images()}
    assert sorted(images) == sorted(s.name for s in specs)
    assert all(i["status"] == "READY" for i in images.values())
    adopted = {o.spec.name: o.result for o in retried if o.spec.name in report.lost}
    assert all(r is not None and not r["reused"] for r in adopted.values())  # by requestId, not by name
    new_inserts = sum(1 for op in after if op.get("operationType") == "insert") - inserts_before
    assert new_inserts <= len(failed) - len(report.lost), "a lost image was made a second time"
    SUMMARIES.append(
        f"  images made for failed tasks: {len(report.lost)} {sorted(report.lost)}; the next try adopted every one"
        f" (by its requestId, {new_inserts} new inserts for {len(failed)} failed tasks)"
    )


def test_mapped_dag_under_faults(
    reliability_db: None, faulty_emulator: EmulatorProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same audit on a mapped DAG run by real Airflow (``dag.test()``), retries included."""
    failures = tmp_path / "failures.jsonl"
    monkeypatch.setenv("RELIABILITY_FAILURES", str(failures))
    inject_random_faults(faulty_emulator, FAULT_RATE, SEED + 2)
    # On top of the random faults, the first insert's operation fails (not the per-source limit, which the
    # task would wait out): its task must be retried by Airflow.
    faulty_emulator.inject(kind="operation_error", action="machineImages.insert", **INTERNAL_ERROR)
    dag = load_dag("reliability_mapped")
    started = datetime.now(timezone.utc)
    dag_run = dag.test(logical_date=started, run_after=started)
    seconds = (datetime.now(timezone.utc) - started).total_seconds()

    failed_tries: dict[tuple[str, int], list[dict[str, Any]]] = {}
    if failures.exists():
        for line in failures.read_text().splitlines():
            entry = json.loads(line)
            failed_tries.setdefault((entry["task_id"], entry["map_index"]), []).append(entry)
    outcomes = []
    for ti in dag_run.get_task_instances():
        assert str(ti.state) in ("success", "failed"), f"{ti.task_id}[{ti.map_index}] ended {ti.state}"
        spec = TaskSpec(
            dag_id=ti.dag_id,
            task_id=ti.task_id,
            run_id=ti.run_id,
            map_index=ti.map_index,
            name=MAPPED_NAMES[ti.task_id][ti.map_index],
            source_instance="us-central1-a/web-1",
            deferrable=ti.task_id.endswith("deferrable"),
        )
        outcome = TaskOutcome(spec)
        for entry in failed_tries.get((ti.task_id, ti.map_index), []):
            outcome.tries.append(TryRecord(entry["try_number"], "failed", entry["error_type"], entry["error"]))
        if str(ti.state) == "success":
            outcome.tries.append(TryRecord(ti.try_number, "success"))
            outcome.result = xcom_result(dag_run, ti.task_id, ti.map_index)
        outcomes.append(outcome)
    report, _ = settle_and_audit(faulty_emulator, "dag.test(): mapped DAG, retries=3", outcomes, seconds=seconds)
    assert report.creations == sum(len(names) for names in MAPPED_NAMES.values())
    assert report.duplicates == []
    assert report.lost == []
    assert report.unexplained == []
    assert report.faulted_requests > 0
    assert max(report.tries_histogram) >= 2, "no task was retried by Airflow"
    assert report.faults_by_kind.get("operation_error", 0) >= 1


def xcom_result(dag_run: DagRun, task_id: str, map_index: int) -> dict[str, Any] | None:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.execute(
            XComModel.get_many(
                key="return_value",
                run_id=dag_run.run_id,
                dag_ids=dag_run.dag_id,
                task_ids=task_id,
                map_indexes=map_index,
            ).with_only_columns(XComModel.value)
        ).first()
    return None if row is None else XComModel.deserialize_value(row)
