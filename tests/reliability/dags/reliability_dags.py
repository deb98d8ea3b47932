"""DAGs the reliability tests run with ``dag.test()``: a mapped fleet under faults, and canary DAGs."""

from __future__ import annotations

import json
import os
import traceback
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG

from airflow_machine_images.operators import ComputeEngineInsertMachineImageOperator

#: Image names of the mapped DAG, per task (one per map index).
MAPPED_NAMES = {f"create_{mode}": [f"dagtest-{mode[0]}-{n}" for n in range(4)] for mode in ("blocking", "deferrable")}


def record_failed_try(context: Any) -> None:
    """Append each failed try (its exception's type and text) to ``$RELIABILITY_FAILURES``."""
    target = os.environ.get("RELIABILITY_FAILURES")
    if not target:
        return
    ti, error = context["ti"], context.get("exception")
    entry = {
        "task_id": ti.task_id,
        "map_index": ti.map_index,
        "try_number": ti.try_number,
        "error_type": type(error).__name__,
        "error": str(error),
        "repr": repr(error),
        "traceback": "".join(traceback.format_exception(error)) if isinstance(error, BaseException) else "",
    }
    with open(target, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(entry) + "\n")


with DAG(dag_id="reliability_mapped", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    for task_id, names in MAPPED_NAMES.items():
        ComputeEngineInsertMachineImageOperator.partial(
            task_id=task_id,
            source_instance="us-central1-a/web-1",
            deferrable=task_id.endswith("deferrable"),
            poll_interval=0.2,
            timeout=120,
            retries=3,
            retry_delay=timedelta(0),
            on_retry_callback=record_failed_try,
            on_failure_callback=record_failed_try,
        ).expand(name=names)


# Canary DAGs: customer-supplied keys given literally and through a template (the ``csek``
# connection's password), for the secret-hygiene scan. The canary values come from the environment
# the test sets; the literal ones stand in for keys pasted into a DAG file.
CANARY_RAW_KEY = os.environ.get("RELIABILITY_CANARY_RAW_KEY", "")
CANARY_RSA_KEY = os.environ.get("RELIABILITY_CANARY_RSA_KEY", "")

for dag_id, deferrable in (("reliability_canary_blocking", False), ("reliability_canary_deferrable", True)):
    with DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
        ComputeEngineInsertMachineImageOperator(
            task_id="create",
            name=f"canary-{'d' if deferrable else 'b'}",
            source_instance="us-central1-a/web-1",
            description="canary image",
            machine_image_encryption_key={"rawKey": "{{ conn.csek.password }}"},
            source_disk_encryption_keys=[
                {"sourceDisk": "zones/us-central1-a/disks/web-1", "diskEncryptionKey": {"rawKey": CANARY_RAW_KEY}},
                {
                    "sourceDisk": "zones/us-central1-a/disks/data-1",
                    "diskEncryptionKey": {"rsaEncryptedKey": CANARY_RSA_KEY},
                },
            ],
            deferrable=deferrable,
            poll_interval=0.2,
            timeout=60,
            on_failure_callback=record_failed_try,
        )


# Keys written literally in the DAG file (no template, no connection: Airflow's own masking of
# connection passwords plays no part), one as ``machine_image_encryption_key`` and one inside
# ``body``. Base64 of 32 bytes each, as the API requires.
with DAG(dag_id="reliability_canary_literal", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    ComputeEngineInsertMachineImageOperator(
        task_id="create",
        name="canary-l",
        source_instance="us-central1-a/web-1",
        machine_image_encryption_key={"rawKey": "TElURVJBTC1LRVktSU4tVEhFLURBRy1GSUxFLTAwMDE="},
        body={
            "sourceDiskEncryptionKeys": [
                {
                    "sourceDisk": "zones/us-central1-a/disks/web-1",
                    "diskEncryptionKey": {"rawKey": "TElURVJBTC1CT0RZLUtFWS1JTi1EQUctRklMRS0wMDI="},
                }
            ]
        },
        poll_interval=0.2,
        timeout=60,
    )


# Keys whose argument renders to text, not a dict (no render_template_as_native_obj): a Variable
# holding JSON text, and a JSON Variable rendered through ``{{ var.json... }}`` (a dict's repr).
with DAG(dag_id="reliability_canary_text", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    ComputeEngineInsertMachineImageOperator(
        task_id="create",
        name="canary-t",
        source_instance="us-central1-a/web-1",
        machine_image_encryption_key="{{ var.value.csek_json }}",  # type: ignore[arg-type]
        source_disk_encryption_keys="{{ var.json.csek_disks }}",  # type: ignore[arg-type]
        poll_interval=0.2,
        timeout=60,
        on_failure_callback=record_failed_try,
    )
