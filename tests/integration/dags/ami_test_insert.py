"""Test DAGs for the insert operator: image name and source come from the run's params."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_machine_images.operators import ComputeEngineInsertMachineImageOperator

PARAMS = {"name": "img-a", "source_instance": "us-central1-a/web-1"}

for dag_id, extra in {
    "ami_test_insert": {},
    "ami_test_insert_fail_if_exists": {"if_exists": "fail"},
    "ami_test_insert_no_wait": {"wait_for_completion": False},
    # Airflow retries a failed try at once (dag.test() runs try 2 in the same run)
    "ami_test_insert_retry": {"retries": 1, "retry_delay": timedelta(0)},
    "ami_test_insert_retries_5": {"retries": 5, "retry_delay": timedelta(0)},
    "ami_test_insert_no_retries": {"retries": 0, "timeout": 300},
}.items():
    with DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, params=PARAMS):
        ComputeEngineInsertMachineImageOperator(
            task_id="create",
            name="{{ params.name }}",
            source_instance="{{ params.source_instance }}",
            poll_interval=0.5,
            **{"timeout": 60, **extra},
        )
