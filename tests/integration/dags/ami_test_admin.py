"""Test DAGs of issue 25: grandfather-father-son retention, boot verification, coverage without the label
filter, the per-source limit, metrics."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_machine_images.operators import (
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
