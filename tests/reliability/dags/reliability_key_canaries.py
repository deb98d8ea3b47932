"""Canary DAGs for the key-masking paths (issue 23): restores with a key given literally, through a
template and in a Variable's text, and an insert whose text body cannot be read.

The images restored from are protected by the canary keys (``canary-src-*``, made by the test), so a
restore succeeds only if its key reached the API. The literal key stands in for a key pasted into a
DAG file; the others come from the connection and Variables the test sets.
"""

from __future__ import annotations

import json
import os
import traceback
from datetime import datetime
from typing import Any

from airflow.sdk import DAG

from airflow_machine_images.operators import (
    ComputeEngineInsertMachineImageOperator,
    ComputeEngineRestoreMachineImageOperator,
)


def record_failure(context: Any) -> None:
    """Append the failed try's exception (type, text, repr, traceback) to ``$RELIABILITY_FAILURES``."""
    target, error = os.environ.get("RELIABILITY_FAILURES"), context.get("exception")
    if not target:
        return
    entry = {
        "task_id": context["ti"].task_id,
        "error_type": type(error).__name__,
        "error": str(error),
        "repr": repr(error),
        "traceback": "".join(traceback.format_exception(error)) if isinstance(error, BaseException) else "",
    }
    with open(target, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(entry) + "\n")


WAIT = {"poll_interval": 0.2, "timeout": 60, "on_failure_callback": record_failure}

with DAG(dag_id="reliability_restore_literal", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    ComputeEngineRestoreMachineImageOperator(
        task_id="restore",
        name="drill-l",
        zone="us-central1-a",
        source_machine_image="canary-src-l",
        body={"sourceMachineImageEncryptionKey": {"rawKey": "UkVTVE9SRS1MSVRFUkFMLUtFWS1JTi1EQUctMDAwMyE="}},
        **WAIT,
    )

with DAG(dag_id="reliability_restore_templated", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    ComputeEngineRestoreMachineImageOperator(
        task_id="restore",
        name="drill-t",
        zone="us-central1-a",
        source_machine_image="canary-src-t",
        body={"sourceMachineImageEncryptionKey": {"rawKey": "{{ conn.csek_restore.password }}"}},
        deferrable=True,
        **WAIT,
    )

# The whole body is a Variable's text (JSON): without native rendering the field renders to a string.
with DAG(dag_id="reliability_restore_variable", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    ComputeEngineRestoreMachineImageOperator(
        task_id="restore",
        name="drill-v",
        zone="us-central1-a",
        source_machine_image="canary-src-v",
        body="{{ var.value.restore_body }}",  # type: ignore[arg-type]
        **WAIT,
    )

# A Variable whose text is not JSON (a missing brace): the task fails validating it, before any request.
with DAG(dag_id="reliability_insert_malformed", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    ComputeEngineInsertMachineImageOperator(
        task_id="create",
        name="canary-m",
        source_instance="us-central1-a/web-1",
        body="{{ var.value.malformed_body }}",  # type: ignore[arg-type]
        **WAIT,
    )
