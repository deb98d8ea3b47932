"""The fleet backup operator through real Airflow (``dag.test()``) against the emulator over real HTTP.

Fleets of up to 300 instances, failed operations (the emulator's ``operation_error`` fault, random
faults via ``inject_random``), answers dropped after the server accepted them (``accept_then_drop``),
task retries, refill rounds, blocking and deferrable: one image per instance backed up, every other
instance named with its error, never a duplicate.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pytest

from airflow_machine_images.emulator import Fault
from tests.integration.conftest import PROJECT, load_dag, task_states, xcom_result

if TYPE_CHECKING:
    from airflow_machine_images.emulator import ComputeEngineEmulator

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

BACKUPS = "test-backups"
LABELS = {"backup": "fleet"}
LOGICAL_DATE = datetime(2026, 4, 1, tzinfo=timezone.utc)


def seed_fleet(emulator: ComputeEngineEmulator, count: int) -> list[str]:
    """``count`` instances labelled for the fleet in three zones; returns their partial URLs."""
    zones = ("us-central1-a", "us-central1-b", "us-east1-b")
    paths = []
    for index in range(count):
        zone = zones[index % len(zones)]
        emulator.add_instance(f"{zone}/vm-{index:04d}", labels=LABELS)
        paths.append(f"projects/{PROJECT}/zones/{zone}/instances/vm-{index:04d}")
    return sorted(paths)


def run(dag_id: str, logical_date: datetime = LOGICAL_DATE) -> Any:
    return load_dag(dag_id).test(logical_date=logical_date, run_after=logical_date)


def images_by_source(emulator: ComputeEngineEmulator) -> Counter[str]:
    """How many images of each source instance the backup project holds."""
    return Counter(
        image["sourceInstance"].split("/compute/beta/")[-1].split("/compute/v1/")[-1]
        for image in emulator.machine_images(BACKUPS)
    )


@pytest.mark.parametrize("mode", ["deferrable", "blocking"])
def test_a_small_fleet_is_backed_up_in_one_task(gcp_connection: ComputeEngineEmulator, mode: str) -> None:
    instances = seed_fleet(gcp_connection, 12)
    dag_run = run(f"ami_test_fleet_backup_{mode}")
    assert task_states(dag_run) == {"backup": "success"}
    result = xcom_result(dag_run, "backup")
    assert result["summary"]["succeeded"] == 12 and result["summary"]["failed"] == 0
    assert [row["instance"] for row in result["instances"]] == instances
    assert images_by_source(gcp_connection) == Counter({path: 1 for path in instances})


#: A failure that clears by itself (no source documents the codes of failed machine-image inserts besides
#: the per-source limit; any code outside PERMANENT_OPERATION_CODES is retried the same way).
TRANSIENT = {"error_code": "INTERNAL_ERROR", "error_message": "Internal error. Please try again."}


def insert_ids(emulator: ComputeEngineEmulator) -> dict[str, list[str]]:
    """Each source instance's insert requestIds, in the order sent (the hook's own retries included)."""
    sent: dict[str, list[str]] = {}
    for request in emulator.requests:
        if request.action == "machineImages.insert":
            source = str(request.query.get("sourceInstance") or (request.body or {}).get("sourceInstance"))
            sent.setdefault(source, []).append(request.query["requestId"])
    return sent


def check_outcome(emulator: ComputeEngineEmulator, instances: list[str], result: dict[str, Any]) -> dict[str, str]:
    """One READY image per instance reported succeeded, none for the others, no duplicates; returns statuses."""
    rows = {row["instance"]: row for row in result["instances"]}
    assert sorted(rows) == instances
    statuses = {instance: row["status"] for instance, row in rows.items()}
    succeeded = {instance for instance, status in statuses.items() if status == "succeeded"}
    assert images_by_source(emulator) == Counter({instance: 1 for instance in succeeded})  # 0 duplicates
    names = {image["name"]: image for image in emulator.machine_images(BACKUPS)}
    for instance in succeeded:
        image = names[rows[instance]["image"]]
        assert image["status"] == "READY" and image["sourceInstance"].endswith(instance)
        assert image["labels"]["airflow-ti"] == result["summary"]["run_label"]
    for row in rows.values():
        assert (row["error"] is None) == (row["status"] == "succeeded"), row
    assert sorted(result["summary"]["failed_instances"]) == sorted(i for i, s in statuses.items() if s == "failed")
    return statuses


@pytest.mark.parametrize("mode", ["deferrable", "blocking"])
def test_300_instances_with_failed_operations_and_dropped_answers(
    gcp_connection: ComputeEngineEmulator, mode: str
) -> None:
    """5 % of the operations fail, 5 % of the answers are dropped after the server accepted the insert.

    One image per instance backed up, every failure named with its error, no instance imaged twice;
    the task fails (``fail_on="any"``) and says so, and its result is still there for a look.
    """
    instances = seed_fleet(gcp_connection, 300)
    gcp_connection.inject_random(
        rate=0.1,
        kinds=("operation_error", "accept_then_drop"),
        actions=["machineImages.insert"],
        seed=27,
        **{"error_code": TRANSIENT["error_code"]},
    )
    dag_run = run(f"ami_test_fleet_backup_{mode}")
    assert task_states(dag_run) == {"backup": "failed"}
    result = xcom_result_key(dag_run, "backup", "fleet_backup")
    statuses = check_outcome(gcp_connection, instances, result)
    failed = [i for i, s in statuses.items() if s == "failed"]
    assert 5 <= len(failed) <= 30, len(failed)  # about 5 % of 300
    assert all("INTERNAL_ERROR" in row["error"] for row in result["instances"] if row["status"] == "failed")
    dropped = [
        r for r in gcp_connection.requests if r.action == "machineImages.insert" and r.fault == "accept_then_drop"
    ]
    assert len(dropped) >= 5  # answers really were dropped, and their retries made no second image
    assert "fail_on='any'" in result["summary"]["verdict"]


def xcom_result_key(dag_run: Any, task_id: str, key: str) -> Any:
    """An XCom of a task of a finished ``dag.test()`` run, by key."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.execute(
            XComModel.get_many(
                key=key, run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id
            ).with_only_columns(XComModel.value)
        ).first()
    return None if row is None else XComModel.deserialize_value(row)


