"""Test DAGs for the boot check (ComputeEngineVerifyBootOperator)."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_machine_images.operators import ComputeEngineRestoreMachineImageOperator, ComputeEngineVerifyBootOperator

PARAMS = {"name": "web-1", "zone": "us-central1-a", "pattern": "Reached target .*Multi-User System"}

for dag_id, extra in {
    "ami_test_boot": {},
    "ami_test_boot_deferrable": {"deferrable": True},
    "ami_test_boot_short_timeout": {"deferrable": True, "timeout": 3},
    "ami_test_boot_by_id": {"instance_id": "{{ params.instance_id }}"},
}.items():
    with DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, params=PARAMS):
        ComputeEngineVerifyBootOperator(
            task_id="verify_boot",
            instance_name="{{ params.name }}",
            zone="{{ params.zone }}",
            boot_pattern="{{ params.pattern }}",
            poll_interval=0.2,
            **{"timeout": 60, **extra},  # a regression fails in a minute, not at the 30-minute default  # type: ignore[arg-type]
        )

# The restore operator's verify_boot: the same check, after RUNNING, by the restored instance's id.
for dag_id, extra in {
    "ami_test_restore_verify_boot": {},
    "ami_test_restore_verify_boot_deferrable": {"deferrable": True},
}.items():
    with DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, params=PARAMS):
        ComputeEngineRestoreMachineImageOperator(
            task_id="restore",
            name="restored-1",
            zone="{{ params.zone }}",
            source_machine_image="img-a",
            verify_boot=True,
            boot_pattern="{{ params.pattern }}",
            poll_interval=0.2,
            timeout=60,
            **extra,  # type: ignore[arg-type]
        )
