"""A deferrable insert whose image takes longer than the task's ``timeout``: the deadline set on the
worker before deferring must end the wait in the triggerer (the e2e case on Airflow 2)."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_machine_images.operators import ComputeEngineInsertMachineImageOperator

#: The task's timeout; the e2e case's slow instance takes 60 s per image.
TIMEOUT_SECONDS = 8

with DAG(
    dag_id="e2e_deadline",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"source_instance": "us-central1-a/slow-1"},
    default_args={"retries": 0},
):
    ComputeEngineInsertMachineImageOperator(
        task_id="create_image",
        name="slow-1-deadline",
        source_instance="{{ params.source_instance }}",
        deferrable=True,
        poll_interval=2,
        timeout=TIMEOUT_SECONDS,
    )
