"""Triggers take their kwargs back from the database: a bad one harms its own trigger only.

Every kwarg is checked when the trigger runs; a bad one ends in an ``invalid_argument`` error event
before any request and before the trigger joins the poller it would share with other triggers.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from airflow_machine_images.events import EVENT_INVALID_ARGUMENT
from airflow_machine_images.hooks import ComputeEngineMachineImageHook
from airflow_machine_images.triggers import MachineImageOperationTrigger, MachineImageStatusTrigger
from tests.integration.conftest import PROJECT

if TYPE_CHECKING:
    from airflow_machine_images.emulator import ComputeEngineEmulator

pytestmark = pytest.mark.integration

SOURCE_URL = f"projects/{PROJECT}/zones/us-central1-a/instances/web-1"

TAMPERED: list[tuple[str, Any]] = [
    ("project_id", "Not-A-Project"),
    ("poll_interval", -1),
    ("poll_interval", "10"),
    ("api_version", "v9"),
    ("api_endpoint", "ftp://127.0.0.1:1"),
    ("gcp_conn_id", 3),
    ("impersonation_chain", [1, 2]),
    ("deadline", "soon"),
    ("event_extra", "not a dict"),
    ("requests_per_minute_per_project", 0),
    ("requests_per_minute_per_project", "60"),
]


async def first_event(trigger: MachineImageOperationTrigger | MachineImageStatusTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("the trigger yielded nothing")


def start_insert(name: str) -> str:
    return ComputeEngineMachineImageHook().insert_machine_image(
        body={"name": name}, source_instance=SOURCE_URL, request_id=str(uuid.uuid4())
    )["name"]


@pytest.mark.parametrize(("kwarg", "value"), TAMPERED)
def test_a_tampered_kwarg_is_an_error_event_before_any_request(
    gcp_connection: ComputeEngineEmulator, kwarg: str, value: Any
) -> None:
    kwargs: dict[str, Any] = {"operation_name": "operation-1", "project_id": PROJECT, "poll_interval": 0.2}
    kwargs[kwarg] = value
    event = asyncio.run(first_event(MachineImageOperationTrigger(**kwargs)))
    assert event["status"] == "error"
    assert event["reason"] == EVENT_INVALID_ARGUMENT
    assert f"Invalid {kwarg}" in event["message"]
    assert gcp_connection.requests == []


def test_one_bad_trigger_does_not_fail_the_others_sharing_its_poller(gcp_connection: ComputeEngineEmulator) -> None:
    names = [start_insert(f"img-{n}") for n in range(3)]

    async def all_events() -> list[dict[str, Any]]:
        good = [MachineImageOperationTrigger(operation_name=n, project_id=PROJECT, poll_interval=0.2) for n in names]
        bad = MachineImageOperationTrigger(operation_name=names[0], project_id=PROJECT, poll_interval=float("nan"))
        return await asyncio.gather(*(first_event(t) for t in [bad, *good]))

    bad_event, *good_events = asyncio.run(all_events())
    assert bad_event["reason"] == EVENT_INVALID_ARGUMENT
    assert [e["status"] for e in good_events] == ["success"] * 3


@pytest.mark.parametrize(
    "given",
    [
        "img-p",
        f"projects/{PROJECT}/global/machineImages/img-p",
        f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/global/machineImages/img-p",
    ],
)
def test_the_image_trigger_takes_a_name_path_or_url(gcp_connection: ComputeEngineEmulator, given: str) -> None:
    gcp_connection.add_machine_image("img-p", source_instance="us-central1-a/web-1")
    trigger = MachineImageStatusTrigger(machine_image=given, project_id=PROJECT, poll_interval=0.2)
    event = asyncio.run(first_event(trigger))
    assert event["status"] == "success"
    assert event["machine_image"] == "img-p"
    assert event["image"]["status"] == "READY"


def test_a_bad_fail_on_missing_is_an_error_event(gcp_connection: ComputeEngineEmulator) -> None:
    trigger = MachineImageStatusTrigger(machine_image="img-p", project_id=PROJECT, fail_on_missing="yes")  # type: ignore[arg-type]
    event = asyncio.run(first_event(trigger))
    assert event["reason"] == EVENT_INVALID_ARGUMENT
    assert "Invalid fail_on_missing" in event["message"]


# The first trigger in a triggerer must not import Google's libraries or aiohttp on the event loop:
# that blocks every other trigger ("async thread was blocked for 0.79 seconds").
IMPORT_PROBE = """
import asyncio, importlib.abc, json, sys, threading, time
import airflow.sdk
from airflow_machine_images.triggers import MachineImageStatusTrigger

loop_thread = []
on_loop = []

class Recorder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        heavy = name.split(".")[0] in ("google", "aiohttp", "requests", "airflow_machine_images")
        if heavy and loop_thread and threading.current_thread() is loop_thread[0]:
            on_loop.append(name)
        return None

sys.meta_path.insert(0, Recorder())

async def main():
    loop_thread.append(threading.current_thread())
    trigger = MachineImageStatusTrigger(
        machine_image="img-x", project_id="test-project", poll_interval=0.2, deadline=time.time() + 2
    )
    async for event in trigger.run():
        return event.payload

event = asyncio.run(main())
print(json.dumps({"on_loop": sorted(set(on_loop)), "reason": event.get("reason")}))
"""


def test_the_first_trigger_imports_nothing_on_the_event_loop(gcp_connection: ComputeEngineEmulator) -> None:
    out = subprocess.run([sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["reason"] == "timeout"  # it really ran: the image never appears, the deadline ends it
    assert result["on_loop"] == []
