"""Scheduled backups end to end with dag.test(): delete, retention, labels, assets, examples."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_machine_images.emulator import ComputeEngineEmulator, Fault
from tests.conftest import DAGS_FOLDER, REPO_ROOT
from tests.integration.conftest import PROJECT, connection_json, load_dag, task_states, xcom_result

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

LOGICAL_DATE = datetime(2026, 5, 20, tzinfo=timezone.utc)
NIGHTLY_LABELS = {"managed-by": "airflow", "backup": "nightly", "airflow-dag": "example_nightly_backup"}
FLEET = ["us-central1-a/web-1", "us-central1-a/web-2", "us-east1-b/db-1"]


def run(dag_id: str, **conf: Any):  # type: ignore[no-untyped-def]
    return load_dag(dag_id).test(logical_date=LOGICAL_DATE, run_after=LOGICAL_DATE, run_conf=conf or None)


def names(emulator: ComputeEngineEmulator, project: str = PROJECT) -> set[str]:
    return {i["name"] for i in emulator.machine_images(project)}


# ---------------------------------------------------------------- delete


def test_delete_blocking_and_deferrable(gcp_connection: ComputeEngineEmulator) -> None:
    for dag_id in ("ami_test_delete", "ami_test_delete_deferrable"):
        gcp_connection.add_machine_image("img-d", source_instance="us-central1-a/web-1")
        dag_run = run(dag_id)
        assert task_states(dag_run) == {"delete": "success"}
        result = xcom_result(dag_run, "delete")
        assert result["deleted"] is True
        assert result["operation_name"].startswith("operation-")
        assert names(gcp_connection) == set()


def test_delete_of_a_missing_image_succeeds_unless_told_otherwise(gcp_connection: ComputeEngineEmulator) -> None:
    dag_run = run("ami_test_delete")
    assert task_states(dag_run) == {"delete": "success"}
    assert xcom_result(dag_run, "delete")["deleted"] is False
    assert task_states(run("ami_test_delete_fail_if_missing")) == {"delete": "failed"}


def test_rerunning_a_delete_sends_the_same_request_id(gcp_connection: ComputeEngineEmulator) -> None:
    image = gcp_connection.add_machine_image("img-d", source_instance="us-central1-a/web-1")
    first = xcom_result(run("ami_test_delete"), "delete")
    second = xcom_result(run("ami_test_delete"), "delete")
    assert first["deleted"] is True and first["id"] == image["id"]
    assert second["request_id"] == first["request_id"]
    # The rerun reads the image first (deletes go by the id read): it is gone, so nothing is sent again.
    assert second["deleted"] is False and second["operation_name"] is None
    (sent,) = [r for r in gcp_connection.requests if r.action == "machineImages.delete"]
    assert sent.path.endswith(f"/machineImages/{image['id']}")


@pytest.mark.parametrize("dag_id", ["ami_test_delete_retries", "ami_test_delete_deferrable_retries"])
def test_failed_deletes_each_get_one_fresh_delete_per_try(gcp_connection: ComputeEngineEmulator, dag_id: str) -> None:
    # Two delete operations fail on the server: try 2 and try 3 each replay the earlier failures (same
    # requestIds) and make one new delete; the third try's succeeds.
    gcp_connection.add_machine_image("img-d", source_instance="us-central1-a/web-1")
    gcp_connection.inject(Fault(kind="operation_error", action="machineImages.delete", times=2))
    dag_run = run(dag_id)
    assert task_states(dag_run) == {"delete": "success"}
    (ti,) = dag_run.get_task_instances()
    assert ti.try_number == 3
    deletes = [op for op in gcp_connection.operations(PROJECT) if op["operationType"] == "delete"]
    assert [bool(op.get("error")) for op in deletes] == [True, True, False]
    assert len({op["clientOperationId"] for op in deletes}) == 3
    assert names(gcp_connection) == set()


# ---------------------------------------------------------------- retention


def test_dry_run_deletes_nothing(gcp_connection: ComputeEngineEmulator) -> None:
    old = datetime.now(timezone.utc) - timedelta(days=3)
    for n in range(3):
        gcp_connection.add_machine_image(
            f"old-{n}",
            source_instance="us-central1-a/web-1",
            labels={"managed-by": "airflow"},
            creation_timestamp=old + timedelta(hours=n),
        )
    result = xcom_result(run("ami_test_retention_dry_run"), "prune")
    assert result["dry_run"] is True
    assert result["would_delete"] == ["old-0", "old-1"]
    assert result["deleted"] == []
    assert names(gcp_connection) == {"old-0", "old-1", "old-2"}
    assert gcp_connection.count("machineImages.delete") == 0


def test_a_failed_delete_fails_retention_naming_the_image(
    gcp_connection: ComputeEngineEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    old = datetime.now(timezone.utc) - timedelta(days=3)
    by_id = {}
    for n in range(3):
        seeded = gcp_connection.add_machine_image(
            f"old-{n}",
            source_instance="us-central1-a/web-1",
            labels={"managed-by": "airflow"},
            creation_timestamp=old + timedelta(hours=n),
        )
        by_id[seeded["id"]] = seeded["name"]
    # keep_last=1 plans to delete old-0 and old-1; the first delete the server gets fails on the server
    gcp_connection.inject(
        Fault(
            kind="operation_error",
            action="machineImages.delete",
            error_code="RESOURCE_IN_USE_BY_ANOTHER_RESOURCE",
            error_message="The machine image is in use",
        )
    )
    dag_run = run("ami_test_retention")
    deletes = [r for r in gcp_connection.requests if r.action == "machineImages.delete"]
    assert sorted(by_id[r.path.rsplit("/", 1)[-1]] for r in deletes) == ["old-0", "old-1"]  # by id
    (failed,) = [by_id[r.path.rsplit("/", 1)[-1]] for r in deletes if r.fault == "operation_error"]
    result = xcom_result(dag_run, "prune")
    assert task_states(dag_run) == {"prune": "failed"}, f"{failed} failed to delete, but the task reported {result}"
    assert result is None  # nothing reported, so the failed image is not in "deleted"
    assert names(gcp_connection) == {failed, "old-2"}
    task_log = capfd.readouterr().out
    assert f"Retention deleted 1 image(s) but failed on 1: {failed}: " in task_log
    assert "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE" in task_log


def test_unsafe_retention_is_rejected_when_the_dag_is_parsed() -> None:
    from airflow_machine_images.operators import ComputeEngineMachineImageRetentionOperator
    from airflow_machine_images.validation import MachineImageValidationError

    for kwargs in ({"keep_last": 0, "label_selector": {"a": "b"}}, {"keep_last": 2}, {"label_selector": {"a": "b"}}):
        with pytest.raises(MachineImageValidationError):
            ComputeEngineMachineImageRetentionOperator(task_id="prune", **kwargs)


# ---------------------------------------------------------------- the nightly backup example

WORKLOAD, BACKUPS = "demo-project", "demo-backups"


def nightly_name(instance: str, day: str = "20260520") -> str:
    """The image name the example gives an instance (``ZONE/NAME`` in the workload project)."""
    from airflow_machine_images.planning.fleet import backup_image_name

    zone, name = instance.split("/")
    return backup_image_name(
        {"name": name, "source_instance": f"projects/{WORKLOAD}/zones/{zone}/instances/{name}"}, day
    )


@pytest.fixture
def fleet(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The example's workload project: 3 instances labelled backup=nightly, 1 not; the backup project holds
    11 older images (8 nightly of web-1, 3 that must survive)."""
    with ComputeEngineEmulator(default_project=WORKLOAD, operation_seconds=0.5) as emu:
        for instance in FLEET:
            emu.add_instance(instance, labels={"backup": "nightly"})
        emu.add_instance("us-east1-b/scratch-1", labels={"backup": "none"})  # not selected
        emu.add_instance(  # the same label in another project: not the workload project's fleet
            "projects/someone-else/zones/us-east1-b/instances/db-9", labels={"backup": "nightly"}
        )
        web1 = f"projects/{WORKLOAD}/zones/us-central1-a/instances/web-1"
        day = timedelta(days=1)
        for n in range(1, 9):
            emu.add_machine_image(
                f"web-1-old-{n}",
                source_instance=web1,
                project=BACKUPS,
                labels=NIGHTLY_LABELS,
                creation_timestamp=LOGICAL_DATE - n * day,
            )
        emu.add_machine_image(  # outside the selector: never deleted
            "web-2-by-hand",
            source_instance=f"projects/{WORKLOAD}/zones/us-central1-a/instances/web-2",
            project=BACKUPS,
            creation_timestamp=LOGICAL_DATE - 30 * day,
        )
        emu.add_machine_image(  # another DAG's nightly image of the same instance: not this DAG's to prune
            "web-1-other-dag",
            source_instance=web1,
            project=BACKUPS,
            labels={**NIGHTLY_LABELS, "airflow-dag": "another_backup_dag"},
            creation_timestamp=LOGICAL_DATE - 40 * day,
        )
        emu.add_machine_image(  # not READY: never deleted
            "db-1-broken",
            source_instance=f"projects/{WORKLOAD}/zones/us-east1-b/instances/db-1",
            project=BACKUPS,
            labels=NIGHTLY_LABELS,
            status="INVALID",
            creation_timestamp=LOGICAL_DATE - 30 * day,
        )
        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", connection_json(emu.url, project=WORKLOAD))
        yield emu


