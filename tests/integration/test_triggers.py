"""Triggers and the coalescing poller against the emulator, in real event loops over real HTTP."""

from __future__ import annotations

import asyncio
import importlib
import json
import time
import uuid

import pytest

from airflow_machine_images.emulator import ComputeEngineEmulator, Fault
from airflow_machine_images.hooks import ComputeEngineMachineImageHook, shared_clients
from airflow_machine_images.triggers import MachineImageOperationTrigger, MachineImageStatusTrigger, polling
from tests.integration.conftest import PROJECT

pytestmark = pytest.mark.integration

SOURCE_URL = f"projects/{PROJECT}/zones/us-central1-a/instances/web-1"
OPERATION_READS = ("globalOperations.get", "globalOperations.list", "globalOperations.wait")


def start_inserts(count: int, prefix: str = "img") -> list[str]:
    hook = ComputeEngineMachineImageHook()
    return [
        hook.insert_machine_image(
            body={"name": f"{prefix}-{n}"}, source_instance=SOURCE_URL, request_id=str(uuid.uuid4())
        )["name"]
        for n in range(count)
    ]


def operation_trigger(name: str, **overrides: object) -> MachineImageOperationTrigger:
    kwargs: dict = {"operation_name": name, "project_id": PROJECT, "poll_interval": 0.5}
    kwargs.update(overrides)
    return MachineImageOperationTrigger(**kwargs)


async def first_event(trigger: MachineImageOperationTrigger | MachineImageStatusTrigger) -> dict:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("the trigger yielded nothing")


def operation_reads(emulator: ComputeEngineEmulator) -> int:
    return sum(emulator.count(action) for action in OPERATION_READS)


def test_lone_trigger_long_polls_and_succeeds(gcp_connection: ComputeEngineEmulator) -> None:
    (name,) = start_inserts(1)
    gcp_connection.clear_requests()
    event = asyncio.run(first_event(operation_trigger(name, event_extra={"generation": 0})))
    assert event["status"] == "success"
    assert event["operation"]["status"] == "DONE"
    assert event["extra"] == {"generation": 0}
    assert gcp_connection.count("globalOperations.wait") == 1
    assert operation_reads(gcp_connection) == 1
    assert shared_clients.active_clients() == 0
    assert polling.active_pollers() == []


def test_failed_operation_yields_an_error_event_with_codes(gcp_connection: ComputeEngineEmulator) -> None:
    gcp_connection.inject(
        Fault(kind="operation_error", action="machineImages.insert", error_code="QUOTA_EXCEEDED", error_message="no")
    )
    (name,) = start_inserts(1)
    event = asyncio.run(first_event(operation_trigger(name)))
    assert event["status"] == "error"
    assert event["errors"] == [{"code": "QUOTA_EXCEEDED", "message": "no"}]
    assert "QUOTA_EXCEEDED" in event["message"]


def test_missing_operation_yields_an_error_event(gcp_connection: ComputeEngineEmulator) -> None:
    event = asyncio.run(first_event(operation_trigger("operation-that-does-not-exist")))
    assert event["status"] == "error"
    assert "not found" in event["message"]


def test_two_hundred_triggers_share_a_few_list_calls() -> None:
    duration, poll_interval = 3.0, 0.5
    with ComputeEngineEmulator(default_project=PROJECT, operation_seconds=duration) as emu:
        emu.add_instance("us-central1-a/web-1")
        with pytest.MonkeyPatch.context() as patch:
            from tests.integration.conftest import connection_json

            patch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", connection_json(emu.url))
            names = start_inserts(200)
            emu.clear_requests()

            async def wait_all() -> list[dict]:
                triggers = [operation_trigger(n, poll_interval=poll_interval) for n in names]
                return await asyncio.gather(*(first_event(t) for t in triggers))

            events = asyncio.run(wait_all())
        assert [e["status"] for e in events] == ["success"] * 200
        assert len(emu.machine_images(PROJECT)) == 200
        reads = operation_reads(emu)
        budget = duration / poll_interval + 8  # list calls: one per interval, plus read-backs of finished ones
        print(f"200 triggers, {duration:.0f} s operations, poll {poll_interval} s: {reads} operation reads")
        assert reads <= budget, f"{reads} reads for 200 waits (budget {budget:.0f})"


