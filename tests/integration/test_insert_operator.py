"""The insert operator run by real Airflow (``dag.test()``) against the emulator over real HTTP."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_machine_images.emulator import ComputeEngineEmulator, Fault
from airflow_machine_images.hooks import ComputeEngineMachineImageHook
from tests.integration.conftest import PROJECT, load_dag, task_states, xcom_result

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

LOGICAL_DATE = datetime(2026, 3, 1, tzinfo=timezone.utc)

#: An operation failure that clears by itself and is not the per-source limit (which the task waits out).
INTERNAL_ERROR = {"error_code": "INTERNAL_ERROR", "error_message": "Internal error. Please try again."}


def run(dag_id: str, **conf: Any):  # type: ignore[no-untyped-def]
    dag = load_dag(dag_id)
    return dag.test(logical_date=LOGICAL_DATE, run_after=LOGICAL_DATE, run_conf=conf or None)


def inserts(emulator: ComputeEngineEmulator) -> list:
    return [r for r in emulator.requests if r.action == "machineImages.insert"]


def test_example_dag_creates_a_ready_image(gcp_connection: ComputeEngineEmulator) -> None:
    dag_run = run("example_machine_image")
    assert task_states(dag_run) == {"create_image": "success", "report": "success"}
    result = xcom_result(dag_run, "create_image")
    images = gcp_connection.machine_images(PROJECT)
    assert len(images) == 1
    image = images[0]
    assert result["name"] == image["name"]
    assert result["status"] == "READY"
    assert result["self_link"] == image["selfLink"]
    assert result["total_storage_bytes"] == int(image["totalStorageBytes"]) > 0
    assert result["operation_name"].startswith("operation-")
    assert result["request_id"] == inserts(gcp_connection)[0].query["requestId"]
    assert result["project_id"] == PROJECT
    assert "rawKey" not in str(result)


def test_rerunning_the_same_task_instance_makes_no_second_image(gcp_connection: ComputeEngineEmulator) -> None:
    first = xcom_result(run("ami_test_insert"), "create")
    second = xcom_result(run("ami_test_insert"), "create")  # same run id: like a clear or a retry
    assert second["request_id"] == first["request_id"]
    assert second["operation_name"] == first["operation_name"]  # the server replayed the operation
    assert len(gcp_connection.machine_images(PROJECT)) == 1
    assert {r.query["requestId"] for r in inserts(gcp_connection)} == {first["request_id"]}


def test_retry_at_try_two_sends_the_same_request_id_as_try_one(gcp_connection: ComputeEngineEmulator) -> None:
    # Try 1's insert operation fails on the server (a transient cause): Airflow runs try 2, which sends
    # try 1's requestId again, gets the failed operation back, and only then submits a new generation.
    gcp_connection.inject(Fault(kind="operation_error", action="machineImages.insert", times=1, **INTERNAL_ERROR))
    dag_run = run("ami_test_insert_retry")
    assert task_states(dag_run) == {"create": "success"}
    (ti,) = dag_run.get_task_instances()
    assert ti.try_number == 2
    sent = [r.query["requestId"] for r in inserts(gcp_connection)]
    assert len(sent) == 3, sent
    assert sent[1] == sent[0], f"try 2 sent requestId {sent[1]}, try 1 sent {sent[0]}"
    assert sent[2] != sent[0]  # the deliberate next generation, after the replayed failure
    result = xcom_result(dag_run, "create")
    assert result["request_id"] == sent[2]
    assert result["reused"] is False
    assert [op["clientOperationId"] for op in gcp_connection.operations(PROJECT)] == [sent[0], sent[2]]
    assert len(gcp_connection.machine_images(PROJECT)) == 1


def test_request_id_differs_per_image_name(gcp_connection: ComputeEngineEmulator) -> None:
    a = xcom_result(run("ami_test_insert", name="img-a"), "create")
    b = xcom_result(run("ami_test_insert", name="img-b"), "create")
    assert a["request_id"] != b["request_id"]
    assert sorted(i["name"] for i in gcp_connection.machine_images(PROJECT)) == ["img-a", "img-b"]


def test_lost_insert_response_leaves_exactly_one_image(gcp_connection: ComputeEngineEmulator) -> None:
    gcp_connection.inject(Fault(kind="accept_then_drop", action="machineImages.insert"))
    dag_run = run("ami_test_insert")
    assert task_states(dag_run) == {"create": "success"}
    sent = inserts(gcp_connection)
    assert len(sent) == 2 and sent[0].status is None
    assert len({r.query["requestId"] for r in sent}) == 1
    assert [i["name"] for i in gcp_connection.machine_images(PROJECT)] == ["img-a"]


def test_replayed_done_operation_of_a_deleted_image_is_resubmitted(gcp_connection: ComputeEngineEmulator) -> None:
    first = xcom_result(run("ami_test_insert"), "create")
    hook = ComputeEngineMachineImageHook()
    deletion = hook.delete_machine_image(name="img-a", request_id=str(uuid.uuid4()))
    hook.wait_for_operation(operation_name=deletion["name"], timeout=30)
    assert gcp_connection.machine_images(PROJECT) == []
    dag_run = run("ami_test_insert")
    assert task_states(dag_run) == {"create": "success"}
    second = xcom_result(dag_run, "create")
    assert second["status"] == "READY"
    assert second["request_id"] != first["request_id"]  # a deliberate new generation
    assert [i["name"] for i in gcp_connection.machine_images(PROJECT)] == ["img-a"]


def test_if_exists_reuse_accepts_an_image_from_the_same_source(gcp_connection: ComputeEngineEmulator) -> None:
    gcp_connection.add_machine_image("img-a", source_instance="us-central1-a/web-1")
    dag_run = run("ami_test_insert")
    assert task_states(dag_run) == {"create": "success"}
    result = xcom_result(dag_run, "create")
    assert result["reused"] is True
    assert result["status"] == "READY"
    assert [r.status for r in inserts(gcp_connection)] == [409]  # the 409 was taken at once, not retried


def test_if_exists_reuse_fails_for_another_source(gcp_connection: ComputeEngineEmulator) -> None:
    gcp_connection.add_instance("us-east1-b/db-1")
    gcp_connection.add_machine_image("img-a", source_instance="us-east1-b/db-1")
    assert task_states(run("ami_test_insert")) == {"create": "failed"}


def test_if_exists_fail_fails_on_any_existing_image(gcp_connection: ComputeEngineEmulator) -> None:
    gcp_connection.add_machine_image("img-a", source_instance="us-central1-a/web-1")
    assert task_states(run("ami_test_insert_fail_if_exists")) == {"create": "failed"}


def test_no_wait_returns_the_operation_for_a_sensor(gcp_connection: ComputeEngineEmulator) -> None:
    dag_run = run("ami_test_insert_no_wait")
    result = xcom_result(dag_run, "create")
    assert result["status"] == "CREATING"
    assert result["operation_name"].startswith("operation-")
    assert gcp_connection.count("globalOperations.wait") == 0


def test_no_wait_insert_answered_with_a_failed_operation_fails_the_task(
    gcp_connection: ComputeEngineEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    # Images of this instance take no time, so the insert's own answer is the operation, DONE with
    # its error: wait_for_completion=False must not turn that into an "accepted" summary.
    gcp_connection.add_instance("us-central1-a/quick-1", operation_seconds=0)
    gcp_connection.inject(
        Fault(
            kind="operation_error",
            action="machineImages.insert",
            error_code="ZONE_RESOURCE_POOL_EXHAUSTED",
            error_message="The zone does not have enough resources",
        )
    )
    dag_run = run("ami_test_insert_no_wait", source_instance="us-central1-a/quick-1")
    (operation,) = gcp_connection.operations(PROJECT)
    assert operation["status"] == "DONE" and operation["endTime"] == operation["insertTime"]
    result = xcom_result(dag_run, "create")
    assert task_states(dag_run) == {"create": "failed"}, f"the failed insert was reported as {result}"
    assert result is None
    task_log = capfd.readouterr().out
    assert "Task failed with exception" in task_log
    assert "ZONE_RESOURCE_POOL_EXHAUSTED: The zone does not have enough resources" in task_log
    assert gcp_connection.machine_images(PROJECT) == []


def test_failed_operation_fails_the_task(gcp_connection: ComputeEngineEmulator) -> None:
    gcp_connection.inject(Fault(kind="operation_error", action="machineImages.insert"))
    assert task_states(run("ami_test_insert")) == {"create": "failed"}
    assert gcp_connection.machine_images(PROJECT) == []


def test_four_failed_operations_end_in_one_image_on_the_fifth_try(gcp_connection: ComputeEngineEmulator) -> None:
    # Each of the first four new insert operations fails on the server (INTERNAL_ERROR; the per-source
    # limit's RESOURCE_OPERATION_RATE_EXCEEDED is waited out within the try instead: test_source_limit.py).
    # Every try replays the earlier tries' failures (one request each, their requestIds unchanged) and then
    # makes exactly one fresh create: the fifth try succeeds.
    gcp_connection.inject(Fault(kind="operation_error", action="machineImages.insert", times=4, **INTERNAL_ERROR))
    dag_run = run("ami_test_insert_retries_5")
    assert task_states(dag_run) == {"create": "success"}
    (ti,) = dag_run.get_task_instances()
    assert ti.try_number == 5
    operations = gcp_connection.operations(PROJECT)
    assert [op["status"] for op in operations] == ["DONE"] * 5
    assert [bool(op.get("error")) for op in operations] == [True, True, True, True, False]
    assert len({op["clientOperationId"] for op in operations}) == 5  # one generation per try
    sent = [r.query["requestId"] for r in inserts(gcp_connection)]
    assert len(sent) == 1 + 2 + 3 + 4 + 5  # try n replays n - 1 generations, then makes one
    images = gcp_connection.machine_images(PROJECT)
    assert [(i["name"], i["status"]) for i in images] == [("img-a", "READY")]
    assert xcom_result(dag_run, "create")["request_id"] == operations[-1]["clientOperationId"]


@pytest.mark.timeout(180)
def test_a_45_second_rate_limit_window_ends_in_one_image_without_airflow_retries(
    gcp_connection: ComputeEngineEmulator,
) -> None:
    # Every insert is answered 403 rateLimitExceeded (with its ErrorInfo) for 45 s after the first:
    # the per-minute quota refills only then (Compute Engine docs, "API rate limits"). The hook keeps
    # retrying for at least 65 s of back-off, one attempt per 5 to 10 s once past the first seconds.
    gcp_connection.inject(Fault(kind="rate_limit", action="machineImages.insert", duration_seconds=45))
    dag_run = run("ami_test_insert_no_retries")
    assert task_states(dag_run) == {"create": "success"}
    attempts = inserts(gcp_connection)
    assert [r.status for r in attempts[:-1]] == [403] * (len(attempts) - 1)
    assert attempts[-1].status == 200
    assert len(attempts) <= 16, len(attempts)
    assert attempts[-1].started - attempts[0].started >= 45
    images = gcp_connection.machine_images(PROJECT)
    assert [(i["name"], i["status"]) for i in images] == [("img-a", "READY")]
