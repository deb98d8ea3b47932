"""The fleet backup's trigger against the emulator over real HTTP, in real event loops: one label list
per cycle whatever the number of images, a partial list never taken as "nothing on the way", bad stored
kwargs refused before any request, the deadline."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from airflow_machine_images.emulator import ComputeEngineEmulator, Fault
from airflow_machine_images.hooks import ComputeEngineMachineImageHook, shared_clients
from airflow_machine_images.triggers import FleetBackupTrigger, polling
from tests.integration.conftest import PROJECT

pytestmark = pytest.mark.integration

RUN = "0f" * 16
SOURCE = f"projects/{PROJECT}/zones/us-central1-a/instances/web-1"


def insert_images(count: int, run_label: str = RUN) -> None:
    hook = ComputeEngineMachineImageHook()
    for n in range(count):
        body = {"name": f"img-{run_label[:4]}-{n:03d}", "labels": {"airflow-ti": run_label}}
        hook.insert_machine_image(body=body, source_instance=SOURCE, request_id=str(uuid.uuid4()))


def trigger(**overrides: Any) -> FleetBackupTrigger:
    kwargs: dict[str, Any] = {"run_label": RUN, "expected": 0, "project_id": PROJECT, "poll_interval": 0.3}
    return FleetBackupTrigger(**(kwargs | overrides))


async def first_event(fleet_trigger: FleetBackupTrigger) -> dict[str, Any]:
    async for event in fleet_trigger.run():
        return event.payload
    raise AssertionError("the trigger yielded nothing")


def test_the_trigger_hands_back_once_every_image_of_the_run_is_made(gcp_connection: ComputeEngineEmulator) -> None:
    insert_images(30)
    insert_images(5, run_label="1e" * 16)  # another run's images: never counted
    gcp_connection.clear_requests()
    event = asyncio.run(first_event(trigger(expected=30, event_extra={"deferral": 1})))
    assert event["status"] == "success" and event["extra"] == {"deferral": 1}
    assert event["progress"] == {"images": 30, "pending": 0}
    assert {image["status"] for image in gcp_connection.machine_images(PROJECT)} == {"READY"}
    lists = [r for r in gcp_connection.requests if r.action == "machineImages.list"]
    assert lists and len(lists) == len(gcp_connection.requests)  # nothing but label lists
    assert all(r.query["filter"] == f'(labels.airflow-ti = "{RUN}")' for r in lists)
    assert shared_clients.active_clients() == 0 and polling.active_pollers() == []


def test_a_list_that_leaves_images_out_is_never_taken_for_nothing_on_the_way(
    gcp_connection: ComputeEngineEmulator,
) -> None:
    insert_images(12)
    while any(image["status"] != "READY" for image in gcp_connection.machine_images(PROJECT)):
        time.sleep(0.1)  # all made: a list that leaves every one out looks like "nothing on the way"
    gcp_connection.inject(Fault(kind="partial_list", action="machineImages.list", times=3, omit_fraction=0.99))
    gcp_connection.clear_requests()
    event = asyncio.run(first_event(trigger(expected=12)))
    assert event["status"] == "success" and event["progress"]["images"] == 12
    lists = [r.fault for r in gcp_connection.requests if r.action == "machineImages.list"]
    assert lists[:3] == ["partial_list"] * 3 and len(lists) >= 4  # not on the warned lists
    assert {image["status"] for image in gcp_connection.machine_images(PROJECT)} == {"READY"}


@pytest.mark.parametrize(
    ("overrides", "parameter"),
    [
        ({"run_label": 'x" OR name != "'}, "run_label"),
        ({"expected": -1}, "expected"),
        ({"pending_at_most": "2"}, "pending_at_most"),
    ],
)
def test_bad_stored_kwargs_end_in_an_error_event_before_any_request(
    gcp_connection: ComputeEngineEmulator, overrides: dict[str, Any], parameter: str
) -> None:
    event = asyncio.run(first_event(trigger(**overrides)))
    assert event["status"] == "error" and event["reason"] == "invalid_argument" and parameter in event["message"]
    assert gcp_connection.requests == []


def test_the_deadline_ends_the_wait_with_a_timeout_event(gcp_connection: ComputeEngineEmulator) -> None:
    insert_images(2)
    event = asyncio.run(first_event(trigger(expected=5, deadline=time.time() + 0.2)))
    assert event["status"] == "error" and event["reason"] == "timeout"