NIGHTLY_TASKS = {
    "select_fleet": "success",
    "plan_backups": "success",
    "backup": ["success"] * len(FLEET),  # mapped: one state per instance
    "prune_old_images": "success",
    "check_coverage": "success",
}


def test_nightly_backup_images_the_labelled_fleet_into_the_backup_project_and_prunes_there(
    fleet: ComputeEngineEmulator,
) -> None:
    # the run date is "today", so the new images are fresh for the coverage check
    today = datetime.now(timezone.utc).replace(microsecond=0)
    dag_run = load_dag("example_nightly_backup").test(logical_date=today, run_after=today)
    states = task_states(dag_run)
    assert states == NIGHTLY_TASKS
    day = today.strftime("%Y%m%d")
    new_images = {nightly_name(instance, day) for instance in FLEET}
    assert xcom_result(dag_run, "select_fleet") == [
        {
            "project_id": WORKLOAD,
            "zone": instance.split("/")[0],
            "name": instance.split("/")[1],
            "source_instance": f"projects/{WORKLOAD}/zones/{instance.replace('/', '/instances/')}",
            "labels": {"backup": "nightly"},
            "status": "RUNNING",
        }
        for instance in sorted(FLEET)
    ]
    assert fleet.machine_images(WORKLOAD) == []  # nothing in the workload project
    # grandfather-father-son (7 days, 4 ISO weeks, 12 months, 3 years): the new image and old-1..6 are the
    # dailies (old-n is 2026-05-20 minus n days); old-7 (Wednesday 13 May) and old-8 (Tuesday 12 May) are
    # neither a daily nor the newest of their ISO week (old-3, Sunday 17 May) nor of May (old-1)
    expected_deleted = {"web-1-old-7", "web-1-old-8"}
    result = xcom_result(dag_run, "prune_old_images")
    assert set(result["deleted"]) == expected_deleted
    assert result["not_ready"] == ["db-1-broken"]
    survivors = names(fleet, BACKUPS)
    assert new_images <= survivors
    assert {"web-2-by-hand", "db-1-broken", "web-1-other-dag"} <= survivors
    assert not expected_deleted & survivors
    assert len(survivors) == 11 + 3 - 2

    for image in fleet.machine_images(BACKUPS):
        if image["name"] in new_images:
            labels = image["labels"]
            assert labels["managed-by"] == "airflow" and labels["backup"] == "nightly"
            assert labels["airflow-dag"] == "example_nightly_backup"
            assert f"/projects/{WORKLOAD}/zones/" in image["sourceInstance"]

    coverage = xcom_result(dag_run, "check_coverage")
    assert (coverage["checked"], coverage["ok"], coverage["backup_project_id"]) == (3, 3, BACKUPS)
    assert {row["newest_image"] for row in coverage["rows"]} == new_images

    inserts, deletes = fleet.count("machineImages.insert"), fleet.count("machineImages.delete")
    second = load_dag("example_nightly_backup").test(logical_date=today, run_after=today)  # a clear: nothing new
    assert task_states(second) == states
    assert xcom_result(second, "prune_old_images")["deleted"] == []
    assert names(fleet, BACKUPS) == survivors
    assert fleet.count("machineImages.delete") == deletes
    replayed = [r.query["requestId"] for r in fleet.requests if r.action == "machineImages.insert"]
    assert len(replayed) == inserts + 3 and set(replayed[inserts:]) == set(replayed[:inserts])


