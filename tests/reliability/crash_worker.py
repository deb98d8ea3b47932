"""A worker or a triggerer in its own process, for the crash tests (``python -m tests.reliability.crash_worker``).

``worker JSON``: run one try of the insert operator for the task instance described by JSON (as an
Airflow worker would) and print ``RESULT <json>``.

``trigger CLASSPATH FILE``: re-create a trigger from the kwargs stored in FILE (the text the metadata
DB holds, ``Trigger.encrypt_kwargs``), run it in a new event loop (as a triggerer would) and print
``EVENT <json>``. ``WAITING`` is printed when the trigger starts.

The environment (``AIRFLOW_HOME``, the connection to the emulator) is inherited from the test.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    from airflow_machine_images.operators import ComputeEngineInsertMachineImageOperator
    from tests.reliability.harness import FakeTaskInstance, context_of

    ti = FakeTaskInstance(spec["dag_id"], spec["task_id"], spec["run_id"], spec["map_index"], spec["try_number"])
    operator = ComputeEngineInsertMachineImageOperator(
        task_id=spec["task_id"], name=spec["name"], source_instance=spec["source_instance"], poll_interval=0.2
    )
    return dict(operator.execute(context_of(ti)))


async def run_trigger(classpath: str, stored: str) -> dict[str, Any]:
    from airflow.models.trigger import Trigger
    from airflow.sdk._shared.module_loading import import_string

    trigger = import_string(classpath)(**Trigger._decrypt_kwargs(stored))
    print("WAITING", flush=True)
    async for event in trigger.run():
        return dict(event.payload)
    raise RuntimeError("the trigger yielded no event")


def main(argv: list[str]) -> int:
    if argv[0] == "worker":
        print("RESULT", json.dumps(run_worker(json.loads(argv[1]))), flush=True)
        return 0
    if argv[0] == "trigger":
        payload = asyncio.run(run_trigger(argv[1], Path(argv[2]).read_text(encoding="utf-8")))
        print("EVENT", json.dumps(payload), flush=True)
        return 0
    raise SystemExit(f"unknown mode {argv[0]!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