@pytest.mark.parametrize("mode", ["deferrable", "blocking"])
def test_a_task_retry_resubmits_only_the_failed_instances(gcp_connection: ComputeEngineEmulator, mode: str) -> None:
    """Try 1: 15 of 300 operations fail (and answers are dropped). Try 2 touches only those 15: it sends
    try 1's requestId (the server replays the failure), then one new one; the 285 are not touched."""
    instances = seed_fleet(gcp_connection, 300)
    gcp_connection.inject(Fault(kind="operation_error", action="machineImages.insert", times=15, **TRANSIENT))
    gcp_connection.inject_random(rate=0.05, kinds=("accept_then_drop",), actions=["machineImages.insert"], seed=7)
    dag_run = run(f"ami_test_fleet_backup_retry_{mode}")
    assert task_states(dag_run) == {"backup": "success"}
    result = xcom_result(dag_run, "backup")
    assert set(check_outcome(gcp_connection, instances, result).values()) == {"succeeded"}
    sent = insert_ids(gcp_connection)
    retried = {source for source, ids in sent.items() if len(set(ids)) > 1}
    assert len(retried) == 15
    for source, ids in sent.items():
        distinct = list(dict.fromkeys(ids))
        if source in retried:
            # try 1's requestId (twice: once per try), then the next generation's: one new submission
            assert len(distinct) == 2 and ids.count(distinct[0]) >= 2, (source, ids)
        else:
            assert len(distinct) == 1, (source, ids)  # the hook's retries of a dropped answer: the same id
    assert result["summary"]["submissions"] == 30  # try 2 sent 15 replays and 15 new submissions, nothing else