def test_running_triggers_keep_to_the_configured_share_and_a_tasks_smaller_one_paces_only_its_own_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """[machine_images] 120 per project over 2 triggerers: 60 here for the project; a task asking 40 in all
    (20 here) paces its own reads at 20, and the poller and the project stay at 60 (issue 23: it was 20)."""
    monkeypatch.setenv("AIRFLOW__MACHINE_IMAGES__REQUESTS_PER_MINUTE_PER_PROJECT", "120")
    monkeypatch.setenv("AIRFLOW__MACHINE_IMAGES__TRIGGERERS", "2")
    with ComputeEngineEmulator(default_project=PROJECT, operation_seconds=600) as emu:  # nothing finishes
        emu.add_instance("us-central1-a/web-1")
        from tests.integration.conftest import connection_json

        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", connection_json(emu.url))
        first, second = start_inserts(2)

        async def budgets_when_waiting(count: int) -> tuple[float, float, float]:
            while True:  # no deadline of our own: pytest's timeout guards a hang
                pollers = polling.active_pollers()
                # A call made (stats.calls) has passed the project's budget, so its window exists: read before,
                # project_window() below would make the window itself (limit 1); it did under CI load.
                if pollers and pollers[0].waiting == count and pollers[0].stats.calls > 0:
                    own = pollers[0]._own_window(second).limit if count == 2 else 0.0
                    return pollers[0].max_requests_per_minute, polling.project_window(PROJECT, 0).limit, own
                await asyncio.sleep(0.01)

        async def scenario() -> list[tuple[float, float, float]]:
            configured = asyncio.create_task(first_event(operation_trigger(first)))
            seen = [await budgets_when_waiting(1)]
            frugal = asyncio.create_task(first_event(operation_trigger(second, requests_per_minute_per_project=40)))
            seen.append(await budgets_when_waiting(2))
            frugal.cancel()
            await asyncio.gather(frugal, return_exceptions=True)
            seen.append(await budgets_when_waiting(1))
            configured.cancel()
            await asyncio.gather(configured, return_exceptions=True)
            return seen

        assert asyncio.run(scenario()) == [(60, 60, 0), (60, 60, 20), (60, 60, 0)]
    assert polling.active_pollers() == []


def test_serialize_round_trip_holds_only_identifiers_and_settings(gcp_connection: ComputeEngineEmulator) -> None:
    trigger = operation_trigger(
        "operation-1", impersonation_chain=["a@p.iam.gserviceaccount.com"], api_endpoint=gcp_connection.url
    )
    classpath, kwargs = trigger.serialize()
    module, _, cls_name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), cls_name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    json.dumps(kwargs)  # must be JSON-serialisable for the metadata DB
    assert set(kwargs) == {
        "operation_name",
        "zone",
        "project_id",
        "gcp_conn_id",
        "impersonation_chain",
        "api_version",
        "api_endpoint",
        "poll_interval",
        "deadline",
        "event_extra",
        "requests_per_minute_per_project",
    }
    image_classpath, image_kwargs = MachineImageStatusTrigger(machine_image="img", project_id=PROJECT).serialize()
    assert image_classpath == "airflow_machine_images.triggers.MachineImageStatusTrigger"
    assert MachineImageStatusTrigger(**image_kwargs).serialize() == (image_classpath, image_kwargs)


def test_cancelled_trigger_cleans_up_and_a_new_one_finishes_the_wait(gcp_connection: ComputeEngineEmulator) -> None:
    (name,) = start_inserts(1)
    _, kwargs = operation_trigger(name).serialize()

    async def cancel_mid_wait() -> None:
        task = asyncio.ensure_future(first_event(MachineImageOperationTrigger(**kwargs)))
        await asyncio.sleep(0.1)
        assert polling.active_pollers(), "the trigger should be waiting"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.05)
        assert polling.active_pollers() == []
        assert shared_clients.active_clients() == 0

    asyncio.run(cancel_mid_wait())
    assert gcp_connection.operations(PROJECT)[0]["status"] != "DONE"  # cancelled before it finished
    event = asyncio.run(first_event(MachineImageOperationTrigger(**kwargs)))
    assert event["status"] == "success"


def test_image_trigger_waits_for_an_image_that_does_not_exist_yet(gcp_connection: ComputeEngineEmulator) -> None:
    async def scenario() -> dict:
        waiting = asyncio.ensure_future(
            first_event(MachineImageStatusTrigger(machine_image="img-later-0", project_id=PROJECT, poll_interval=0.2))
        )
        await asyncio.sleep(0.5)
        assert not waiting.done()
        await asyncio.to_thread(start_inserts, 1, "img-later")
        return await waiting

    gcp_connection.add_instance("us-central1-a/web-2")
    event = asyncio.run(scenario())
    assert event["status"] == "success"
    assert event["image"]["status"] == "READY"


def test_image_trigger_fails_on_invalid_and_on_missing_when_asked(gcp_connection: ComputeEngineEmulator) -> None:
    gcp_connection.add_machine_image("broken", source_instance="us-central1-a/web-1", status="INVALID")
    invalid = asyncio.run(first_event(MachineImageStatusTrigger(machine_image="broken", project_id=PROJECT)))
    assert invalid["status"] == "error" and "INVALID" in invalid["message"]
    missing = asyncio.run(
        first_event(MachineImageStatusTrigger(machine_image="nope", project_id=PROJECT, fail_on_missing=True))
    )
    assert missing["status"] == "error" and "does not exist" in missing["message"]


