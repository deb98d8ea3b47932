"""Request budgets of the waits in the triggerer, over real HTTP (issue 23, findings 2 and 3).

2. A poller kept to the smallest ``requests_per_minute_per_project`` among its waiters: one trigger at
   1 a minute made five other 1-second operations time out at their 40 s deadline.
3. The budget was per poller (per kind and zone), not per project: waits in N zones plus image waits
   spent about N+2 times the configured per-project budget.

Triggers run as the triggerer runs them (``run()`` in one event loop) against the emulator; the
emulator's request log gives what the project saw and when.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from airflow_machine_images.emulator import ComputeEngineEmulator
from airflow_machine_images.hooks import ComputeEngineMachineImageHook
from airflow_machine_images.triggers import MachineImageOperationTrigger, MachineImageStatusTrigger, polling
from tests.integration.conftest import PROJECT, connection_json

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

ZONES = ("us-central1-a", "us-east1-b", "europe-west1-c")


async def first_event(trigger: Any) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("the trigger yielded nothing")


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[ComputeEngineEmulator]:
    with ComputeEngineEmulator(default_project=PROJECT, operation_seconds=1.0, seed=3) as emu:
        for zone in ZONES:
            emu.add_instance(f"{zone}/web-1")
        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", connection_json(emu.url))
        yield emu


def inserts(count: int, instance: str = "us-central1-a/instances/web-1") -> list[str]:
    hook = ComputeEngineMachineImageHook()
    source = f"projects/{PROJECT}/zones/{instance}"
    return [
        hook.insert_machine_image(body={"name": f"img-{n}"}, source_instance=source, request_id=str(uuid.uuid4()))[
            "name"
        ]
        for n in range(count)
    ]


@pytest.mark.parametrize("others", [5, polling.MAX_LONG_POLLS + 2], ids=["long-polls", "coalesced"])
def test_one_frugal_waiter_does_not_slow_the_others(emulator: ComputeEngineEmulator, others: int) -> None:
    """Five (or fourteen) 1-second operations and one wait at 1 request a minute: all within their deadline.

    The deadline (20 s) is a third of the minute a 1-a-minute budget needs between two reads: had the
    frugal budget paced the shared poller, the others could not have been read twice in time.
    """
    names = inserts(others + 1)
    deadline = time.time() + 20

    async def scenario() -> list[dict[str, Any]]:
        triggers = [
            MachineImageOperationTrigger(
                operation_name=name,
                project_id=PROJECT,
                poll_interval=0.2,
                deadline=deadline,
                requests_per_minute_per_project=1 if n == 0 else None,
            )
            for n, name in enumerate(names)
        ]
        return list(await asyncio.gather(*(first_event(t) for t in triggers)))

    events = asyncio.run(scenario())
    assert [e["status"] for e in events[1:]] == ["success"] * others, [e["message"] for e in events]
    # The frugal one is answered too: by its one long-poll, or by the others' coalesced lists at no cost.
    assert events[0]["status"] == "success", events[0]["message"]


def test_waits_in_three_zones_and_on_images_keep_to_one_budget_per_project(monkeypatch: pytest.MonkeyPatch) -> None:
    """Zonal waits in three zones, global operation waits and image waits: one project, one budget.

    The budget's minute is shortened to 3 s (``BUDGET_WINDOW_SECONDS``) so the test sees many of them;
    every wait answers at once, unfinished (``early_wait_probability=1``), so each poller would spend
    its whole budget on its own.
    """
    window, budget = 3.0, 12
    monkeypatch.setattr(polling.windows, "BUDGET_WINDOW_SECONDS", window)
    monkeypatch.setenv("AIRFLOW__MACHINE_IMAGES__REQUESTS_PER_MINUTE_PER_PROJECT", str(budget))
    monkeypatch.setenv("AIRFLOW__MACHINE_IMAGES__TRIGGERERS", "1")
    with ComputeEngineEmulator(default_project=PROJECT, operation_seconds=6.0, early_wait_probability=1.0) as emulator:
        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", connection_json(emulator.url))
        events = waits_in_three_zones_and_on_images(emulator)
        started = sorted(r.started for r in emulator.requests)
        kinds = {r.action for r in emulator.requests}
    assert [e["status"] for e in events] == ["success"] * 7, [e["message"] for e in events]
    assert {"zoneOperations.wait", "globalOperations.wait", "machineImages.list"} <= kinds
    # Any window a little shorter than the budget's (the server sees each request a little after it
    # was counted, and not all equally late) holds at most the budget.
    busiest = max(sum(1 for t in started if s <= t < s + window - 0.25) for s in started)
    assert busiest <= budget, f"{busiest} requests in one window of {window} s (budget {budget})"
    assert len(started) >= 2 * budget  # the waits spanned several windows: the budget was what bound them


def waits_in_three_zones_and_on_images(emulator: ComputeEngineEmulator) -> list[dict[str, Any]]:
    """Zonal operations in three zones, two image inserts: seven triggers in one loop; their events."""
    hook = ComputeEngineMachineImageHook()
    for zone in ZONES:
        emulator.add_instance(f"{zone}/web-1")
    emulator.add_instance(f"{ZONES[0]}/src-1")
    zonal = {
        zone: hook.delete_instance(zone=zone, name="web-1", request_id=str(uuid.uuid4()))["name"] for zone in ZONES
    }
    images = inserts(2, instance=f"{ZONES[0]}/instances/src-1")
    emulator.clear_requests()
    deadline = time.time() + 90

    async def scenario() -> list[dict[str, Any]]:
        settings: dict[str, Any] = {"project_id": PROJECT, "poll_interval": 0.05, "deadline": deadline}
        triggers: list[Any] = [
            MachineImageOperationTrigger(operation_name=name, zone=zone, **settings) for zone, name in zonal.items()
        ]
        triggers += [MachineImageOperationTrigger(operation_name=name, **settings) for name in images]
        triggers += [MachineImageStatusTrigger(machine_image=f"img-{n}", **settings) for n in range(2)]
        return list(await asyncio.gather(*(first_event(t) for t in triggers)))

    return asyncio.run(scenario())