@pytest.mark.parametrize("mode", ["deferrable", "blocking"])
def test_refill_rounds_keep_at_most_max_in_flight_inserts_running(
    gcp_connection: ComputeEngineEmulator, mode: str
) -> None:
    instances = seed_fleet(gcp_connection, 70)
    dag_run = run(f"ami_test_fleet_backup_rounds_{mode}")
    assert task_states(dag_run) == {"backup": "success"}
    result = xcom_result(dag_run, "backup")
    check_outcome(gcp_connection, instances, result)
    assert max_running_at_once(gcp_connection) <= 20
    if mode == "deferrable":
        assert result["summary"]["deferrals"] >= 3  # 70 instances, 20 at a time: a deferral per round


def max_running_at_once(emulator: ComputeEngineEmulator) -> int:
    """The most insert operations of the backup project running at one moment (from their server times)."""
    edges = []
    for op in emulator.operations(BACKUPS):
        if op.get("operationType") == "insert":
            edges += [(op["insertTime"], 1), (op["endTime"], -1)]
    running = peak = 0
    for _, step in sorted(edges, key=lambda edge: (parse_time(edge[0]), edge[1])):
        running += step
        peak = max(peak, running)
    return peak


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_the_per_source_limit_defers_instances_to_the_next_run_and_a_retry_does_not_retry_into_it(
    gcp_connection: ComputeEngineEmulator,
) -> None:
    """3 inserts meet the per-source limit, 1 fails otherwise: the task fails for the 1; its retry
    resubmits that one, and only replays the 3 (deferred: not retried into the limit)."""
    instances = seed_fleet(gcp_connection, 10)
    limit = Fault(
        kind="operation_error",
        action="machineImages.insert",
        times=3,
        error_code="RESOURCE_OPERATION_RATE_EXCEEDED",
        error_message="Operation rate exceeded for resource. Too frequent operations from the source resource.",
        http_error_status_code=403,
    )
    gcp_connection.inject(limit)
    gcp_connection.inject(Fault(kind="operation_error", action="machineImages.insert", times=1, **TRANSIENT))
    dag_run = run("ami_test_fleet_backup_retry_deferrable")
    assert task_states(dag_run) == {"backup": "success"}  # deferred instances are no failures
    result = xcom_result(dag_run, "backup")
    statuses = check_outcome(gcp_connection, instances, result)
    deferred = sorted(i for i, s in statuses.items() if s == "deferred")
    assert len(deferred) == 3 and result["summary"]["deferred_instances"] == deferred
    sent = insert_ids(gcp_connection)
    for instance in deferred:
        assert len(set(sent[instance])) == 1 and len(sent[instance]) == 2, sent[instance]  # try 2 only replayed
    assert all(
        "RESOURCE_OPERATION_RATE_EXCEEDED" in str(row["error"]) and "the next try is allowed at" in str(row["error"])
        for row in result["instances"]
        if row["status"] == "deferred"
    )
    assert sum(1 for ids in sent.values() if len(set(ids)) == 2) == 1  # the one transient failure: resubmitted


def test_fraction_policy_succeeds_with_few_failures_and_names_them(gcp_connection: ComputeEngineEmulator) -> None:
    instances = seed_fleet(gcp_connection, 40)
    gcp_connection.inject(Fault(kind="operation_error", action="machineImages.insert", times=3, **TRANSIENT))
    dag_run = run("ami_test_fleet_backup_fraction")
    assert task_states(dag_run) == {"backup": "success"}  # 37 of 40: above 90 %
    result = xcom_result(dag_run, "backup")
    statuses = check_outcome(gcp_connection, instances, result)
    assert Counter(statuses.values()) == Counter({"succeeded": 37, "failed": 3})
    assert result["summary"]["success_fraction"] == round(37 / 40, 4) and result["summary"]["verdict"] is None


