"""A pipeline whose later steps need a fresh image: image a golden VM, start a canary from it.

The canary instance is created with the Google provider's ``ComputeEngineInsertInstanceOperator``
from the new image's selfLink (``sourceMachineImage``). That operator talks to the real Compute
Engine API only (it has no endpoint setting), so this DAG needs a Google Cloud project; the
bundled emulator covers the machine-image steps.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.providers.google.cloud.operators.compute import ComputeEngineInsertInstanceOperator
from airflow.sdk import DAG, task

from airflow_machine_images.operators import ComputeEngineInsertMachineImageOperator

PROJECT_ID = os.environ.get("MACHINE_IMAGES_PROJECT_ID", "demo-project")
ZONE = "us-central1-a"

with DAG(
    dag_id="example_pipeline_new_instance",
    description="Image a golden instance, then start a canary instance from the image",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "compute-engine", "machine-image", "pipeline"],
) as dag:
    image = ComputeEngineInsertMachineImageOperator(
        task_id="image_golden_instance",
        project_id=PROJECT_ID,
        name="golden-{{ dag_run.run_after.strftime('%Y%m%d-%H%M%S') }}",
        source_instance=f"{ZONE}/golden-1",
        deferrable=True,
    )

    canary = ComputeEngineInsertInstanceOperator(
        task_id="start_canary_from_image",
        project_id=PROJECT_ID,
        zone=ZONE,
        resource_id="canary-{{ dag_run.run_after.strftime('%Y%m%d-%H%M%S') }}",
        body={
            "name": "canary-{{ dag_run.run_after.strftime('%Y%m%d-%H%M%S') }}",
            "source_machine_image": "{{ ti.xcom_pull(task_ids='image_golden_instance')['self_link'] }}",
        },
    )

    @task
    def smoke_test(image_summary: dict[str, Any]) -> None:
        """The downstream step: here, report which image the canary runs."""
        print(f"Canary started from {image_summary['self_link']} ({image_summary['total_storage_bytes']} bytes)")

    image >> canary >> smoke_test(image.output)