def test_transient_faults_while_polling_are_absorbed(
    gcp_connection: ComputeEngineEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(polling.coalescing, "MAX_LONG_POLLS", 1)  # three waiters: coalesced list calls, not long-polls
    names = start_inserts(3)
    gcp_connection.inject(Fault(kind="status", status=503, action="globalOperations.list", times=3))

    async def wait_all() -> list[dict]:
        return await asyncio.gather(*(first_event(operation_trigger(n, poll_interval=0.2)) for n in names))

    assert [e["status"] for e in asyncio.run(wait_all())] == ["success"] * 3
    assert gcp_connection.count("globalOperations.list", status=503) == 3  # the faults were met, and absorbed


def test_coalesced_waits_report_failed_and_missing_operations_as_errors(
    gcp_connection: ComputeEngineEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(polling.coalescing, "MAX_LONG_POLLS", 1)  # four waiters: coalesced list calls, not long-polls
    gcp_connection.inject(
        Fault(kind="operation_error", action="machineImages.insert", error_code="QUOTA_EXCEEDED", error_message="no")
    )
    failed, *healthy = start_inserts(3)  # the fault hits the first insert
    missing = "operation-that-does-not-exist"
    deadline = time.monotonic() + 30
    # Let every operation finish first: one coalesced cycle then settles all four waits, so no waiter
    # is left alone to fall back to long-polling (the poller resumes long-polls once so few remain).
    while any(op["status"] != "DONE" for op in gcp_connection.operations(PROJECT)):
        assert time.monotonic() < deadline, "the emulator's operations never finished"
        time.sleep(0.05)
    gcp_connection.clear_requests()

    async def wait_all() -> dict[str, dict]:
        names = [failed, missing, *healthy]
        events = await asyncio.gather(*(first_event(operation_trigger(n, poll_interval=0.2)) for n in names))
        return dict(zip(names, events, strict=True))

    events = asyncio.run(wait_all())
    assert {name: event["status"] for name, event in events.items()} == {
        failed: "error",
        missing: "error",
        healthy[0]: "success",
        healthy[1]: "success",
    }
    assert events[failed]["errors"] == [{"code": "QUOTA_EXCEEDED", "message": "no"}]
    assert "QUOTA_EXCEEDED" in events[failed]["message"]
    assert events[missing]["operation"] is None and "not found" in events[missing]["message"]
    assert all(events[name]["errors"] == [] for name in healthy)
    # the coalesced path answered them all: list calls, no globalOperations.wait; the one operation the
    # lists did not show was read on its own, since only its own 404 says that it does not exist
    assert gcp_connection.count("globalOperations.list") >= 1
    assert gcp_connection.count("globalOperations.wait") == 0
    gets = [r for r in gcp_connection.requests if r.action == "globalOperations.get"]
    assert [(r.path.rsplit("/", 1)[-1], r.status) for r in gets] == [(missing, 404)]
    assert polling.active_pollers() == []


def test_coalesced_waits_learn_completions_and_outcomes_from_lists_of_operations_finished_since(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sixty waits over real HTTP: after one reading of the unfinished operations, every completion and
    its error come from "finished since" lists (the emulator evaluates their endTime filter); no
    operation is read back by name per completion."""
    monkeypatch.setattr(polling.operations, "RECONCILE_EVERY_CYCLES", 10_000)  # this test watches the steady cycle only
    durations = [2.0 + 0.5 * i for i in range(12)]
    with ComputeEngineEmulator(default_project=PROJECT) as emu:
        for index, seconds in enumerate(durations):
            emu.add_instance(f"us-central1-a/src-{index}", operation_seconds=seconds)
        from tests.integration.conftest import connection_json

        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", connection_json(emu.url))
        emu.inject(Fault(kind="operation_error", action="machineImages.insert", error_code="QUOTA_EXCEEDED"))
        hook = ComputeEngineMachineImageHook()
        names = [
            hook.insert_machine_image(
                body={"name": f"img-{n}"},
                source_instance=f"projects/{PROJECT}/zones/us-central1-a/instances/src-{n % len(durations)}",
                request_id=str(uuid.uuid4()),
            )["name"]
            for n in range(60)
        ]
        emu.clear_requests()

        async def wait_all() -> list[dict]:
            return await asyncio.gather(*(first_event(operation_trigger(n, poll_interval=0.3)) for n in names))

        events = asyncio.run(wait_all())
        filters = [r.query.get("filter", "") for r in emu.requests if r.action == "globalOperations.list"]
    assert [e["status"] for e in events] == ["error"] + ["success"] * 59
    assert events[0]["errors"][0]["code"] == "QUOTA_EXCEEDED"
    finished_since = [f for f in filters if f.startswith('(status = "DONE") (endTime > "')]
    name_reads = [f for f in filters if f.startswith("(name = ")]
    assert filters.count('status != "DONE"') == 1  # the first cycle: 60 names take 2 name filters, this 1 page
    assert len(finished_since) >= 2
    assert len(name_reads) <= 1  # only operations that were already finished when the waits began
    assert polling.active_pollers() == []