def test_nightly_backup_coverage_fails_naming_an_instance_whose_backup_failed(fleet: ComputeEngineEmulator) -> None:
    # every insert fails for good (a permanent error: no retry)
    fleet.inject(Fault(kind="operation_error", action="machineImages.insert", times=3, error_code="QUOTA_EXCEEDED"))
    dag_run = run("example_nightly_backup")
    states = task_states(dag_run)
    assert states["check_coverage"] == "failed"  # ran although a backup failed (trigger_rule all_done)
    coverage = xcom_result(dag_run, "check_coverage")
    assert coverage is None  # failed: no return value ...
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:  # ... but the table is in the "coverage" XCom
        row = session.execute(
            XComModel.get_many(
                key="coverage", run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids="check_coverage"
            ).with_only_columns(XComModel.value)
        ).first()
    table = XComModel.deserialize_value(row)
    assert (table["checked"], table["ok"]) == (3, 0)
    # web-1 has only older images (stale); web-2 and db-1 have none READY in the backup project (missing)
    assert table["stale"] == [f"projects/{WORKLOAD}/zones/us-central1-a/instances/web-1"]
    assert table["missing"] == [
        f"projects/{WORKLOAD}/zones/us-central1-a/instances/web-2",
        f"projects/{WORKLOAD}/zones/us-east1-b/instances/db-1",
    ]


