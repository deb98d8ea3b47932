"""Test DAGs for restoring "the newest READY image of an instance" (``source_instance=``), and for the list
operator's output expanded into the insert operator as it is (the error points to ``backup_kwargs``)."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_machine_images.operators import (
    ComputeEngineInsertMachineImageOperator,
    ComputeEngineListInstancesOperator,
    ComputeEngineRestoreMachineImageOperator,
)

PARAMS = {"source": "us-central1-a/web-1", "image_project": None}
START = datetime(2026, 1, 1)

for dag_id, extra in {
    "ami_test_restore_by_instance": {},
    "ami_test_restore_by_instance_deferrable": {"deferrable": True},
    "ami_test_restore_by_instance_nightly": {"image_label_selector": {"backup": "nightly"}},
    # From a backup project: a restore across projects replaces the image's service account and network.
    "ami_test_restore_by_instance_across_projects": {
        "image_label_selector": "backup=nightly",
        "service_accounts": [{"email": "drills@test-project.iam.gserviceaccount.com", "scopes": []}],
        "network_interfaces": [{"network": "projects/test-project/global/networks/default"}],
    },
}.items():
    with DAG(dag_id=dag_id, schedule=None, start_date=START, catchup=False, params=PARAMS):
        ComputeEngineRestoreMachineImageOperator(
            task_id="restore",
            name="drill-1",
            zone="us-central1-a",
            source_instance="{{ params.source }}",
            image_project="{{ params.image_project or '' }}",
            poll_interval=0.5,
            timeout=600,
            **extra,
        )

with DAG(dag_id="ami_test_list_expanded_as_is", schedule=None, start_date=START, catchup=False):
    listed = ComputeEngineListInstancesOperator(task_id="select", label_selector={"backup": "nightly"})
    ComputeEngineInsertMachineImageOperator.partial(task_id="backup").expand_kwargs(listed.output)
