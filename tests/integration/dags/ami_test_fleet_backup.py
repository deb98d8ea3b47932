"""Test DAGs for the fleet backup operator: selection by label, an explicit list from the list operator,
blocking and deferrable, retries, refill rounds, and the coverage check reading the result."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG, AssetAlias

from airflow_machine_images.operators import (
    ComputeEngineFleetBackupOperator,
    ComputeEngineListInstancesOperator,
    ComputeEngineMachineImageCoverageCheckOperator,
)

BACKUP_PROJECT = "test-backups"
#: The alias every image's asset event goes through.
FLEET_IMAGES = AssetAlias("fleet-images")


def dag(dag_id: str, retries: int = 0) -> DAG:
    return DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        default_args={"retries": retries, "retry_delay": timedelta(0)},
    )


FLEET = {"label_selector": {"backup": "fleet"}, "backup_project_id": BACKUP_PROJECT, "poll_interval": 0.5}

for mode, deferrable in (("deferrable", True), ("blocking", False)):
    with dag(f"ami_test_fleet_backup_{mode}"):
        ComputeEngineFleetBackupOperator(task_id="backup", deferrable=deferrable, outlets=[FLEET_IMAGES], **FLEET)

    # A retry of the task resubmits only what the first try did not back up.
    with dag(f"ami_test_fleet_backup_retry_{mode}", retries=1):
        ComputeEngineFleetBackupOperator(task_id="backup", deferrable=deferrable, **FLEET)

    # At most 20 inserts at once: refill rounds (each one deferral in the deferrable mode).
    with dag(f"ami_test_fleet_backup_rounds_{mode}"):
        ComputeEngineFleetBackupOperator(task_id="backup", deferrable=deferrable, max_in_flight=20, **FLEET)

with dag("ami_test_fleet_backup_fraction"):
    ComputeEngineFleetBackupOperator(
        task_id="backup", deferrable=True, fail_on="fraction", min_success_fraction=0.9, **FLEET
    )

with dag("ami_test_fleet_backup_from_list"):
    select = ComputeEngineListInstancesOperator(task_id="select", label_selector={"backup": "fleet"})
    backup = ComputeEngineFleetBackupOperator(
        task_id="backup",
        instances=select.output,
        backup_project_id=BACKUP_PROJECT,
        image_name="{instance}-{{ dag_run.run_after.strftime('%Y%m%d') }}-{hash}",
        labels={"purpose": "fleet-test"},
        deferrable=True,
        poll_interval=0.5,
    )
    coverage = ComputeEngineMachineImageCoverageCheckOperator(
        task_id="coverage", fleet_backup=backup.output, max_age=timedelta(hours=1)
    )
    backup >> coverage
