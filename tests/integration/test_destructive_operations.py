"""Destructive operations you can trust (issue 22), through real Airflow (``dag.test()``) against the emulator.

One test per finding of the issue: a re-made image survives retention; a labelled but foreign instance
survives delete-restored while the DAG's own drill instance is deleted; a taken disk name fails the restore
once, naming the disk; a drill of a protected image leaves no instance and no disk; a restore by project
number succeeds. And: restores across projects and from key-protected images.
"""

from __future__ import annotations

import base64
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest

from airflow_machine_images.bodies.instance import restore_labels
from airflow_machine_images.emulator import Fault
from airflow_machine_images.exceptions import ResourceNotFoundError
from airflow_machine_images.hooks import ComputeEngineMachineImageHook
from tests.integration.conftest import PROJECT, SOURCE, load_dag, task_states, xcom_result

if TYPE_CHECKING:
    from airflow_machine_images.emulator import ComputeEngineEmulator, RecordedRequest

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

ZONE = "us-central1-a"
KEY = base64.b64encode(bytes(range(32))).decode()


def run(dag_id: str, **conf: Any):  # type: ignore[no-untyped-def]
    return load_dag(dag_id).test(run_conf=conf or None)


def sent(emulator: ComputeEngineEmulator, action: str) -> list[RecordedRequest]:
    return [r for r in emulator.requests if r.action == action]


def instance(name: str) -> dict[str, Any] | None:
    try:
        return ComputeEngineMachineImageHook().get_instance(zone=ZONE, name=name)
    except ResourceNotFoundError:
        return None


def disk_names(emulator: ComputeEngineEmulator, prefix: str) -> list[str]:
    return [d["name"] for d in emulator.disks(PROJECT) if d["name"].startswith(prefix)]


def try_number(dag_run: Any, task_id: str) -> int:
    (ti,) = [ti for ti in dag_run.get_task_instances() if ti.task_id == task_id]
    return int(ti.try_number)


# ---------------------------------------------------------------- 1. a re-made image survives retention


def test_an_image_re_made_under_a_planned_name_survives_retention(gcp_connection: ComputeEngineEmulator) -> None:
    emu = gcp_connection
    emu.add_instance("us-east1-b/db-1")
    old = datetime.now(timezone.utc) - timedelta(days=3)
    planned = {}
    for n, name in enumerate(("img-old", "img-mid", "img-new")):
        seeded = emu.add_machine_image(
            name, source_instance=SOURCE, labels={"managed-by": "airflow"}, creation_timestamp=old + timedelta(hours=n)
        )
        planned[name] = seeded["id"]
    remade: dict[str, Any] = {}

    def remake_once_gone() -> None:  # another pipeline makes its newest backup under the same name
        deadline = time.monotonic() + 30
        while emu.get_machine_image("img-old") is not None and time.monotonic() < deadline:
            time.sleep(0.005)
        remade.update(emu.add_machine_image("img-old", source_instance="us-east1-b/db-1", labels={"team": "db"}))

    def on_request(request: RecordedRequest) -> None:
        if request.action == "machineImages.delete" and request.path.endswith(planned["img-old"]):
            threading.Thread(target=remake_once_gone, daemon=True).start()

    emu.on_request = on_request
    # The delete's wait answers DONE 0.5 s late: the new image is made before the flow reads the name again.
    emu.inject(Fault(kind="slow", action="globalOperations.wait", delay_seconds=0.5, times=None))
    dag_run = load_dag("ami_test_retention").test(run_conf=None)
    emu.on_request = None
    assert task_states(dag_run) == {"prune": "success"}
    result = xcom_result(dag_run, "prune")
    assert result["deleted"] == ["img-mid", "img-old"]  # the images planned: by their ids
    survivor = emu.get_machine_image("img-old")
    assert remade and survivor is not None and survivor["id"] == remade["id"] != planned["img-old"]
    deleted_ids = sorted(r.path.rsplit("/", 1)[-1] for r in sent(emu, "machineImages.delete"))
    assert deleted_ids == sorted([planned["img-old"], planned["img-mid"]])  # never the re-made image's id


def test_retention_reports_images_it_did_not_make_and_leaves_them(gcp_connection: ComputeEngineEmulator) -> None:
    old = datetime.now(timezone.utc) - timedelta(days=3)
    for n in range(3):
        gcp_connection.add_machine_image(
            f"hand-{n}", source_instance=SOURCE, labels={"backup": "x"}, creation_timestamp=old + timedelta(hours=n)
        )
    gcp_connection.add_machine_image("ours-0", source_instance=SOURCE, labels={"managed-by": "airflow"})
    # ami_test_retention selects managed-by=airflow: the hand-made images are not even selected
    result = xcom_result(load_dag("ami_test_retention").test(run_conf=None), "prune")
    assert result["deleted"] == [] and result["unmanaged"] == []
    assert sent(gcp_connection, "machineImages.delete") == []


