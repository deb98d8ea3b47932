"""A whole fleet backed up in one task, into a separate backup project; prune; check coverage.

1. ``backup_fleet`` selects every instance of the workload project labelled ``backup=fleet`` (one paged
   ``instances.aggregatedList``) and makes a machine image of each in the **backup project**, in one
   task that defers once (per refill round of ``max_in_flight`` inserts) whatever the fleet's size:
   one task instance instead of one per instance, no ``[core] max_map_length`` limit. Each instance's
   insert carries a requestId derived from the task instance and the instance, so a retry or a killed
   worker never makes a second image, and a retry resubmits only the instances not backed up. One
   asset event per image goes through the ``fleet-backups`` alias.
2. ``prune_old_images`` keeps the newest seven READY images of each instance among this DAG's images.
3. ``check_coverage`` reads the backup's result (its ``fleet_backup`` XCom, pushed even when the task
   fails) and fails, naming them, if an instance it set out to back up lacks a READY image younger
   than 26 hours; it runs even if the backup failed, so the gap is reported.

The two projects are DAG params (defaults from ``MACHINE_IMAGES_WORKLOAD_PROJECT`` and
``MACHINE_IMAGES_BACKUP_PROJECT``). When to choose this over mapped inserts
(``example_nightly_backup.py``): docs/fleet-backups.md, "Backing up a whole fleet in one task".
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG, AssetAlias, Param

from airflow_machine_images.operators import (
    ComputeEngineFleetBackupOperator,
    ComputeEngineMachineImageCoverageCheckOperator,
    ComputeEngineMachineImageRetentionOperator,
)

WORKLOAD_PROJECT = os.environ.get("MACHINE_IMAGES_WORKLOAD_PROJECT", "demo-project")
BACKUP_PROJECT = os.environ.get("MACHINE_IMAGES_BACKUP_PROJECT", "demo-backups")
FLEET = {"backup": "fleet"}

with DAG(
    dag_id="example_fleet_backup",
    description="Machine image of every instance labelled backup=fleet, in one task; prune; check coverage",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    params={
        "workload_project": Param(WORKLOAD_PROJECT, type="string", description="project whose instances are backed up"),
        "backup_project": Param(BACKUP_PROJECT, type="string", description="project the machine images are kept in"),
    },
    default_args={"retries": 1, "retry_delay": timedelta(minutes=5)},
    tags=["example", "compute-engine", "machine-image", "backup"],
) as dag:
    backup = ComputeEngineFleetBackupOperator(
        task_id="backup_fleet",
        project_id="{{ params.workload_project }}",
        label_selector=FLEET,
        backup_project_id="{{ params.backup_project }}",
        image_name="{instance}-{{ dag_run.run_after.strftime('%Y%m%d') }}-{hash}",
        labels=FLEET,
        deferrable=True,
        outlets=[AssetAlias("fleet-backups")],
    )
    prune = ComputeEngineMachineImageRetentionOperator(
        task_id="prune_old_images",
        project_id="{{ params.backup_project }}",
        label_selector={"managed-by": "airflow", "airflow-dag": dag.dag_id, **FLEET},
        keep_last=7,
    )
    check = ComputeEngineMachineImageCoverageCheckOperator(
        task_id="check_coverage",
        project_id="{{ params.workload_project }}",
        fleet_backup="{{ ti.xcom_pull(task_ids='backup_fleet', key='fleet_backup') }}",
        max_age=timedelta(hours=26),
        trigger_rule="all_done",
    )
    backup >> prune >> check
