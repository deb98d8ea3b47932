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
    from airflow_machine_images.testing import harness

    home = Path(tempfile.mkdtemp(prefix="airflow-machine-images-demo-"))
    with ComputeEngineEmulator(operation_seconds=3.0) as emulator:
        emulator.add_instance("us-central1-a/web-1", disk_size_gb=20)
        print(f"Compute Engine emulator: {emulator.url}", flush=True)
        # The set-up the pytest plugin's fixtures use: a private Airflow home, the connection at the emulator.
        harness.configure_airflow(home, DAG_FILE.parent)
        os.environ[harness.CONNECTION_ENV] = harness.connection_json(emulator.url, "demo-project")
        print("Preparing a throw-away Airflow metadata database...", flush=True)
        harness.migrate_metadata_db()
        result = harness.run_dag("example_machine_image", dags_folder=DAG_FILE)  # dag.test(), Airflow 2.11 and 3.x
        image = result.xcoms.get("create_image")
        print()
        print("=" * 78)
        print(f"DAG run {result.dag_run.run_id}: {result.state}")
        if image:
            print(f"Machine image {image['name']}: status {image['status']}, {image['total_storage_bytes']:,} bytes")
            print(f"  selfLink  {image['self_link']}")
            print(f"  operation {image['operation_name']}  requestId {image['request_id']}")
            print("XCom returned by create_image:")
            print(json.dumps(image, indent=2))
        print(f"API requests served by the emulator: {len(emulator.requests)}")
        print("=" * 78)
        return 0 if result.state == "success" and image and image["status"] == "READY" else 1


if __name__ == "__main__":
    sys.exit(main())
