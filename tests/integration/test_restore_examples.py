"""The restore drill and the new-instance pipeline examples run green by ``dag.test()`` against the emulator."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_machine_images.emulator import ComputeEngineEmulator, Fault
from airflow_machine_images.hooks import ComputeEngineMachineImageHook
from tests.integration.conftest import PROJECT, SOURCE, load_dag, task_states, xcom_result

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

ZONE = "us-central1-a"


def zone_operations() -> list[dict[str, Any]]:
    hook = ComputeEngineMachineImageHook()
    return hook.execute_call(hook.api.list_operations(PROJECT, zone=ZONE)).get("items", [])


@pytest.fixture
def backups(gcp_connection: ComputeEngineEmulator) -> ComputeEngineEmulator:
    """Three READY images of web-1 (newest: web-1-new) and a newer one of another instance."""
    now = datetime.now(timezone.utc)
    gcp_connection.configure_serial_console(boot_seconds=0)  # the boot log is there once the VM is RUNNING
    gcp_connection.add_instance("us-east1-b/db-1")
    for name, days_ago in (("web-1-old", 3), ("web-1-new", 1), ("web-1-older", 9)):
        gcp_connection.add_machine_image(
            name, source_instance=SOURCE, creation_timestamp=now - timedelta(days=days_ago)
        )
    gcp_connection.add_machine_image("db-1-newest", source_instance="us-east1-b/db-1", creation_timestamp=now)
    return gcp_connection


def test_restore_drill_restores_the_newest_image_checks_it_and_deletes_it(backups: ComputeEngineEmulator) -> None:
    dag_run = load_dag("example_restore_drill").test()
    assert task_states(dag_run) == {
        "restore": "success",
        "verify_boot": "success",
        "delete_scratch_instance": "success",
        "drill_passed": "success",
    }
    restored = xcom_result(dag_run, "restore")
    assert restored["source_machine_image"] == f"projects/{PROJECT}/global/machineImages/web-1-new"
    assert restored["chosen_image"]["name"] == "web-1-new"  # the newest READY of web-1, chosen by the restore
    assert restored["status"] == "RUNNING" and restored["name"].startswith("drill-")
    deleted = xcom_result(dag_run, "delete_scratch_instance")
    assert deleted["deleted"] is True and deleted["id"] == restored["id"]
    assert sorted(op["operationType"] for op in zone_operations()) == ["delete", "insert"]
    booted = xcom_result(dag_run, "verify_boot")
    assert booted["booted"] is True and booted["instance"] == restored["id"]  # read by id: this run's VM
    assert "Multi-User System" in booted["matched_line"]


def test_restore_drill_of_an_image_that_panics_fails_naming_the_console_and_cleans_up(
    backups: ComputeEngineEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    # RUNNING, but the kernel panics: the drill fails, quoting the console; the scratch VM is deleted anyway.
    backups.configure_serial_console(default_log="panic")
    dag_run = load_dag("example_restore_drill").test()
    states = task_states(dag_run)
    assert states["restore"] == "success" and states["verify_boot"] == "failed"
    assert states["delete_scratch_instance"] == "success" and states["drill_passed"] == "upstream_failed"
    output = capfd.readouterr()
    assert "Kernel panic - not syncing: VFS: Unable to mount root fs" in output.out + output.err
    assert [i for i in backups.instances(PROJECT) if i["name"].startswith("drill-")] == []


def test_restore_drill_of_a_protected_vm_with_a_surviving_disk_leaves_no_instance_and_no_disk(
    gcp_connection: ComputeEngineEmulator,
) -> None:
    gcp_connection.add_instance(
        f"{ZONE}/db-1", disks=[{"autoDelete": True}, {"autoDelete": False}], deletion_protection=True
    )
    gcp_connection.add_machine_image("db-1-new", source_instance=f"{ZONE}/db-1")
    gcp_connection.configure_serial_console(boot_seconds=0)
    dag_run = load_dag("example_restore_drill").test(run_conf={"source_instance": f"{ZONE}/db-1"})
    assert str(dag_run.state) == "success"
    restored, deleted = xcom_result(dag_run, "restore"), xcom_result(dag_run, "delete_scratch_instance")
    assert restored["deletion_protection"] is False  # the drill's scratch VM does not inherit it
    assert deleted["deleted"] is True and deleted["disks_deleted"] == [f"{restored['name']}-1"]
    leftovers = [d["name"] for d in gcp_connection.disks(PROJECT) if d["name"].startswith("drill-")]
    instances = [i["name"] for i in gcp_connection.instances(PROJECT) if i["name"].startswith("drill-")]
    assert leftovers == [] and instances == []


def test_a_failed_restore_still_cleans_up_and_fails_the_run(backups: ComputeEngineEmulator) -> None:
    # The insert operation fails on try 1 and try 2 (retries=1): the drill fails, and the delete still runs.
    backups.inject(Fault(kind="operation_error", action="instances.insert", times=None))
    dag_run = load_dag("example_restore_drill").test()
    states = task_states(dag_run)
    assert states["restore"] == "failed" and states["delete_scratch_instance"] == "success"
    assert states["drill_passed"] == "upstream_failed"
    assert str(dag_run.state) == "failed"
    assert [op["operationType"] for op in zone_operations()].count("delete") == 0  # nothing was left to delete


def test_pipeline_example_images_the_golden_instance_and_starts_a_canary(
    gcp_connection: ComputeEngineEmulator,
) -> None:
    gcp_connection.add_instance(f"{ZONE}/golden-1")
    dag_run = load_dag("example_pipeline_new_instance").test()
    assert task_states(dag_run) == {
        "image_golden_instance": "success",
        "start_canary_from_image": "success",
        "smoke_test": "success",
    }
    image, canary = xcom_result(dag_run, "image_golden_instance"), xcom_result(dag_run, "start_canary_from_image")
    assert canary["status"] == "RUNNING" and canary["name"].startswith("canary-")
    assert canary["source_machine_image"] == f"projects/{PROJECT}/global/machineImages/{image['name']}"
    instance = ComputeEngineMachineImageHook().get_instance(zone=ZONE, name=canary["name"])
    assert instance["labels"]["role"] == "canary" and instance["labels"]["restored-from"] == image["name"]
