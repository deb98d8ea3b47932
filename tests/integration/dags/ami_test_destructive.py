"""Test DAGs for destructive operations you can trust (issue 22): drills, a foreign cleanup, restores across
projects, by project number and from a key-protected image."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_machine_images.operators import (
    ComputeEngineDeleteRestoredInstanceOperator,
    ComputeEngineRestoreMachineImageOperator,
)

PARAMS = {"name": "drill-1", "image": "img-a", "zone": "us-central1-a", "raw_key": ""}
RETRIES = {"retries": 3, "retry_delay": timedelta(0)}
WAITS = {"poll_interval": 0.5, "timeout": 600}


def dag(dag_id: str) -> DAG:
    return DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, params=PARAMS)


def restore(**extra: object) -> ComputeEngineRestoreMachineImageOperator:
    return ComputeEngineRestoreMachineImageOperator(
        task_id="restore",
        name="{{ params.name }}",
        zone="{{ params.zone }}",
        source_machine_image="{{ params.image }}",
        **WAITS,
        **extra,  # type: ignore[arg-type]
    )


# A drill: restore, then delete what this DAG restored (its own DAG's restore-dag label), whatever happened.
with dag("ami_test_drill"):
    restore(**RETRIES) >> ComputeEngineDeleteRestoredInstanceOperator(
        task_id="delete", name="{{ params.name }}", zone="{{ params.zone }}", trigger_rule="all_done", **WAITS
    )

# The same, keeping the protection the image carries, and deleting exactly what the restore made (its XCom).
with dag("ami_test_drill_inherit"):
    restore(deletion_protection=None) >> ComputeEngineDeleteRestoredInstanceOperator(
        task_id="delete",
        name="{{ params.name }}",
        zone="{{ params.zone }}",
        restore_id="{{ ti.xcom_pull(task_ids='restore')['restore_id'] }}",
        deferrable=True,
        trigger_rule="all_done",
        **WAITS,
    )

# A cleanup DAG given a name (from dag_run.conf, a template, a copy-pasted task): it owns no restore.
with dag("ami_test_cleanup"):
    ComputeEngineDeleteRestoredInstanceOperator(
        task_id="delete", name="{{ params.name }}", zone="{{ params.zone }}", **WAITS, **RETRIES
    )

# Restores of an image in another project (the backup-project layout).
with dag("ami_test_restore_across_projects_bare"):
    restore(**RETRIES)

with dag("ami_test_restore_across_projects"):
    restore(
        service_accounts=[{"email": "drills@test-project.iam.gserviceaccount.com", "scopes": []}],
        network_interfaces=[{"network": "projects/test-project/global/networks/default"}],
    )

# A restore of a key-protected image: the key comes from a template and is masked like every key.
with dag("ami_test_restore_csek"):
    restore(source_machine_image_encryption_key={"rawKey": "{{ params.raw_key }}"}, **RETRIES)
