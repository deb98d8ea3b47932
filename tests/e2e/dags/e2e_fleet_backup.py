"""e2e stand-in for the nightly fleet backup: one deferrable machine image per instance, mapped.

``plan`` turns the run's conf (instances, a name prefix) into one ``{name, source_instance}`` per
instance; ``backup`` is the deferrable insert operator mapped over them, so every image waits in
the triggerer and frees its worker slot. ``retries=1`` absorbs the known Airflow 3.3.2 race
(apache/airflow#67287); the e2e checks tell such retries apart from real failures.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, get_current_context, task

from airflow_machine_images.operators import ComputeEngineInsertMachineImageOperator

with DAG(
    dag_id="e2e_fleet_backup",
    description="e2e: deferrable machine images of several instances (dynamic task mapping)",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=3)},
    params={
        "instances": Param(["us-central1-a/web-1", "us-central1-a/web-2", "us-east1-b/db-1"], type="array", minItems=1),
        "prefix": Param("e2e", type="string", pattern="^[a-z][-a-z0-9]{0,20}$"),
    },
    tags=["e2e"],
) as dag:

    @task
    def plan() -> list[dict[str, Any]]:
        """One image per instance, named ``PREFIX-INSTANCE-YYYYmmdd-HHMMSS`` after the run."""
        context = get_current_context()
        params = context["params"]
        stamp = context["dag_run"].run_after.strftime("%Y%m%d-%H%M%S")
        return [
            {"name": f"{params['prefix']}-{source.rsplit('/', 1)[-1]}-{stamp}", "source_instance": source}
            for source in params["instances"]
        ]

    ComputeEngineInsertMachineImageOperator.partial(
        task_id="backup",
        deferrable=True,
        poll_interval=2,
        timeout=900,
        labels={"purpose": "e2e-backup"},
    ).expand_kwargs(plan())
