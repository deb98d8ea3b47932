"""Test DAGs for the restore and delete-restored operators."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_machine_images.operators import (
    ComputeEngineDeleteRestoredInstanceOperator,
    ComputeEngineRestoreMachineImageOperator,
)
from airflow_machine_images.sensors import ComputeEngineMachineImageOperationSensor

PARAMS = {"name": "restored-1", "image": "img-a", "zone": "us-central1-a"}
RETRIES = {"retries": 3, "retry_delay": timedelta(0)}


def dag(dag_id: str) -> DAG:
    return DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, params=PARAMS)


for dag_id, extra in {
    "ami_test_restore": {},
    "ami_test_restore_v1": {"api_version": "v1", "machine_type": "e2-standard-2", "metadata": {"role": "drill"}},
    "ami_test_restore_deferrable": {"deferrable": True},
    "ami_test_restore_retries": RETRIES,
    "ami_test_restore_deferrable_retries": {"deferrable": True, **RETRIES},
    "ami_test_restore_fail_if_exists": {"if_exists": "fail"},
    # Templated (a literal typo fails the DAG file's import): checked once rendered, before any request.
    "ami_test_restore_bad_body": {"body": {"machineTyp": "zones/{{ params.zone }}/machineTypes/e2-small"}},
}.items():
    with dag(dag_id):
        ComputeEngineRestoreMachineImageOperator(
            task_id="restore",
            name="{{ params.name }}",
            zone="{{ params.zone }}",
            source_machine_image="{{ params.image }}",
            labels={"purpose": "drill"},
            poll_interval=0.5,
            timeout=600,
            **extra,
        )

with dag("ami_test_restore_no_wait"):
    started = ComputeEngineRestoreMachineImageOperator(
        task_id="restore",
        name="{{ params.name }}",
        zone="{{ params.zone }}",
        source_machine_image="{{ params.image }}",
        wait_for_completion=False,
    )
    started >> ComputeEngineMachineImageOperationSensor(
        task_id="wait",
        operation_name="{{ ti.xcom_pull(task_ids='restore')['operation_name'] }}",
        zone="{{ ti.xcom_pull(task_ids='restore')['zone'] }}",
        poke_interval=0.5,
        timeout=60,
    )

# These DAGs delete what another DAG (ami_test_restore) restored: they name it, widening the ownership rule.
for dag_id, extra in {
    "ami_test_delete_restored": {},
    "ami_test_delete_restored_deferrable": {"deferrable": True},
    "ami_test_delete_restored_retries": RETRIES,
}.items():
    with dag(dag_id):
        ComputeEngineDeleteRestoredInstanceOperator(
            task_id="delete",
            name="{{ params.name }}",
            zone="{{ params.zone }}",
            allow_dag_ids=["ami_test_restore"],
            poll_interval=0.5,
            timeout=600,
            **extra,
        )

with dag("ami_test_delete_restored_no_wait"):
    deleting = ComputeEngineDeleteRestoredInstanceOperator(
        task_id="delete",
        name="{{ params.name }}",
        zone="{{ params.zone }}",
        allow_dag_ids=["ami_test_restore"],
        wait_for_completion=False,
    )
    deleting >> ComputeEngineMachineImageOperationSensor(
        task_id="wait",
        operation_name="{{ ti.xcom_pull(task_ids='delete')['operation_name'] }}",
        zone="{{ params.zone }}",
        poke_interval=0.5,
        timeout=60,
    )
