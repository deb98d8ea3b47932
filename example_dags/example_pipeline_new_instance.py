"""A pipeline whose later steps need a fresh image: image a golden VM, start a canary from it.

The canary is restored from the new image with
:class:`~airflow_machine_images.operators.ComputeEngineRestoreMachineImageOperator`
(``instances.insert`` with ``sourceMachineImage``): a task-derived requestId makes a retried task
start no second canary, and both steps defer while Compute Engine works. It runs as is against the
bundled emulator, or against Google Cloud with the ``google_cloud_default`` connection.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_machine_images.operators import (
    ComputeEngineInsertMachineImageOperator,
    ComputeEngineRestoreMachineImageOperator,
)

#: When the run was due, as text: ``run_after`` on Airflow 3 (where a manual run may have no logical
#: date); Airflow 2 has no ``run_after``, and its runs always have a logical date.
STAMP = "{{ (dag_run.run_after if dag_run.run_after is defined else dag_run.logical_date).strftime('%Y%m%d-%H%M%S') }}"

with DAG(
    dag_id="example_pipeline_new_instance",
    description="Image a golden instance, then start a canary instance from the image",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "golden_instance": Param("us-central1-a/golden-1", type="string", description="ZONE/INSTANCE to image"),
        "canary_zone": Param("us-central1-a", type="string", description="zone of the canary instance"),
    },
    tags=["example", "compute-engine", "machine-image", "pipeline"],
) as dag:
    image = ComputeEngineInsertMachineImageOperator(
        task_id="image_golden_instance",
        name=f"golden-{STAMP}",
        source_instance="{{ params.golden_instance }}",
        deferrable=True,
    )

    canary = ComputeEngineRestoreMachineImageOperator(
        task_id="start_canary_from_image",
        name=f"canary-{STAMP}",
        zone="{{ params.canary_zone }}",
        source_machine_image="{{ ti.xcom_pull(task_ids='image_golden_instance')['self_link'] }}",
        labels={"role": "canary"},
        deferrable=True,
    )

    @task
    def smoke_test(image_summary: dict[str, Any], canary_summary: dict[str, Any]) -> None:
        """The downstream step: here, report which image the canary runs."""
        print(
            f"Canary {canary_summary['name']} is {canary_summary['status']}, started from "
            f"{image_summary['self_link']} ({image_summary['total_storage_bytes']} bytes)"
        )

    image >> canary
    smoke_test(image.output, canary.output)
