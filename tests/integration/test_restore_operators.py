"""The restore and delete-restored operators run by real Airflow (``dag.test()``) against the emulator over HTTP."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_machine_images.emulator import ComputeEngineEmulator, Fault
from airflow_machine_images.exceptions import ResourceNotFoundError
from airflow_machine_images.hooks import ComputeEngineMachineImageHook
from tests.integration.conftest import PROJECT, SOURCE, load_dag, task_states, xcom_result

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

LOGICAL_DATE = datetime(2026, 3, 1, tzinfo=timezone.utc)
ZONE = "us-central1-a"


@pytest.fixture
def emulator_with_image(gcp_connection: ComputeEngineEmulator) -> ComputeEngineEmulator:
    """The emulator with one READY machine image, ``img-a``, of the source instance."""
    gcp_connection.add_machine_image("img-a", source_instance=SOURCE)
    return gcp_connection


def run(dag_id: str, **conf: Any):  # type: ignore[no-untyped-def]
    dag = load_dag(dag_id)
    return dag.test(logical_date=LOGICAL_DATE, run_after=LOGICAL_DATE, run_conf=conf or None)


def sent(emulator: ComputeEngineEmulator, action: str) -> list:
    return [r for r in emulator.requests if r.action == action]


def instance(name: str = "restored-1") -> dict[str, Any] | None:
    try:
        return ComputeEngineMachineImageHook().get_instance(zone=ZONE, name=name)
    except ResourceNotFoundError:
        return None


def zone_operations(operation_type: str) -> list[dict[str, Any]]:
    """The zonal operations of that type the server made: one per instance created (or deleted)."""
    hook = ComputeEngineMachineImageHook()
    listing = hook.execute_call(hook.api.list_operations(PROJECT, zone=ZONE))
    return [op for op in listing.get("items", []) if op["operationType"] == operation_type]


def test_restore_makes_a_running_labelled_instance(emulator_with_image: ComputeEngineEmulator) -> None:
    dag_run = run("ami_test_restore")
    actions = [r.action for r in emulator_with_image.requests]
    assert task_states(dag_run) == {"restore": "success"}
    result = xcom_result(dag_run, "restore")
    made = instance()
    assert made is not None and made["status"] == "RUNNING"
    assert {k: result[k] for k in ("project_id", "zone", "name", "status", "reused", "replayed")} == {
        "project_id": PROJECT,
        "zone": ZONE,
        "name": "restored-1",
        "status": "RUNNING",
        "reused": False,
        "replayed": False,
    }
    assert result["self_link"] == made["selfLink"]
    assert result["source_machine_image"] == f"projects/{PROJECT}/global/machineImages/img-a"
    assert made["sourceMachineImage"].endswith(result["source_machine_image"])
    (insert,) = sent(emulator_with_image, "instances.insert")
    assert result["request_id"] == insert.query["requestId"]
    assert insert.query["sourceMachineImage"] == insert.body["sourceMachineImage"] == result["source_machine_image"]
    assert result["operation_name"] == zone_operations("insert")[0]["name"]
    labels = made["labels"]
    assert labels["restored-by"] == "airflow-machine-images" and labels["restored-from"] == "img-a"
    assert labels["purpose"] == "drill" and labels["managed-by"] == "airflow" and "airflow-ti" in labels
    # insert, one zoneOperations.wait long-poll, the read-back: no polling loop
    assert actions == [
        "instances.insert",
        "zoneOperations.wait",
        "instances.get",
    ]


def test_restore_v1_with_overrides(emulator_with_image: ComputeEngineEmulator) -> None:
    assert task_states(run("ami_test_restore_v1")) == {"restore": "success"}
    (insert,) = sent(emulator_with_image, "instances.insert")
    assert insert.path.startswith("/compute/v1/")
    assert insert.body["machineType"] == f"zones/{ZONE}/machineTypes/e2-standard-2"
    assert insert.body["metadata"] == {"items": [{"key": "role", "value": "drill"}]}
    made = instance()
    assert made is not None and made["machineType"].endswith("/machineTypes/e2-standard-2")


def test_rerunning_the_same_task_instance_makes_no_second_instance(
    emulator_with_image: ComputeEngineEmulator,
) -> None:
    first = xcom_result(run("ami_test_restore"), "restore")
    second = xcom_result(run("ami_test_restore"), "restore")  # same run id: like a clear
    assert second["request_id"] == first["request_id"]
    assert second["operation_name"] == first["operation_name"]  # replayed by the server
    assert len(zone_operations("insert")) == 1


def test_lost_insert_response_leaves_exactly_one_instance(emulator_with_image: ComputeEngineEmulator) -> None:
    emulator_with_image.inject(Fault(kind="accept_then_drop", action="instances.insert"))
    dag_run = run("ami_test_restore_retries")
    assert task_states(dag_run) == {"restore": "success"}
    inserts = sent(emulator_with_image, "instances.insert")
    assert len(inserts) == 2 and inserts[0].status is None
    assert len({r.query["requestId"] for r in inserts}) == 1
    assert len(zone_operations("insert")) == 1
    assert xcom_result(dag_run, "restore")["status"] == "RUNNING"


def test_failed_operation_is_retried_with_one_new_instance(emulator_with_image: ComputeEngineEmulator) -> None:
    emulator_with_image.inject(Fault(kind="operation_error", action="instances.insert", times=1))
    dag_run = run("ami_test_restore_retries")
    assert task_states(dag_run) == {"restore": "success"}
    (ti,) = dag_run.get_task_instances()
    assert ti.try_number == 2
    ids = [r.query["requestId"] for r in sent(emulator_with_image, "instances.insert")]
    assert len(ids) == 3 and ids[1] == ids[0] and ids[2] != ids[0]  # try 2 replays, then a new generation
    assert [op.get("error") is None for op in zone_operations("insert")] == [False, True]
    made = instance()
    assert made is not None and made["status"] == "RUNNING"


@pytest.mark.parametrize(
    ("dag_id", "conf"),
    [
        ("ami_test_restore", {"name": "Bad_Name"}),
        ("ami_test_restore", {"zone": "us central"}),
        ("ami_test_restore", {"zone": "us-central1"}),  # a region: refused by us, not answered 400 by the API
        ("ami_test_restore", {"image": "projects/x/global/images/img-a"}),
        ("ami_test_restore_bad_body", {}),
    ],
)
def test_bad_input_fails_before_any_request(
    emulator_with_image: ComputeEngineEmulator, dag_id: str, conf: dict[str, str]
) -> None:
    dag_run = run(dag_id, **conf)
    assert task_states(dag_run) == {"restore": "failed"}
    assert emulator_with_image.requests == []


def test_restore_deferrable(emulator_with_image: ComputeEngineEmulator) -> None:
    dag_run = run("ami_test_restore_deferrable")
    assert task_states(dag_run) == {"restore": "success"}
    result = xcom_result(dag_run, "restore")
    assert result["status"] == "RUNNING" and not result["reused"]
    assert len(sent(emulator_with_image, "instances.insert")) == 1
    assert len(zone_operations("insert")) == 1
    waited = {r.action for r in emulator_with_image.requests}
    assert waited & {"zoneOperations.wait", "zoneOperations.list"}  # the trigger waited on the zonal operation
    assert not waited & {"globalOperations.wait", "globalOperations.list"}


def test_deferrable_restore_after_a_failed_operation_makes_one_new_instance(
    emulator_with_image: ComputeEngineEmulator,
) -> None:
    # The trigger reports the failed zonal operation; try 2 replays it, then submits the next generation.
    emulator_with_image.inject(Fault(kind="operation_error", action="instances.insert", times=1))
    dag_run = run("ami_test_restore_deferrable_retries")
    assert task_states(dag_run) == {"restore": "success"}
    (ti,) = dag_run.get_task_instances()
    assert ti.try_number == 2
    assert [op.get("error") is None for op in zone_operations("insert")] == [False, True]
    assert xcom_result(dag_run, "restore")["status"] == "RUNNING"


def test_restore_without_waiting_then_the_zonal_operation_sensor(emulator_with_image: ComputeEngineEmulator) -> None:
    dag_run = run("ami_test_restore_no_wait")
    assert task_states(dag_run) == {"restore": "success", "wait": "success"}
    started = xcom_result(dag_run, "restore")
    assert started["status"] == "PROVISIONING" and started["operation_name"].startswith("operation-")
    assert xcom_result(dag_run, "wait")["status"] == "DONE"
    made = instance()
    assert made is not None and made["status"] == "RUNNING"


def test_if_exists_reuse_refuses_an_instance_that_is_not_this_restore(
    emulator_with_image: ComputeEngineEmulator,
) -> None:
    emulator_with_image.add_instance(f"{ZONE}/restored-1")  # a production instance of that name
    assert task_states(run("ami_test_restore")) == {"restore": "failed"}
    existing = instance()
    assert existing is not None and "labels" not in existing
    assert zone_operations("insert") == []


def test_if_exists_reuse_adopts_an_earlier_restore_of_the_same_image(
    emulator_with_image: ComputeEngineEmulator,
) -> None:
    run("ami_test_restore")
    other_run = load_dag("ami_test_restore").test(run_conf=None)  # another run: another requestId, same name
    assert task_states(other_run) == {"restore": "success"}
    assert xcom_result(other_run, "restore")["reused"] is True
    assert len(zone_operations("insert")) == 1


def test_if_exists_fail_fails_for_an_instance_of_another_run(emulator_with_image: ComputeEngineEmulator) -> None:
    run("ami_test_restore")
    other_run = load_dag("ami_test_restore_fail_if_exists").test(run_conf=None)
    assert task_states(other_run) == {"restore": "failed"}


def test_delete_restored_deletes_the_restored_instance_and_is_idempotent(
    emulator_with_image: ComputeEngineEmulator,
) -> None:
    restored = xcom_result(run("ami_test_restore"), "restore")
    dag_run = run("ami_test_delete_restored")
    assert task_states(dag_run) == {"delete": "success"}
    result = xcom_result(dag_run, "delete")
    assert result["deleted"] is True and result["id"] == restored["id"]
    assert instance() is None
    (delete,) = sent(emulator_with_image, "instances.delete")
    assert delete.path.endswith(f"/instances/{restored['id']}")  # by the id whose labels were checked
    again = run("ami_test_delete_restored", name="restored-1")  # another run: already gone is success
    assert task_states(again) == {"delete": "success"}
    assert xcom_result(again, "delete")["deleted"] is False


@pytest.mark.parametrize("dag_id", ["ami_test_delete_restored_retries", "ami_test_delete_restored_deferrable"])
def test_delete_restored_refuses_an_instance_without_the_restore_labels(
    emulator_with_image: ComputeEngineEmulator, dag_id: str
) -> None:
    emulator_with_image.add_instance(f"{ZONE}/prod-1")
    dag_run = run(dag_id, name="prod-1")
    assert task_states(dag_run) == {"delete": "failed"}
    (ti,) = dag_run.get_task_instances()
    assert ti.try_number == 1  # a permanent error: never retried
    assert instance("prod-1") is not None
    assert sent(emulator_with_image, "instances.delete") == []


def test_delete_restored_deferrable(emulator_with_image: ComputeEngineEmulator) -> None:
    run("ami_test_restore")
    dag_run = run("ami_test_delete_restored_deferrable")
    assert task_states(dag_run) == {"delete": "success"}
    assert xcom_result(dag_run, "delete")["deleted"] is True
    assert instance() is None


def test_delete_restored_lost_response_deletes_once(emulator_with_image: ComputeEngineEmulator) -> None:
    run("ami_test_restore")
    emulator_with_image.inject(Fault(kind="accept_then_drop", action="instances.delete"))
    dag_run = run("ami_test_delete_restored_retries")
    assert task_states(dag_run) == {"delete": "success"}
    deletes = sent(emulator_with_image, "instances.delete")
    assert len(deletes) == 2 and deletes[0].status is None
    assert len({r.query["requestId"] for r in deletes}) == 1
    assert len(zone_operations("delete")) == 1
    assert instance() is None


@pytest.mark.parametrize("conf", [{"name": "Prod_1"}, {"zone": "us central"}, {"name": "x" * 64}])
def test_delete_restored_bad_input_fails_before_any_request(
    emulator_with_image: ComputeEngineEmulator, conf: dict[str, str]
) -> None:
    dag_run = run("ami_test_delete_restored_retries", **conf)
    assert task_states(dag_run) == {"delete": "failed"}
    (ti,) = dag_run.get_task_instances()
    assert ti.try_number == 1  # bad input stays bad: no retry
    assert emulator_with_image.requests == []


def test_delete_restored_without_waiting_then_the_zonal_operation_sensor(
    emulator_with_image: ComputeEngineEmulator,
) -> None:
    restored = xcom_result(run("ami_test_restore"), "restore")
    dag_run = run("ami_test_delete_restored_no_wait")
    assert task_states(dag_run) == {"delete": "success", "wait": "success"}
    started = xcom_result(dag_run, "delete")
    assert started["deleted"] is True and started["id"] == restored["id"]
    assert started["operation_name"].startswith("operation-")
    assert started["status"] in {"PENDING", "RUNNING"}  # the task returned without waiting
    assert xcom_result(dag_run, "wait")["status"] == "DONE"
    assert instance() is None
    assert len(zone_operations("delete")) == 1
