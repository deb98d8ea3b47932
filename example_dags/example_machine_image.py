"""One-off machine image of an instance, then a step that uses it.

Runs as is against the bundled emulator (``make demo``) or against Google Cloud: set the
``google_cloud_default`` connection (or ``gcp_conn_id``) and the ``source_instance`` param.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_machine_images.operators import ComputeEngineInsertMachineImageOperator

#: When the run was due, as text: ``run_after`` on Airflow 3 (where a manual run may have no logical
#: date); Airflow 2 has no ``run_after``, and its runs always have a logical date.
RUN_STAMP = (
    "{{ (dag_run.run_after if dag_run.run_after is defined else dag_run.logical_date).strftime('%Y%m%d-%H%M%S') }}"
)

with DAG(
    dag_id="example_machine_image",
    description="Create a machine image of one instance and report it",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "source_instance": Param("us-central1-a/web-1", type="string", description="ZONE/INSTANCE or URL"),
        "image_prefix": Param("web-1", type="string", pattern="^[a-z][-a-z0-9]{0,40}$"),
    },
    tags=["example", "compute-engine", "machine-image"],
) as dag:
    create_image = ComputeEngineInsertMachineImageOperator(
        task_id="create_image",
        name="{{ params.image_prefix }}-" + RUN_STAMP,
        source_instance="{{ params.source_instance }}",
        description="Made by Airflow DAG {{ dag.dag_id }}, run {{ run_id }}",
        labels={"purpose": "example"},
    )

    @task
    def report(image: dict[str, Any]) -> str:
        """Use the new image: here, just report it."""
        print(
            f"Machine image {image['name']} is {image['status']}: {image['self_link']} "
            f"({image['total_storage_bytes']} bytes)"
        )
        return str(image["self_link"])

    report(create_image.output)
