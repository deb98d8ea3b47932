"""``make demo``: the example DAG, run by real Airflow (``dag.test()``) against the local emulator.

No cloud account needed: the emulator serves the Compute Engine API on a free loopback port, the
``google_cloud_default`` connection points at it with anonymous credentials, and Airflow runs the
DAG in this process with a throw-away metadata database.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DAG_FILE = REPO / "example_dags" / "example_machine_image.py"


def main() -> int:
    from airflow_machine_images.emulator import ComputeEngineEmulator

    home = Path(tempfile.mkdtemp(prefix="airflow-machine-images-demo-"))
    with ComputeEngineEmulator(operation_seconds=3.0) as emulator:
        emulator.add_instance("us-central1-a/web-1", disk_size_gb=20)
        print(f"Compute Engine emulator: {emulator.url}", flush=True)
        os.environ.update(
            {
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(DAG_FILE.parent),
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

        print("Preparing a throw-away Airflow metadata database...", flush=True)
        initdb()
        dag = DagBag(dag_folder=str(DAG_FILE)).get_dag("example_machine_image")
        if dag is None:
            print(f"Could not load the example DAG from {DAG_FILE}", file=sys.stderr)
            return 1
        dag_run = dag_test(dag)  # DAG.test() on Airflow 2.11 and 3.x alike
        image = _returned_value(dag_run, "create_image")
        print()
        print("=" * 78)
        print(f"DAG run {dag_run.run_id}: {dag_run.state}")
        if image:
            print(f"Machine image {image['name']}: status {image['status']}, {image['total_storage_bytes']:,} bytes")
            print(f"  selfLink  {image['self_link']}")
            print(f"  operation {image['operation_name']}  requestId {image['request_id']}")
            print("XCom returned by create_image:")
            print(json.dumps(image, indent=2))
        print(f"API requests served by the emulator: {len(emulator.requests)}")
        print("=" * 78)
        return 0 if str(dag_run.state) == "success" and image and image["status"] == "READY" else 1


def _returned_value(dag_run: object, task_id: str) -> dict | None:
    """The XCom a task of the finished run returned.

    A plain ``select`` of the XCom table: ``XComModel.get_many`` returns an ORM query on Airflow 3.0
    and a ``Select`` from 3.1 on, and the table's model is ``XCom`` on 2.x; the demo runs on all of them.
    """
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow_machine_images.compat import XComModel

    with create_session() as session:
        row = session.execute(
            select(XComModel.value).where(
                XComModel.key == "return_value",
                XComModel.dag_id == dag_run.dag_id,  # type: ignore[attr-defined]
                XComModel.run_id == dag_run.run_id,  # type: ignore[attr-defined]
                XComModel.task_id == task_id,
                XComModel.map_index == -1,
            )
        ).first()
    return None if row is None else XComModel.deserialize_value(row)


if __name__ == "__main__":
    sys.exit(main())
