"""e2e guard: failures that ``retries=1`` must not hide from the e2e checks.

``fails_every_try`` fails on both tries (a real failure: the run fails); ``fails_first_try``
fails once and succeeds on its retry, which is not the known Airflow race either. The e2e
checker must report both, so the retries the suite allows for apache/airflow#67287 cannot
mask a broken task.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, get_current_context, task

with DAG(
    dag_id="e2e_real_failures",
    description="e2e: a task that always fails and one that fails once, both with retries=1",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=1)},
    tags=["e2e"],
) as dag:

    @task
    def fails_every_try() -> None:
        """A real, permanent failure."""
        raise RuntimeError("e2e: this task fails on every try")

    @task
    def fails_first_try() -> str:
        """A flaky task: fails on try 1, succeeds on try 2."""
        try_number = get_current_context()["ti"].try_number
        if try_number == 1:
            raise RuntimeError("e2e: this task fails on its first try only")
        return f"succeeded on try {try_number}"

    fails_every_try()
    fails_first_try()
