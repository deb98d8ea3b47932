"""Test DAGs for the delete and retention operators."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_machine_images.operators import (
    ComputeEngineDeleteMachineImageOperator,
    ComputeEngineMachineImageRetentionOperator,
)

PARAMS = {"name": "img-d"}


def dag(dag_id: str) -> DAG:
    return DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, params=PARAMS)


for dag_id, extra in {
    "ami_test_delete": {},
    "ami_test_delete_deferrable": {"deferrable": True},
    "ami_test_delete_fail_if_missing": {"fail_if_missing": True},
    "ami_test_delete_retries": {"retries": 3, "retry_delay": timedelta(0)},
    "ami_test_delete_deferrable_retries": {"deferrable": True, "retries": 3, "retry_delay": timedelta(0)},
}.items():
    with dag(dag_id):
        ComputeEngineDeleteMachineImageOperator(
            task_id="delete", name="{{ params.name }}", poll_interval=0.5, timeout=600, **extra
        )

with dag("ami_test_retention_dry_run"):
    ComputeEngineMachineImageRetentionOperator(
        task_id="prune", label_selector={"managed-by": "airflow"}, keep_last=1, dry_run=True
    )

with dag("ami_test_retention"):
    ComputeEngineMachineImageRetentionOperator(
        task_id="prune", label_selector={"managed-by": "airflow"}, keep_last=1, timeout=60
    )
