"""Submit a machine image, free the worker, wait in the triggerer, then use the image.

The insert returns as soon as Compute Engine accepts it (``wait_for_completion=False``); the
deferrable sensor waits for the operation in the triggerer, where one poller serves every
waiting task of the project; the last step reads the image's selfLink from the insert's XCom.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_machine_images.operators import ComputeEngineInsertMachineImageOperator
from airflow_machine_images.sensors import ComputeEngineMachineImageOperationSensor

#: When the run was due, as text: ``run_after`` on Airflow 3 (where a manual run may have no logical
#: date); Airflow 2 has no ``run_after``, and its runs always have a logical date.
RUN_STAMP = (
    "{{ (dag_run.run_after if dag_run.run_after is defined else dag_run.logical_date).strftime('%Y%m%d-%H%M%S') }}"
)

with DAG(
    dag_id="example_machine_image_sensor",
    description="Insert without waiting, wait with a deferrable sensor, then use the image",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"source_instance": "us-central1-a/web-1"},
    tags=["example", "compute-engine", "machine-image", "deferrable"],
) as dag:
    submit = ComputeEngineInsertMachineImageOperator(
        task_id="submit_image",
        name="web-1-" + RUN_STAMP,
        source_instance="{{ params.source_instance }}",
        wait_for_completion=False,
    )

    wait = ComputeEngineMachineImageOperationSensor(
        task_id="wait_for_image",
        operation_name="{{ ti.xcom_pull(task_ids='submit_image')['operation_name'] }}",
        deferrable=True,
        poke_interval=10,
        timeout=2 * 60 * 60,
    )

    @task
    def use_image(image: dict[str, Any]) -> str:
        """A later step that needs the new image (here: print where it is)."""
        print(f"New machine image ready: {image['self_link']}")
        return str(image["self_link"])

    submit >> wait >> use_image(submit.output)
