"""Real-stack benchmark DAGs (:mod:`benchmarks.bench_stack`): the mapped pattern, and the loop-lag probe.

``bench_stack_mapped`` is today's recommended pattern for a fleet: the list operator selects the fleet
by label (``fleet=<selector>`` from the run's conf), a task turns the listing into one ``{name,
source_instance}`` per instance, and the deferrable insert operator is mapped over them. The fleet
backup operator's DAG is the e2e suite's ``e2e_fleet_backup_operator`` (same selection).
``bench_stack_lag_probe`` defers one task to :class:`benchmarks.loop_lag.LoopLagProbeTrigger`, which
measures the triggerer's event-loop lag beside the backup's triggers until the benchmark stops it.
``retries=1`` absorbs the known Airflow 3.3.2 race (apache/airflow#67287).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, BaseOperator, Param, get_current_context, task

from airflow_machine_images.operators import ComputeEngineInsertMachineImageOperator, ComputeEngineListInstancesOperator
from airflow_machine_images.planning.fleet import backup_kwargs

DEFAULTS = {"retries": 1, "retry_delay": timedelta(seconds=3)}

with DAG(
    dag_id="bench_stack_mapped",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULTS,
    params={"selector": Param("bench", type="string")},
    tags=["benchmark"],
):
    select = ComputeEngineListInstancesOperator(task_id="select", label_selector={"fleet": "{{ params.selector }}"})

    @task
    def plan(instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One image name per instance and run."""
        stamp = get_current_context()["dag_run"].run_after.strftime("%Y%m%d%H%M%S")
        return backup_kwargs(instances, stamp, labels={"purpose": "bench-mapped"})

    ComputeEngineInsertMachineImageOperator.partial(task_id="backup", deferrable=True, timeout=3600).expand_kwargs(
        plan(select.output)
    )


class LoopLagProbeOperator(BaseOperator):
    """Defer to the loop-lag probe until the benchmark creates the stop file; return its figures."""

    template_fields = ("out_path", "stop_path")

    def __init__(self, *, out_path: str, stop_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.out_path = out_path
        self.stop_path = stop_path

    def execute(self, context: Any) -> None:
        from benchmarks.loop_lag import LoopLagProbeTrigger

        self.defer(trigger=LoopLagProbeTrigger(self.out_path, self.stop_path), method_name="execute_complete")

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        return event


with DAG(
    dag_id="bench_stack_lag_probe",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"out_path": Param("/tmp/lag.json", type="string"), "stop_path": Param("/tmp/lag.stop", type="string")},
    tags=["benchmark"],
):
    LoopLagProbeOperator(task_id="probe", out_path="{{ params.out_path }}", stop_path="{{ params.stop_path }}")
