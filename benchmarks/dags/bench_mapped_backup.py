"""A mapped fleet backup: one machine image per instance, blocking and deferrable.

``BENCH_E2E_INSTANCES`` (default 50) sets the fleet size; the instances ``us-central1-a/vm-00`` ...
must exist in the connection's project (the benchmark seeds them in the emulator).
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG

from airflow_machine_images.operators import ComputeEngineInsertMachineImageOperator

FLEET = [f"us-central1-a/vm-{index:02d}" for index in range(int(os.environ.get("BENCH_E2E_INSTANCES", "50")))]

# The warm-up DAG (one image) pays Airflow's first-dag.test() start-up before the timed runs.
for mode, deferrable, fleet in (("blocking", False, FLEET), ("deferrable", True, FLEET), ("warmup", False, FLEET[:1])):
    with DAG(
        dag_id=f"bench_mapped_backup_{mode}",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        tags=["benchmark"],
    ):
        ComputeEngineInsertMachineImageOperator.partial(
            task_id="backup",
            name=f"{mode}-{{{{ ts_nodash | lower }}}}-{{{{ ti.map_index }}}}",
            labels={"purpose": "benchmark"},
            deferrable=deferrable,
            poll_interval=10,
            timeout=600,
        ).expand(source_instance=fleet)
