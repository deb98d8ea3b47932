"""Test DAGs for waiting: the deferrable operator, and the operator + sensor pairs in every mode."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_machine_images.operators import ComputeEngineInsertMachineImageOperator
from airflow_machine_images.sensors import (
    ComputeEngineMachineImageOperationSensor,
    ComputeEngineMachineImageSensor,
)

PARAMS = {"name": "img-w", "source_instance": "us-central1-a/web-1"}
# Sensors get an hour: a test that waited for the timeout instead of failing fast would be killed first.
SENSOR = {"poke_interval": 0.5, "timeout": 3600}


def insert(**kwargs: object) -> ComputeEngineInsertMachineImageOperator:
    return ComputeEngineInsertMachineImageOperator(
        task_id="create",
        name="{{ params.name }}",
        source_instance="{{ params.source_instance }}",
        poll_interval=0.5,
        timeout=3600,
        **kwargs,  # type: ignore[arg-type]
    )


def dag(dag_id: str) -> DAG:
    return DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, params=PARAMS)


with dag("ami_test_deferrable_operator"):
    insert(deferrable=True)

for dag_id, mode_kwargs in {
    "ami_test_operation_sensor_deferrable": {"deferrable": True},
    "ami_test_operation_sensor_reschedule": {"deferrable": False, "mode": "reschedule"},
    "ami_test_operation_sensor_poke": {"deferrable": False},
}.items():
    with dag(dag_id):
        insert(wait_for_completion=False) >> ComputeEngineMachineImageOperationSensor(
            task_id="wait",
            operation_name="{{ ti.xcom_pull(task_ids='create')['operation_name'] }}",
            **SENSOR,
            **mode_kwargs,  # type: ignore[arg-type]
        )

for dag_id, mode_kwargs in {
    "ami_test_image_sensor_deferrable": {"deferrable": True},
    "ami_test_image_sensor_reschedule": {"deferrable": False, "mode": "reschedule"},
}.items():
    with dag(dag_id):
        insert(wait_for_completion=False) >> ComputeEngineMachineImageSensor(
            task_id="wait",
            machine_image="{{ params.name }}",
            **SENSOR,
            **mode_kwargs,  # type: ignore[arg-type]
        )

with dag("ami_test_image_sensor_soft_fail"):
    ComputeEngineMachineImageSensor(
        task_id="wait", machine_image="{{ params.name }}", soft_fail=True, deferrable=True, **SENSOR
    )