def test_nightly_backup_after_dropped_answers_makes_one_image_per_instance(fleet: ComputeEngineEmulator) -> None:
    """Every insert is accepted, then its answer is lost: the re-sent request carries the same requestId,
    so the backup project ends with exactly one new image per selected instance."""
    fleet.inject(Fault(kind="accept_then_drop", action="machineImages.insert", times=3))
    dag_run = run("example_nightly_backup")
    assert task_states(dag_run)["backup"] == ["success"] * len(FLEET)
    inserts = [r for r in fleet.requests if r.action == "machineImages.insert"]
    assert len(inserts) == 6 and len({r.query["requestId"] for r in inserts}) == 3  # each sent twice
    new = [i for i in fleet.machine_images(BACKUPS) if "-20260520-" in i["name"]]
    assert sorted(i["name"] for i in new) == sorted(nightly_name(instance) for instance in FLEET)
    assert len({i["sourceInstance"] for i in new}) == 3 and all(i["status"] == "READY" for i in new)


def nightly_asset_events(dag_run) -> dict[str, tuple[str, dict[str, Any]]]:  # type: ignore[no-untyped-def]
    """The asset events of a run of the nightly example: image name -> (asset URI, extra)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetModel.uri, AssetEvent.extra)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetEvent.source_dag_id == dag_run.dag_id, AssetEvent.source_run_id == dag_run.run_id)
        ).all()
    return {extra["name"]: (uri, extra) for uri, extra in rows}


def test_nightly_backup_emits_one_asset_event_per_image_on_its_instance_s_asset(fleet: ComputeEngineEmulator) -> None:
    """Each mapped backup task fires only the asset of the instance whose image it made, in the backup
    project the run used (issue 24 item 5: a per-instance outlet on a mapped task fired for every image)."""
    events = nightly_asset_events(run("example_nightly_backup"))
    assert {name: uri for name, (uri, _) in events.items()} == {
        nightly_name(
            instance
        ): f"gce-machine-image://{BACKUPS}/projects/{WORKLOAD}/zones/{instance.replace('/', '/instances/')}"
        for instance in FLEET
    }
    by_name = {name: extra for name, (_, extra) in events.items()}
    web1 = by_name[nightly_name(FLEET[0])]
    image = next(i for i in fleet.machine_images(BACKUPS) if i["name"] == nightly_name(FLEET[0]))
    assert web1["self_link"] == image["selfLink"]
    assert web1["source_instance"] == image["sourceInstance"]
    assert web1["total_storage_bytes"] == int(image["totalStorageBytes"])
    assert len(web1["request_id"]) == 36


def test_nightly_backup_s_assets_follow_the_backup_project_param(fleet: ComputeEngineEmulator) -> None:
    fleet.add_project("vault-backups")
    events = nightly_asset_events(run("example_nightly_backup", backup_project="vault-backups"))
    assert len(events) == len(FLEET)
    assert all(uri.startswith("gce-machine-image://vault-backups/projects/") for uri, _ in events.values())
    assert all(extra["project_id"] == "vault-backups" for _, extra in events.values())


def test_image_owned_by_an_earlier_try_is_not_a_conflict_for_if_exists_fail(
    gcp_connection: ComputeEngineEmulator,
) -> None:
    # the first try made the image; the server then forgot the requestId: the retry gets a 409
    assert task_states(run("ami_test_insert_fail_if_exists")) == {"create": "success"}
    gcp_connection.forget_request_ids()
    dag_run = run("ami_test_insert_fail_if_exists")
    assert task_states(dag_run) == {"create": "success"}
    assert xcom_result(dag_run, "create")["reused"] is True
    assert len(gcp_connection.machine_images(PROJECT)) == 1


# ---------------------------------------------------------------- examples and provider registration


def test_every_example_dag_loads_without_import_errors() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO_ROOT / "example_dags"))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {
        "example_machine_image",
        "example_fleet_backup",
        "example_machine_image_sensor",
        "example_nightly_backup",
        "example_pipeline_new_instance",
        "example_react_to_new_images",
        "example_restore_drill",
    }
    assert (DAGS_FOLDER / "example_nightly_backup.py").exists()


def test_airflow_lists_the_provider_and_its_link() -> None:
    def airflow(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "airflow", "providers", *args], capture_output=True, text=True, check=True
        )
        return done.stdout

    assert "airflow-machine-images" in airflow("list")
    assert "airflow_machine_images.links.MachineImageLink" in airflow("links")