# ---------------------------------------------------------------- 2. ownership: own drill deleted, foreign refused


def test_a_labelled_but_foreign_instance_survives_while_the_dags_own_drill_instance_is_deleted(
    gcp_connection: ComputeEngineEmulator,
) -> None:
    emu = gcp_connection
    emu.add_machine_image("img-a", source_instance=SOURCE)
    # A production VM a disaster-recovery DAG restored months ago: it keeps the restore labels for life.
    dr = restore_labels("img-a", dag_id="disaster-recovery", restore_id="d" * 32)
    prod = emu.add_instance(f"{ZONE}/prod-web-1", labels={**dr, "airflow-dag": "disaster-recovery"})

    drill = run("ami_test_drill", name="drill-1")
    assert task_states(drill) == {"restore": "success", "delete": "success"}
    restored, deleted = xcom_result(drill, "restore"), xcom_result(drill, "delete")
    assert deleted["deleted"] is True and deleted["id"] == restored["id"] and instance("drill-1") is None
    assert len(restored["restore_id"]) == 32

    cleanup = run("ami_test_cleanup", name="prod-web-1")  # a name from dag_run.conf
    assert task_states(cleanup) == {"delete": "failed"}
    assert try_number(cleanup, "delete") == 1  # refused for good: never retried
    survivor = instance("prod-web-1")
    assert survivor is not None and survivor["id"] == prod["id"] and survivor["status"] == "RUNNING"
    assert [r.path.rsplit("/", 1)[-1] for r in sent(emu, "instances.delete")] == [restored["id"]]

    # The drill DAG itself refuses it too (its restore does not adopt another DAG's restore either).
    again = run("ami_test_drill", name="prod-web-1")
    assert task_states(again) == {"restore": "failed", "delete": "failed"}
    assert instance("prod-web-1") is not None and len(sent(emu, "instances.delete")) == 1


