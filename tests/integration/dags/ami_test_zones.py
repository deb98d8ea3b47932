"""Test DAGs for zones given through templates: a region where a zone belongs fails before any request.

Every zone (or zone-bearing reference) here comes from ``params``, so the DAG files parse; a literal
region fails the import instead (``tests/integration/test_zones.py`` checks that without a DAG file).
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_machine_images.operators import (
    ComputeEngineDeleteRestoredInstanceOperator,
    ComputeEngineFleetBackupOperator,
    ComputeEngineInsertMachineImageOperator,
    ComputeEngineListInstancesOperator,
    ComputeEngineMachineImageCoverageCheckOperator,
    ComputeEngineRestoreMachineImageOperator,
)
from airflow_machine_images.sensors import ComputeEngineMachineImageOperationSensor

PARAMS = {"zone": "us-central1-a", "instance": "web-1"}
START = datetime(2026, 1, 1)
ZONE = "{{ params.zone }}"


def dag(dag_id: str) -> DAG:
    return DAG(dag_id=dag_id, schedule=None, start_date=START, catchup=False, params=PARAMS)


with dag("ami_test_zones_list"):
    ComputeEngineListInstancesOperator(task_id="select", zones=[ZONE])

with dag("ami_test_zones_coverage"):
    ComputeEngineMachineImageCoverageCheckOperator(task_id="coverage", zones=[ZONE], max_age=86400)

with dag("ami_test_zones_fleet_backup"):
    ComputeEngineFleetBackupOperator(task_id="backup", zones=[ZONE])

with dag("ami_test_zones_fleet_backup_instances"):
    ComputeEngineFleetBackupOperator(task_id="backup", instances=["{{ params.zone }}/{{ params.instance }}"])

with dag("ami_test_zones_insert"):
    ComputeEngineInsertMachineImageOperator(
        task_id="create", name="img-a", source_instance="{{ params.zone }}/{{ params.instance }}"
    )

with dag("ami_test_zones_restore"):
    ComputeEngineRestoreMachineImageOperator(task_id="restore", name="drill-1", zone=ZONE, source_machine_image="img-a")

with dag("ami_test_zones_restore_by_instance"):
    ComputeEngineRestoreMachineImageOperator(
        task_id="restore", name="drill-1", zone="us-central1-a", source_instance="{{ params.zone }}/web-1"
    )

with dag("ami_test_zones_delete_restored"):
    ComputeEngineDeleteRestoredInstanceOperator(task_id="delete", name="drill-1", zone=ZONE)

with dag("ami_test_zones_sensor"):
    ComputeEngineMachineImageOperationSensor(
        task_id="wait", operation_name="operation-1", zone=ZONE, poke_interval=1, timeout=10
    )
