"""Nightly machine images of a labelled fleet, kept in a separate backup project; prune; check coverage.

1. ``select_fleet`` lists every instance of the workload project labelled ``backup=nightly``, in every
   zone (one paged ``instances.aggregatedList``); a zone the API cannot read fails the task instead of
   leaving its machines out.
2. ``backup`` makes one machine image per instance in the **backup project** (dynamic task mapping,
   deferrable: one triggerer poller serves the whole fleet). Keeping images in another project means
   a compromised or deleted workload project does not take its backups with it. Images are named
   ``INSTANCE-YYYYMMDD-HASH`` after the run date, so re-running a day's run reuses that day's images.
   Each mapped task records one asset event, through the ``nightly-machine-images`` alias, on the asset
   of its instance's images in the backup project the run used.
3. ``prune_old_images`` keeps a grandfather-father-son history of each instance in the backup project:
   the newest image of each of the last 7 days, 4 ISO weeks, 12 months and 3 years that have one (UTC;
   restic's ``forget --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --keep-yearly 3``), about 25
   images per instance, selecting only this DAG's nightly images (labels ``managed-by``,
   ``airflow-dag``, ``backup``). The plan, with the rules that keep each image, is in its XCom
   (``kept_by``) and its log.
4. ``check_coverage`` fails, naming them, if any selected instance lacks a READY image younger than
   26 hours in the backup project; it runs even if a backup failed, so the gap is reported.

The two projects are DAG params (defaults from ``MACHINE_IMAGES_WORKLOAD_PROJECT`` and
``MACHINE_IMAGES_BACKUP_PROJECT``). IAM: see docs/fleet-backups.md, "Fleet backups into a backup project".
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import DAG, AssetAlias, Param, get_current_context, task

from airflow_machine_images.fleet import backup_kwargs
from airflow_machine_images.operators import (
    ComputeEngineInsertMachineImageOperator,
    ComputeEngineListInstancesOperator,
    ComputeEngineMachineImageCoverageCheckOperator,
    ComputeEngineMachineImageRetentionOperator,
)

WORKLOAD_PROJECT = os.environ.get("MACHINE_IMAGES_WORKLOAD_PROJECT", "demo-project")
BACKUP_PROJECT = os.environ.get("MACHINE_IMAGES_BACKUP_PROJECT", "demo-backups")
NIGHTLY = {"backup": "nightly"}

with DAG(
    dag_id="example_nightly_backup",
    description="Machine image of every instance labelled backup=nightly, in a backup project; prune; check coverage",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    params={
        "workload_project": Param(WORKLOAD_PROJECT, type="string", description="project whose instances are backed up"),
        "backup_project": Param(BACKUP_PROJECT, type="string", description="project the machine images are kept in"),
    },
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30)},
    tags=["example", "compute-engine", "machine-image", "backup"],
) as dag:
    select_fleet = ComputeEngineListInstancesOperator(
        task_id="select_fleet",
        project_id="{{ params.workload_project }}",
        label_selector=NIGHTLY,
    )

    @task
    def plan_backups(instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One insert per selected instance: ``{"name": "web-1-20260520-3f9a1c", "source_instance": ...}``."""
        run = get_current_context()["dag_run"]
        # When the run was due: run_after on Airflow 3 (a manual run may have no logical date there);
        # Airflow 2's runs always have a logical date.
        day = (getattr(run, "run_after", None) or run.logical_date).strftime("%Y%m%d")
        return backup_kwargs(instances, suffix=day)

    backups = ComputeEngineInsertMachineImageOperator.partial(
        task_id="backup",
        project_id="{{ params.backup_project }}",
        labels=NIGHTLY,
        deferrable=True,
        poll_interval=30,
        timeout=3 * 60 * 60,
        # One asset event per image, on the asset of its instance's images in the backup project the run
        # used (the backup_project param, rendered): machine_image_asset("{backup_project}", source_instance).
        outlets=[AssetAlias("nightly-machine-images")],
    ).expand_kwargs(plan_backups(select_fleet.output))

    this_dags_nightly_images = {"managed-by": "airflow", "airflow-dag": dag.dag_id, **NIGHTLY}

    prune = ComputeEngineMachineImageRetentionOperator(
        task_id="prune_old_images",
        project_id="{{ params.backup_project }}",
        label_selector=this_dags_nightly_images,
        keep_daily=7,
        keep_weekly=4,
        keep_monthly=12,
        keep_yearly=3,
    )

    check_coverage = ComputeEngineMachineImageCoverageCheckOperator(
        task_id="check_coverage",
        project_id="{{ params.workload_project }}",
        backup_project_id="{{ params.backup_project }}",
        label_selector=NIGHTLY,
        image_label_selector=this_dags_nightly_images,
        max_age=timedelta(hours=26),
        trigger_rule="all_done",
        retries=0,
    )

    backups >> prune >> check_coverage