def test_the_list_operators_xcom_and_the_coverage_check_reading_the_result(
    gcp_connection: ComputeEngineEmulator,
) -> None:
    instances = seed_fleet(gcp_connection, 8)
    dag_run = run("ami_test_fleet_backup_from_list")
    assert task_states(dag_run) == {"select": "success", "backup": "success", "coverage": "success"}
    result = xcom_result(dag_run, "backup")
    check_outcome(gcp_connection, instances, result)
    assert all(row["image"].startswith("vm-") and "-20260401-" in row["image"] for row in result["instances"])
    assert all(image["labels"]["purpose"] == "fleet-test" for image in gcp_connection.machine_images(BACKUPS))
    coverage = xcom_result(dag_run, "coverage")
    assert coverage["backup_project_id"] == BACKUPS and coverage["checked"] == 8 and coverage["ok"] == 8
    calls = Counter(r.action for r in gcp_connection.requests)
    assert calls["instances.aggregatedList"] == 1  # the list operator's; the coverage check read the XCom


def test_one_asset_event_per_image_through_an_alias(gcp_connection: ComputeEngineEmulator) -> None:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    instances = seed_fleet(gcp_connection, 6)
    dag_run = run("ami_test_fleet_backup_deferrable", datetime(2026, 4, 2, tzinfo=timezone.utc))  # a run of its own
    with create_session() as session:
        events = session.execute(
            select(AssetModel.uri, AssetEvent.extra)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetEvent.source_run_id == dag_run.run_id, AssetEvent.source_dag_id == dag_run.dag_id)
        ).all()
    by_uri = {uri: extra for uri, extra in events}
    # the asset of each instance's images in the backup project (the images are there, not in PROJECT)
    assert sorted(by_uri) == sorted(f"gce-machine-image://{BACKUPS}/{i}" for i in instances)
    assert all(extra["project_id"] == BACKUPS and extra["status"] == "READY" for extra in by_uri.values())


@pytest.mark.parametrize(
    ("overrides", "parameter"),
    [
        ({"instances": ["us-central1-a/vm-0000", "Bad Zone/vm-1"]}, "instances[1]"),
        ({"instances": "not a list"}, "instances"),
        ({"image_name": "{instance}-{when}"}, "image_name"),
        ({"image_name": "Backup-{instance}"}, "image_name"),
        ({"image_name": "nightly"}, "image_name"),  # every instance would get the same name
        ({"labels": {"airflow-ti": "mine"}}, "labels"),
        ({"backup_project_id": "Bad Project!"}, "backup_project_id"),
        ({"label_selector": "Fleet=x", "instances": None}, "label_selector['Fleet']"),
    ],
)
def test_bad_input_fails_before_any_request_naming_the_parameter(
    gcp_connection: ComputeEngineEmulator, overrides: dict[str, Any], parameter: str
) -> None:
    from airflow_machine_images.compat import AirflowFailException
    from airflow_machine_images.operators import ComputeEngineFleetBackupOperator
    from tests.integration.test_bad_input import FakeTI

    seed_fleet(gcp_connection, 3)
    gcp_connection.clear_requests()
    arguments: dict[str, Any] = {"instances": ["us-central1-a/vm-0000", "us-central1-b/vm-0001"], **overrides}
    rendered = {key: value for key, value in arguments.items() if value is not None}
    templated = {key: "{{ params.x }}" for key in rendered if key != "backup_project_id"}
    operator = ComputeEngineFleetBackupOperator(
        task_id="backup", **templated, backup_project_id=rendered.get("backup_project_id")
    )
    for key, value in rendered.items():  # as Airflow leaves them once rendered
        setattr(operator, key, value)
    with pytest.raises(AirflowFailException, match=parameter.replace("[", r"\[").replace("]", r"\]")):
        operator.execute({"ti": FakeTI()})  # type: ignore[arg-type]
    assert gcp_connection.requests == []


