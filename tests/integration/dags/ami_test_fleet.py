"""Test DAGs for the fleet operators: list instances by label, and the backup coverage check."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_machine_images.operators import (
    ComputeEngineListInstancesOperator,
    ComputeEngineMachineImageCoverageCheckOperator,
)

BACKUP_PROJECT = "test-backups"


def dag(dag_id: str) -> DAG:
    return DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False)


with dag("ami_test_list_instances"):
    ComputeEngineListInstancesOperator(task_id="select", label_selector={"backup": "nightly"}, page_size=2)

with dag("ami_test_list_instances_in_zones"):
    ComputeEngineListInstancesOperator(
        task_id="select", label_selector="backup=nightly", filter="status = RUNNING", zones=["us-east1-b"]
    )

with dag("ami_test_coverage"):
    ComputeEngineMachineImageCoverageCheckOperator(
        task_id="coverage",
        label_selector={"backup": "nightly"},
        backup_project_id=BACKUP_PROJECT,
        max_age=timedelta(hours=24),
        page_size=2,
    )
