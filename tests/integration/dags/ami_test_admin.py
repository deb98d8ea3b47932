"""Test DAGs of issue 25: grandfather-father-son retention, boot verification, coverage without the label
filter, the per-source limit, metrics."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_machine_images.operators import (
    ComputeEngineDeleteMachineImageOperator,
    ComputeEngineInsertMachineImageOperator,
    ComputeEngineMachineImageCoverageCheckOperator,
    ComputeEngineMachineImageRetentionOperator,
)


def dag(dag_id: str, **kwargs: object) -> DAG:
    return DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, **kwargs)  # type: ignore[arg-type]


with dag("ami_test_retention_gfs", params={"dry_run": True}):
    ComputeEngineMachineImageRetentionOperator(
        task_id="prune",
        label_selector={"managed-by": "airflow"},
        keep_last=2,
        keep_daily=7,
        keep_weekly=4,
        keep_monthly=3,
        keep_yearly=2,
        dry_run="{{ params.dry_run }}",
        timeout=120,
    )


# The per-source limit: two images of one instance in a row; the second is refused and waited out.
for suffix, deferrable in (("", False), ("_deferrable", True)):
    with dag(f"ami_test_source_limit{suffix}", default_args={"retries": 0}):
        first_image = ComputeEngineInsertMachineImageOperator(
            task_id="first", name="web-1-a", source_instance="us-central1-a/web-1", timeout=120
        )
        second_image = ComputeEngineInsertMachineImageOperator(
            task_id="second",
            name="web-1-b",
            source_instance="us-central1-a/web-1",
            deferrable=deferrable,
            poll_interval=1,
            timeout=120,
        )
        first_image >> second_image

with dag("ami_test_source_limit_short_deadline", default_args={"retries": 0}):
    ComputeEngineInsertMachineImageOperator(
        task_id="first", name="web-1-a", source_instance="us-central1-a/web-1", timeout=120
    ) >> ComputeEngineInsertMachineImageOperator(
        task_id="second", name="web-1-b", source_instance="us-central1-a/web-1", poll_interval=1, timeout=4
    )

# Metrics: an image made (deferred: the triggerer sees its operation DONE) and one made and deleted on the
# worker, then a coverage check of the instances labelled backup=nightly (web-2, imaged, and web-3, not).
with dag("ami_test_metrics", default_args={"retries": 0}):
    kept = ComputeEngineInsertMachineImageOperator(
        task_id="make_kept", name="web-2-m", source_instance="us-central1-a/web-2", deferrable=True, poll_interval=1
    )
    made = ComputeEngineInsertMachineImageOperator(
        task_id="make_dropped", name="web-1-m", source_instance="us-central1-a/web-1", poll_interval=1
    )
    dropped = ComputeEngineDeleteMachineImageOperator(task_id="delete", name="web-1-m", poll_interval=1)
    coverage = ComputeEngineMachineImageCoverageCheckOperator(
        task_id="coverage", label_selector={"backup": "nightly"}, max_age=3600
    )
    kept >> made >> dropped >> coverage
