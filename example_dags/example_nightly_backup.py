"""Nightly machine-image backup of a fleet, then retention.

One mapped task per instance (dynamic task mapping), each deferrable: while Compute Engine works,
the tasks wait in the triggerer, where one poller serves the whole fleet. Every image carries the
default labels (``managed-by: airflow``, the DAG and task ids) plus ``backup: nightly``; retention
selects on those labels, scoped to this DAG (``airflow-dag``), and keeps the newest seven READY
images of each instance. Without the DAG in the selector, another DAG that labels its images
``backup: nightly`` and backs up the same instances would have its images pruned by this one.

Images are named ``INSTANCE-YYYYMMDD`` after the run date, so re-running a day's run (or a retry)
reuses that day's image instead of making another.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, get_current_context, task

from airflow_machine_images.assets import machine_image_asset
from airflow_machine_images.operators import (
    ComputeEngineInsertMachineImageOperator,
    ComputeEngineMachineImageRetentionOperator,
)

PROJECT_ID = os.environ.get("MACHINE_IMAGES_PROJECT_ID", "demo-project")
FLEET = ["us-central1-a/web-1", "us-central1-a/web-2", "us-east1-b/db-1"]
NIGHTLY = {"backup": "nightly"}

with DAG(
    dag_id="example_nightly_backup",
    description="Machine image of every fleet instance each night, then prune old images",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    params={"instances": Param(FLEET, type="array", description="ZONE/INSTANCE of each instance to back up")},
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30)},
    tags=["example", "compute-engine", "machine-image", "backup"],
) as dag:

    @task
    def plan_backups() -> list[dict[str, Any]]:
        """One insert per instance: its image name and source."""
        context = get_current_context()
        day = context["dag_run"].run_after.strftime("%Y%m%d")
        return [
            {"name": f"{source.rsplit('/', 1)[-1][:54]}-{day}", "source_instance": source}
            for source in context["params"]["instances"]
        ]

    backups = ComputeEngineInsertMachineImageOperator.partial(
        task_id="backup",
        project_id=PROJECT_ID,
        labels=NIGHTLY,
        deferrable=True,
        poll_interval=30,
        timeout=3 * 60 * 60,
        outlets=[machine_image_asset(PROJECT_ID)],
    ).expand_kwargs(plan_backups())

    prune = ComputeEngineMachineImageRetentionOperator(
        task_id="prune_old_images",
        project_id=PROJECT_ID,
        label_selector={"managed-by": "airflow", "airflow-dag": dag.dag_id, **NIGHTLY},
        keep_last=7,
    )

    backups >> prune