def test_a_name_that_only_a_listed_instance_breaks_fails_after_the_listing_before_any_insert(
    gcp_connection: ComputeEngineEmulator,
) -> None:
    from airflow_machine_images.compat import AirflowFailException
    from airflow_machine_images.operators import ComputeEngineFleetBackupOperator
    from tests.integration.test_bad_input import FakeTI

    gcp_connection.add_instance("us-central1-a/web-1", labels=LABELS)
    gcp_connection.add_instance("us-east1-b/web-1", labels=LABELS)  # same name, another zone
    gcp_connection.clear_requests()
    operator = ComputeEngineFleetBackupOperator(task_id="backup", label_selector=LABELS, image_name="{instance}-{run}")
    with pytest.raises(AirflowFailException, match=r"image_name.*add \{hash\} or \{zone\}"):
        operator.execute({"ti": FakeTI()})  # type: ignore[arg-type]
    assert [r.action for r in gcp_connection.requests] == ["instances.aggregatedList"]


def test_the_example_backs_up_prunes_and_checks_the_fleet(gcp_connection: ComputeEngineEmulator) -> None:
    instances = []
    for index in range(9):
        zone = ("us-central1-a", "us-east1-b", "europe-west1-c")[index % 3]
        gcp_connection.add_instance(f"{zone}/app-{index}", labels={"backup": "fleet"})
        instances.append(f"projects/{PROJECT}/zones/{zone}/instances/app-{index}")
    today = datetime.now(timezone.utc).replace(microsecond=0)
    conf = {"workload_project": PROJECT, "backup_project": BACKUPS}
    dag_run = load_dag("example_fleet_backup").test(logical_date=today, run_after=today, run_conf=conf)
    assert task_states(dag_run) == {
        "backup_fleet": "success",
        "prune_old_images": "success",
        "check_coverage": "success",
    }
    check_outcome(gcp_connection, sorted(instances), xcom_result(dag_run, "backup_fleet"))
    coverage = xcom_result(dag_run, "check_coverage")
    assert (coverage["checked"], coverage["ok"], coverage["backup_project_id"]) == (9, 9, BACKUPS)


def test_the_coverage_check_reads_a_failed_backups_result_rendered_to_text_and_names_the_gap(
    gcp_connection: ComputeEngineEmulator,
) -> None:
    """As the example hands it over: ``{{ ti.xcom_pull(..., key='fleet_backup') }}`` renders the dict to text."""
    from airflow_machine_images.exceptions import BackupCoverageError
    from airflow_machine_images.operators import ComputeEngineMachineImageCoverageCheckOperator
    from tests.integration.test_bad_input import FakeTI

    instances = seed_fleet(gcp_connection, 4)
    gcp_connection.inject(Fault(kind="operation_error", action="machineImages.insert", times=1, **TRANSIENT))
    dag_run = run("ami_test_fleet_backup_deferrable", datetime(2026, 4, 3, tzinfo=timezone.utc))
    assert task_states(dag_run) == {"backup": "failed"}
    result = xcom_result_key(dag_run, "backup", "fleet_backup")
    (failed,) = result["summary"]["failed_instances"]
    check = ComputeEngineMachineImageCoverageCheckOperator(task_id="check", fleet_backup="{{ x }}", max_age=3600)
    check.fleet_backup = str(result)  # what the template renders
    gcp_connection.clear_requests()
    with pytest.raises(BackupCoverageError, match=failed.replace("/", "/")) as caught:
        check.execute({"ti": FakeTI()})  # type: ignore[arg-type]
    assert "1 without any READY image in test-backups" in str(caught.value)
    assert sorted(instances) == sorted(row["instance"] for row in result["instances"])
    assert [r.action for r in gcp_connection.requests] == ["machineImages.list"]  # no listing of the fleet
