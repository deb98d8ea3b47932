"""e2e and real-stack benchmark: a whole fleet backed up in one task with the fleet backup operator.

The run's conf names the label value that selects the fleet (``fleet=<selector>``); every image is
named after its instance, this task instance's run token and a hash of the instance's path. The task
defers once per refill round (once, up to ``max_in_flight`` instances). ``retries=2``: one for a
killed worker (the e2e case), one for the known Airflow 3.3.2 race (apache/airflow#67287).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from airflow_machine_images.operators import ComputeEngineFleetBackupOperator

with DAG(
    dag_id="e2e_fleet_backup_operator",
    description="e2e: a fleet backed up in one task (one deferral for every instance)",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=3)},
    params={"selector": Param("e2e-fleet", type="string", pattern="^[a-z0-9_-]{1,63}$")},
    tags=["e2e"],
) as dag:
    ComputeEngineFleetBackupOperator(
        task_id="backup",
        label_selector={"fleet": "{{ params.selector }}"},
        labels={"purpose": "e2e-fleet"},
        deferrable=True,
        timeout=3600,
    )