def test_the_refusal_names_the_owner_and_what_to_do(
    gcp_connection: ComputeEngineEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    dr = restore_labels("img-a", dag_id="disaster-recovery", restore_id="d" * 32)
    gcp_connection.add_instance(f"{ZONE}/prod-web-1", labels={**dr, "airflow-dag": "disaster-recovery"})
    run("ami_test_cleanup", name="prod-web-1")
    log = capfd.readouterr().out
    assert "Refusing to delete instance prod-web-1" in log
    assert "restored by another DAG (airflow-dag='disaster-recovery'), not by 'ami_test_cleanup'" in log
    assert "allow_dag_ids" in log and "restore_id" in log and "Nothing was deleted" in log


# ---------------------------------------------------------------- 3. a taken disk name fails once


def test_a_taken_disk_name_fails_the_restore_once_naming_the_disk(
    gcp_connection: ComputeEngineEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    emu = gcp_connection
    emu.add_machine_image("img-a", source_instance=SOURCE)
    leftover = emu.add_disk("drill-1", ZONE)  # left behind by an earlier instance of that name
    dag_run = run("ami_test_drill", name="drill-1")
    assert task_states(dag_run)["restore"] == "failed"
    assert try_number(dag_run, "restore") == 1  # permanent: retries=3 are not used
    assert len(sent(emu, "instances.insert")) == 1
    log = capfd.readouterr().out
    assert f"409 alreadyExists for projects/{PROJECT}/zones/{ZONE}/disks/drill-1" in log
    assert "gcloud compute disks delete drill-1 --zone us-central1-a" in log
    assert [d["id"] for d in emu.disks(PROJECT) if d["name"] == "drill-1"] == [leftover["id"]]  # left alone
    assert instance("drill-1") is None


# ---------------------------------------------------------------- 4. protected images, surviving disks


@pytest.mark.parametrize("dag_id", ["ami_test_drill", "ami_test_drill_inherit"])
def test_a_drill_of_a_protected_image_ends_with_no_instance_and_no_disk(
    gcp_connection: ComputeEngineEmulator, dag_id: str
) -> None:
    emu = gcp_connection
    emu.add_instance(f"{ZONE}/db-1", disks=[{"autoDelete": True}, {"autoDelete": False}], deletion_protection=True)
    emu.add_machine_image("img-db", source_instance=f"{ZONE}/db-1")
    dag_run = run(dag_id, name="drill-db", image="img-db")
    assert task_states(dag_run) == {"restore": "success", "delete": "success"}
    restored, deleted = xcom_result(dag_run, "restore"), xcom_result(dag_run, "delete")
    inherited = dag_id == "ami_test_drill_inherit"
    assert restored["deletion_protection"] is inherited  # default: a drill's instance is deletable
    assert restored["disks"] == [
        {"name": "drill-db", "auto_delete": True},
        {"name": "drill-db-1", "auto_delete": False},
    ]
    assert deleted["deleted"] is True and deleted["disks_deleted"] == ["drill-db-1"] and deleted["disks_kept"] == []
    assert instance("drill-db") is None
    assert disk_names(emu, "drill-db") == []
    assert len(sent(emu, "instances.setDeletionProtection")) == (1 if inherited else 0)
    (disk_delete,) = sent(emu, "disks.delete")
    assert disk_delete.path.rsplit("/", 1)[-1].isdigit()  # by the id read before the instance went


def test_a_disk_attached_later_is_kept_and_reported(gcp_connection: ComputeEngineEmulator) -> None:
    # An instance this DAG restored (its labels), with its own surviving disk and a data disk that existed
    # before it and was attached later: the restore's disk is deleted, the other one is somebody's data.
    emu = gcp_connection
    data = emu.add_disk("shared-data", ZONE)
    time.sleep(0.01)  # the data disk is older than the instance
    labels = restore_labels("img-a", dag_id="ami_test_cleanup", restore_id="c" * 32)
    emu.add_instance(
        f"{ZONE}/drill-7",
        labels=labels,
        disks=[{"autoDelete": True}, {"autoDelete": False}],
        attach_disks=["shared-data"],
    )
    dag_run = run("ami_test_cleanup", name="drill-7")
    assert task_states(dag_run) == {"delete": "success"}
    result = xcom_result(dag_run, "delete")
    assert result["disks_deleted"] == ["drill-7-1"]
    (kept,) = result["disks_kept"]
    assert kept["name"] == "shared-data" and "before the instance" in kept["why"]
    survivor = ComputeEngineMachineImageHook().get_disk(zone=ZONE, name="shared-data")
    assert survivor["id"] == data["id"] and "users" not in survivor
    assert disk_names(emu, "drill-7") == []


# ---------------------------------------------------------------- 5. canonical image names, projects, keys


def test_a_restore_by_project_number_succeeds(gcp_connection: ComputeEngineEmulator) -> None:
    gcp_connection.add_machine_image("img-a", source_instance=SOURCE)
    number = gcp_connection.project_number(PROJECT)
    dag_run = run("ami_test_drill", name="drill-n", image=f"projects/{number}/global/machineImages/img-a")
    assert task_states(dag_run) == {"restore": "success", "delete": "success"}
    restored = xcom_result(dag_run, "restore")
    assert restored["status"] == "RUNNING" and restored["source_machine_image"].startswith(f"projects/{number}/")
    assert len(sent(gcp_connection, "machineImages.get")) == 1  # the number resolved once, by the image itself
    assert len(sent(gcp_connection, "instances.insert")) == 1


def test_a_restore_across_projects_is_refused_before_any_request_unless_it_replaces_the_image_s_identity(
    gcp_connection: ComputeEngineEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    emu = gcp_connection
    emu.add_instance("projects/backups/zones/us-central1-a/instances/vault-1")
    emu.add_machine_image(
        "img-x", source_instance="projects/backups/zones/us-central1-a/instances/vault-1", project="backups"
    )
    image = "projects/backups/global/machineImages/img-x"
    bare = run("ami_test_restore_across_projects_bare", name="drill-x", image=image)
    assert task_states(bare) == {"restore": "failed"} and try_number(bare, "restore") == 1
    assert emu.requests == []  # before any request
    assert "Invalid service_accounts: is required for a restore across projects" in capfd.readouterr().out
    good = run("ami_test_restore_across_projects", name="drill-x", image=image)
    assert task_states(good) == {"restore": "success"}
    made = instance("drill-x")
    assert made is not None and made["serviceAccounts"][0]["email"].startswith("drills@")


def test_a_restore_of_a_key_protected_image_needs_its_key_and_never_shows_it(
    gcp_connection: ComputeEngineEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    hook = ComputeEngineMachineImageHook()
    operation = hook.insert_machine_image(
        body={"name": "img-k", "machineImageEncryptionKey": {"rawKey": KEY}},
        source_instance=f"projects/{PROJECT}/zones/{ZONE}/instances/web-1",
        request_id="6b3c1a52-43a3-4bc5-8c8c-1f6a0a1c0d01",
    )
    hook.wait_for_operation(operation_name=operation["name"], timeout=30)
    without = run("ami_test_restore_csek", name="drill-k", image="img-k")  # an empty key: refused before sending
    assert task_states(without) == {"restore": "failed"} and sent(gcp_connection, "instances.insert") == []
    with_key = run("ami_test_restore_csek", name="drill-k", image="img-k", raw_key=KEY)
    assert task_states(with_key) == {"restore": "success"}
    result = xcom_result(with_key, "restore")
    assert KEY not in str(result)
    assert KEY not in capfd.readouterr().out
    (insert,) = sent(gcp_connection, "instances.insert")
    assert insert.body is not None and insert.body["sourceMachineImageEncryptionKey"]["rawKey"] == "[redacted]"
