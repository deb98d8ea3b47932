"""Restore "the newest READY image of an instance" without code (issue 24 item 3), through dag.test()
against the emulator: the image is chosen at run time by one listing and named in the XCom."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.conftest import PROJECT, SOURCE, run_dag, task_states, xcom_result

if TYPE_CHECKING:
    from airflow_machine_images.emulator import ComputeEngineEmulator

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

BACKUPS = "backup-project"
NOW = datetime.now(timezone.utc)


def seed(emulator: ComputeEngineEmulator, project: str = PROJECT) -> None:
    """web-1's images: the newest are UPLOADING and INVALID (not restorable), the newest READY is web-1-new; a newer
    image of another instance, and a newer READY one carrying other labels, must not be chosen."""
    emulator.add_instance("us-east1-b/db-1")
    images: list[tuple[str, str, str, int, dict[str, str]]] = [
        ("web-1-older", SOURCE, "READY", 9, {"backup": "nightly"}),
        ("web-1-new", SOURCE, "READY", 2, {"backup": "nightly"}),
        ("web-1-adhoc", SOURCE, "READY", 1, {"backup": "adhoc"}),
        ("web-1-uploading", SOURCE, "UPLOADING", 0, {"backup": "nightly"}),
        ("web-1-invalid", SOURCE, "INVALID", 0, {"backup": "nightly"}),
        ("db-1-newest", "us-east1-b/db-1", "READY", 0, {"backup": "nightly"}),
    ]
    for name, source, status, days_ago, labels in images:
        emulator.add_machine_image(
            name,
            source_instance=f"projects/{PROJECT}/zones/{source.replace('/', '/instances/')}",
            project=project,
            status=status,
            creation_timestamp=NOW - timedelta(days=days_ago, minutes=1),
            labels=labels,
        )


def sent(emulator: ComputeEngineEmulator, action: str) -> list[Any]:
    return [request for request in emulator.requests if request.action == action]


@pytest.mark.parametrize("dag_id", ["ami_test_restore_by_instance", "ami_test_restore_by_instance_deferrable"])
def test_the_newest_ready_image_of_the_instance_is_restored_and_named_in_the_xcom(
    gcp_connection: ComputeEngineEmulator, dag_id: str
) -> None:
    seed(gcp_connection)
    dag_run = run_dag(dag_id)
    assert task_states(dag_run) == {"restore": "success"}
    restored = xcom_result(dag_run, "restore")
    assert restored["status"] == "RUNNING"
    assert restored["source_machine_image"] == f"projects/{PROJECT}/global/machineImages/web-1-adhoc"
    chosen = restored["chosen_image"]
    assert chosen["name"] == "web-1-adhoc" and chosen["project_id"] == PROJECT
    assert chosen["for"] == f"projects/{PROJECT}/zones/us-central1-a/instances/web-1"
    assert len(sent(gcp_connection, "machineImages.list")) == 1  # chosen once, also across the deferral
    assert len(sent(gcp_connection, "instances.insert")) == 1


def test_images_of_a_backup_project_are_chosen_there(
    gcp_connection: ComputeEngineEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    seed(gcp_connection, project=BACKUPS)
    bare = run_dag("ami_test_restore_by_instance_nightly", run_conf={"image_project": BACKUPS})
    assert task_states(bare) == {"restore": "failed"}  # across projects without an account: before any request
    assert "Invalid service_accounts: is required for a restore across projects" in capfd.readouterr().out
    assert gcp_connection.requests == []
    dag_run = run_dag("ami_test_restore_by_instance_across_projects", run_conf={"image_project": BACKUPS})
    assert task_states(dag_run) == {"restore": "success"}
    restored = xcom_result(dag_run, "restore")
    assert restored["chosen_image"]["name"] == "web-1-new" and restored["chosen_image"]["project_id"] == BACKUPS
    assert restored["source_machine_image"] == f"projects/{BACKUPS}/global/machineImages/web-1-new"
    assert [r.path.split("/projects/")[1].split("/")[0] for r in sent(gcp_connection, "machineImages.list")] == [
        BACKUPS
    ]


def test_the_label_selector_skips_newer_images_without_the_labels(gcp_connection: ComputeEngineEmulator) -> None:
    seed(gcp_connection)
    dag_run = run_dag("ami_test_restore_by_instance_nightly")
    assert task_states(dag_run) == {"restore": "success"}
    restored = xcom_result(dag_run, "restore")
    assert restored["chosen_image"]["name"] == "web-1-new"
    assert restored["chosen_image"]["labels"] == {"backup": "nightly"}


def test_no_ready_image_fails_without_making_anything(
    gcp_connection: ComputeEngineEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    gcp_connection.add_machine_image("web-1-invalid", source_instance=SOURCE, status="INVALID")
    dag_run = run_dag("ami_test_restore_by_instance")
    assert task_states(dag_run) == {"restore": "failed"}
    assert (
        "No READY machine image of projects/test-project/zones/us-central1-a/instances/web-1" in capfd.readouterr().out
    )
    assert sent(gcp_connection, "instances.insert") == []


def test_the_list_output_expanded_as_it_is_fails_pointing_to_backup_kwargs(
    gcp_connection: ComputeEngineEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    gcp_connection.add_instance("us-central1-b/web-2", labels={"backup": "nightly"})
    dag_run = run_dag("ami_test_list_expanded_as_is")
    assert task_states(dag_run) == {"select": "success", "backup": ["failed"]}  # a state per mapped instance
    out = capfd.readouterr().out
    assert "backup_kwargs" in out and "Invalid zone" in out
    assert sent(gcp_connection, "machineImages.insert") == []
