"""Deferrable operator and the operator + sensor pairs, run by real Airflow (``dag.test()``).

``dag.test()`` runs a deferred task's trigger in-process, then resumes the task with the event, as
the triggerer would. Sensors in these DAGs have an hour's timeout, so a sensor that waited for its
timeout instead of failing fast would be stopped by the test timeout, never pass.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_machine_images.emulator import ComputeEngineEmulator, Fault
from tests.integration.conftest import PROJECT, load_dag, run_dag, task_states, xcom_result

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

LOGICAL_DATE = datetime(2026, 4, 1, tzinfo=timezone.utc)
SENSOR_DAGS = [
    "ami_test_operation_sensor_deferrable",
    "ami_test_operation_sensor_reschedule",
    "ami_test_operation_sensor_poke",
    "ami_test_image_sensor_deferrable",
    "ami_test_image_sensor_reschedule",
]


def run(dag_id: str, **conf: Any):  # type: ignore[no-untyped-def]
    return run_dag(dag_id, LOGICAL_DATE, conf or None)


def fail_next_insert(emulator: ComputeEngineEmulator) -> None:
    emulator.inject(
        Fault(
            kind="operation_error",
            action="machineImages.insert",
            error_code="ZONE_RESOURCE_POOL_EXHAUSTED",
            error_message="The zone does not have enough resources available",
        )
    )


def test_deferrable_operator_succeeds(gcp_connection: ComputeEngineEmulator, capfd: pytest.CaptureFixture) -> None:
    dag_run = run("ami_test_deferrable_operator")
    assert task_states(dag_run) == {"create": "success"}
    result = xcom_result(dag_run, "create")
    assert result["status"] == "READY"
    assert result["self_link"] == gcp_connection.machine_images(PROJECT)[0]["selfLink"]
    output = capfd.readouterr()
    assert "Deferring until operation" in output.out + output.err


def test_deferrable_operator_fails_with_the_operation_error(
    gcp_connection: ComputeEngineEmulator, capfd: pytest.CaptureFixture
) -> None:
    fail_next_insert(gcp_connection)
    dag_run = run("ami_test_deferrable_operator")
    assert task_states(dag_run) == {"create": "failed"}
    output = capfd.readouterr()
    assert "ZONE_RESOURCE_POOL_EXHAUSTED" in output.out + output.err


@pytest.mark.parametrize("dag_id", SENSOR_DAGS)
def test_sensor_succeeds(gcp_connection: ComputeEngineEmulator, dag_id: str) -> None:
    dag_run = run(dag_id)
    assert task_states(dag_run) == {"create": "success", "wait": "success"}
    waited = xcom_result(dag_run, "wait")
    image = gcp_connection.machine_images(PROJECT)[0]
    if "operation" in dag_id:
        assert waited["status"] == "DONE"
        assert waited["target_link"] == image["selfLink"]
    else:
        assert waited["status"] == "READY"
        assert waited["self_link"] == image["selfLink"]


@pytest.mark.parametrize("dag_id", [d for d in SENSOR_DAGS if "operation" in d])
def test_operation_sensor_fails_fast_with_the_operation_error(
    gcp_connection: ComputeEngineEmulator, capfd: pytest.CaptureFixture, dag_id: str
) -> None:
    fail_next_insert(gcp_connection)
    dag_run = run(dag_id)
    assert task_states(dag_run) == {"create": "success", "wait": "failed"}
    output = capfd.readouterr()
    assert "ZONE_RESOURCE_POOL_EXHAUSTED" in output.out + output.err
    assert "enough resources" in output.out + output.err


@pytest.mark.parametrize("dag_id", [d for d in SENSOR_DAGS if "image" in d])
def test_image_sensor_fails_fast_on_an_invalid_image(
    gcp_connection: ComputeEngineEmulator, capfd: pytest.CaptureFixture, dag_id: str
) -> None:
    gcp_connection.add_machine_image("img-w", source_instance="us-central1-a/web-1", status="INVALID")
    dag_run = run(dag_id)
    # the insert reuses the existing image (same source) but does not wait; the sensor sees INVALID
    assert task_states(dag_run)["wait"] == "failed"
    output = capfd.readouterr()
    assert "INVALID" in output.out + output.err


def test_soft_fail_sensor_is_skipped_on_failure(gcp_connection: ComputeEngineEmulator) -> None:
    gcp_connection.add_machine_image("img-w", source_instance="us-central1-a/web-1", status="INVALID")
    assert task_states(run("ami_test_image_sensor_soft_fail")) == {"wait": "skipped"}


def test_example_sensor_dag_uses_the_image_downstream(gcp_connection: ComputeEngineEmulator) -> None:
    assert load_dag("example_machine_image_sensor").get_task("wait_for_image").upstream_task_ids == {"submit_image"}
    dag_run = run("example_machine_image_sensor")
    assert task_states(dag_run) == {"submit_image": "success", "wait_for_image": "success", "use_image": "success"}
    assert xcom_result(dag_run, "use_image") == gcp_connection.machine_images(PROJECT)[0]["selfLink"]
