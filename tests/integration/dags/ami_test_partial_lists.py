"""Test DAGs for list answers that leave items out: many deferrable waits, an operation sensor, retention."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_machine_images.operators import (
    ComputeEngineInsertMachineImageOperator,
    ComputeEngineMachineImageRetentionOperator,
)
from airflow_machine_images.sensors import ComputeEngineMachineImageOperationSensor

SOURCES = [f"us-central1-a/web-{n}" for n in range(1, 7)]

with DAG(
    dag_id="ami_test_partial_lists",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
):
    # Six deferrable inserts by mapping, each waiting in the (in-line) triggerer; a failed operation
    # is retried by Airflow at once.
    backups = ComputeEngineInsertMachineImageOperator.partial(
        task_id="backup",
        deferrable=True,
        poll_interval=0.2,
        timeout=600,
        retries=2,
        retry_delay=timedelta(0),
    ).expand_kwargs([{"name": f"{source.rsplit('/', 1)[1]}-partial", "source_instance": source} for source in SOURCES])
    # After the backups (so the tests' scripted operation failures hit those), submit and sense apart.
    (
        backups
        >> ComputeEngineInsertMachineImageOperator(
            task_id="submit", name="solo-partial", source_instance=SOURCES[0], wait_for_completion=False
        )
        >> ComputeEngineMachineImageOperationSensor(
            task_id="wait",
            operation_name="{{ ti.xcom_pull(task_ids='submit')['operation_name'] }}",
            deferrable=True,
            poke_interval=0.2,
            timeout=600,
        )
    )

with DAG(dag_id="ami_test_partial_retention", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    ComputeEngineMachineImageRetentionOperator(
        task_id="prune", label_selector={"managed-by": "airflow"}, keep_last=1, retries=0
    )
