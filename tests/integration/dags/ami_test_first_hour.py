"""Test DAGs for what a new user meets first: deadlines, templated booleans, permanent errors."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_machine_images.operators import (
    ComputeEngineInsertMachineImageOperator,
    ComputeEngineMachineImageRetentionOperator,
)
from airflow_machine_images.sensors import ComputeEngineMachineImageSensor

START = datetime(2026, 1, 1)

# A deferrable sensor with a 6 s timeout on an image that never appears: dag.test() runs the trigger
# in line and does not enforce the defer timeout, so only the trigger's own deadline ends the wait.
with DAG(dag_id="ami_test_deferrable_sensor_deadline", schedule=None, start_date=START, catchup=False):
    ComputeEngineMachineImageSensor(
        task_id="wait", machine_image="never-made", deferrable=True, poke_interval=1, timeout=6
    )

# dry_run is templated: "{{ params.dry_run }}" renders to the text "True"/"False".
with DAG(
    dag_id="ami_test_templated_dry_run",
    schedule=None,
    start_date=START,
    catchup=False,
    params={"dry_run": True},
):
    ComputeEngineMachineImageRetentionOperator(
        task_id="prune",
        label_selector="backup=nightly,airflow-dag=ami_test_templated_dry_run",
        keep_last=1,
        dry_run="{{ params.dry_run }}",
    )

# A source instance that does not exist: a 404 no retry can change, so the task fails at once.
with DAG(dag_id="ami_test_missing_source", schedule=None, start_date=START, catchup=False):
    ComputeEngineInsertMachineImageOperator(
        task_id="create",
        name="img-missing",
        source_instance="us-central1-a/no-such-instance",
        retries=2,
        retry_delay=timedelta(seconds=0),
    )

# A name that breaks the rules once rendered: the task fails before naming any image.
with DAG(dag_id="ami_test_bad_name", schedule=None, start_date=START, catchup=False):
    ComputeEngineInsertMachineImageOperator(
        task_id="create", name="{{ 'Not A Valid Name' }}", source_instance="us-central1-a/web-1"
    )
