"""Test DAGs for the insert operator: image name and source come from the run's params."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import DAG

from airflow_machine_images.operators import ComputeEngineInsertMachineImageOperator

PARAMS = {"name": "img-a", "source_instance": "us-central1-a/web-1"}

for dag_id, extra in {
    "ami_test_insert": {},
    "ami_test_insert_fail_if_exists": {"if_exists": "fail"},
    "ami_test_insert_no_wait": {"wait_for_completion": False},
    # Airflow retries a failed try at once (dag.test() runs try 2 in the same run)
    "ami_test_insert_retry": {"retries": 1, "retry_delay": timedelta(0)},
    "ami_test_insert_retries_5": {"retries": 5, "retry_delay": timedelta(0)},
    "ami_test_insert_no_retries": {"retries": 0, "timeout": 300},
}.items():
    with DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, params=PARAMS):
        ComputeEngineInsertMachineImageOperator(
            task_id="create",
            name="{{ params.name }}",
            source_instance="{{ params.source_instance }}",
            poll_interval=0.5,
            **{"timeout": 60, **extra},
        )


def record_failure(context: Any) -> None:
    """Append the failure (exception type and text, and when) to ``$AMI_TEST_FAILURES``."""
    target = os.environ.get("AMI_TEST_FAILURES")
    if target:
        error = context.get("exception")
        entry = {"type": type(error).__name__, "error": str(error), "at": time.monotonic()}
        with open(target, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(entry) + "\n")


# A blocking wait whose timeout ends long before the operation (tests/integration/test_limits.py).
with DAG(
    dag_id="ami_test_insert_short_timeout", schedule=None, start_date=datetime(2026, 1, 1), catchup=False, params=PARAMS
):
    ComputeEngineInsertMachineImageOperator(
        task_id="create",
        name="{{ params.name }}",
        source_instance="{{ params.source_instance }}",
        poll_interval=0.5,
        timeout=3,
        on_failure_callback=record_failure,
    )
