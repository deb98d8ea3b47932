"""Parse every example DAG, then run the deferrable-sensor example by ``dag.test()`` against the emulator.

``make compat`` runs this in each cell (the demo covers ``example_machine_image.py``): every file
under ``example_dags/`` must import on every supported Airflow, and the sensor example exercises the
insert without waiting, the deferrable operation sensor and its trigger, and the XCom hand-over.
Usage: ``python scripts/check_example_dags.py`` (exit 0 when all is well).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "example_dags"
SENSOR_DAG = "example_machine_image_sensor"


def main() -> int:
    """Parse the examples and run the sensor example; print one line per check."""
    from airflow_machine_images.emulator import ComputeEngineEmulator

    home = Path(tempfile.mkdtemp(prefix="airflow-machine-images-examples-"))
    with ComputeEngineEmulator(operation_seconds=2.0) as emulator:
        emulator.add_instance("us-central1-a/web-1")
        os.environ.update(
            {
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLES),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
                "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": json.dumps(
                    {
                        "conn_type": "google_cloud_platform",
                        "extra": {
                            "project": "demo-project",
                            "is_anonymous": True,
                            "compute_api_endpoint": emulator.url,
                        },
                    }
                ),
            }
        )
        # Airflow reads its configuration on import: import it only now.
        from airflow.utils.db import initdb

        from airflow_machine_images.compat import DagBag, dag_test

        initdb()
        files = sorted(EXAMPLES.glob("*.py"))
        bag = DagBag(dag_folder=str(EXAMPLES))
        print(f"example DAGs parsed: {len(bag.dag_ids)} DAGs from {len(files)} files: {sorted(bag.dag_ids)}")
        if bag.import_errors or len(bag.dag_ids) < len(files):
            print(f"example DAGs FAILED to import: {bag.import_errors}", file=sys.stderr)
            return 1

        dag = bag.get_dag(SENSOR_DAG)
        if dag is None:
            print(f"{SENSOR_DAG} is not among the example DAGs", file=sys.stderr)
            return 1
        dag_run = dag_test(dag)  # DAG.test() on Airflow 2.11 and 3.x alike
        images = emulator.machine_images()
        print(f"{SENSOR_DAG}: DAG run {dag_run.state}; images {[(i['name'], i['status']) for i in images]}")
        ok = str(dag_run.state) == "success" and len(images) == 1 and images[0]["status"] == "READY"
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
