"""Test DAG for the endpoint allow-list: an ``api_endpoint`` written as a template of the run's conf."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_machine_images.operators import ComputeEngineInsertMachineImageOperator

# A DAG author (or whoever triggers the run) must not choose where requests go: api_endpoint is not
# templated, so this stays the literal text and fails its check before any request.
with DAG(dag_id="ami_test_endpoint_from_conf", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    ComputeEngineInsertMachineImageOperator(
        task_id="create",
        name="img-a",
        source_instance="us-central1-a/web-1",
        api_endpoint="{{ dag_run.conf['endpoint'] }}",
        poll_interval=0.5,
        timeout=30,
    )
