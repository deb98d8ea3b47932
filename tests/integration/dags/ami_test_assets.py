"""Test DAG: a mapped insert (one image per instance) whose ``.partial()`` names one instance's asset."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_machine_images.assets import machine_image_asset
from airflow_machine_images.operators import ComputeEngineInsertMachineImageOperator

with DAG(dag_id="ami_test_mapped_insert_one_instance_asset", schedule=None, start_date=datetime(2026, 1, 1)):
    ComputeEngineInsertMachineImageOperator.partial(
        task_id="backup", outlets=[machine_image_asset("test-project", "us-central1-a/web-1")]
    ).expand_kwargs(
        [
            {"name": "web-1-img", "source_instance": "us-central1-a/web-1"},
            {"name": "web-2-img", "source_instance": "us-central1-a/web-2"},
        ]
    )
