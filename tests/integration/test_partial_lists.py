"""Lists that leave items out (with a ``warning``, or silently) are never read as "absent".

Real list answers may carry ``warning`` (``UNREACHABLE``, ``PARTIAL_SUCCESS``,
``LIST_OVERHEAD_QUOTA_EXCEED``: discovery documents, ``OperationList``/``MachineImageList``) and leave
items out. The emulator does so on demand (``partial_list_fraction``); the shared poller, the triggers,
the operators and retention must still give every waiter its right result.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_machine_images.emulator import ComputeEngineEmulator, Fault
from airflow_machine_images.hooks import ComputeEngineMachineImageHook
from airflow_machine_images.triggers import MachineImageOperationTrigger, MachineImageStatusTrigger, polling
from tests.integration.conftest import PROJECT, load_dag, task_states, xcom_result

pytestmark = pytest.mark.integration

SOURCE_URL = f"projects/{PROJECT}/zones/us-central1-a/instances/web-1"
WARNED = "warns that items may be missing"


def start_inserts(count: int, prefix: str) -> list[str]:
    hook = ComputeEngineMachineImageHook()
    return [
        hook.insert_machine_image(
            body={"name": f"{prefix}-{n}"}, source_instance=SOURCE_URL, request_id=str(uuid.uuid4())
        )["name"]
        for n in range(count)
    ]


async def first_event(trigger: Any) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("the trigger yielded nothing")


def test_twenty_coalesced_waiters_facing_partial_lists_each_get_their_right_result(
    gcp_connection: ComputeEngineEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    # Four of the twenty operations fail on the server (RESOURCE_OPERATION_RATE_EXCEEDED), one waited-for
    # operation does not exist, and every list answer leaves out 30 % of its items with a warning.
    gcp_connection.inject(Fault(kind="operation_error", action="machineImages.insert", times=4))
    names = start_inserts(20, "img")
    failed = set(names[:4])
    missing = "operation-that-does-not-exist"
    gcp_connection.set_options(partial_list_fraction=0.3, partial_list_warning="UNREACHABLE")
    gcp_connection.clear_requests()

    async def wait_all() -> list[dict[str, Any]]:
        triggers = [
            MachineImageOperationTrigger(operation_name=name, project_id=PROJECT, poll_interval=0.2)
            for name in [*names, missing]
        ]
        return list(await asyncio.gather(*(first_event(t) for t in triggers)))

    with caplog.at_level(logging.WARNING, logger="airflow_machine_images.triggers.polling"):
        events = dict(zip([*names, missing], asyncio.run(wait_all()), strict=True))

    for name in names:
        event = events[name]
        if name in failed:
            assert event["status"] == "error" and event["errors"][0]["code"] == "RESOURCE_OPERATION_RATE_EXCEEDED"
        else:
            assert event["status"] == "success" and event["operation"]["status"] == "DONE", event
    assert events[missing]["status"] == "error" and "not found" in events[missing]["message"]
    lists = [r for r in gcp_connection.requests if r.action == "globalOperations.list"]
    assert lists and gcp_connection.count("globalOperations.get") >= 1  # the unlisted ones were read alone
    warned = [r for r in caplog.records if WARNED in r.getMessage()]
    assert warned and "UNREACHABLE" in warned[0].getMessage()
    assert len(warned) <= len(lists)  # once per cycle, never once per waiter
    assert polling.active_pollers() == []


def test_an_image_a_partial_list_leaves_out_is_not_reported_missing(gcp_connection: ComputeEngineEmulator) -> None:
    for n in range(10):
        gcp_connection.add_machine_image(f"ready-{n}", source_instance="us-central1-a/web-1")
    gcp_connection.set_options(partial_list_fraction=0.5, partial_list_warning="PARTIAL_SUCCESS")

    async def wait_all() -> list[dict[str, Any]]:
        triggers = [
            MachineImageStatusTrigger(machine_image=f"ready-{n}", project_id=PROJECT, fail_on_missing=True)
            for n in range(10)
        ]
        triggers.append(MachineImageStatusTrigger(machine_image="nope", project_id=PROJECT, fail_on_missing=True))
        return list(await asyncio.gather(*(first_event(t) for t in triggers)))

    *ready, nope = asyncio.run(wait_all())
    assert [e["status"] for e in ready] == ["success"] * 10
    assert nope["status"] == "error" and "does not exist" in nope["message"]


@pytest.mark.usefixtures("airflow_db")
def test_mapped_deferrable_backups_and_a_sensor_complete_through_dag_test_despite_partial_lists(
    gcp_connection: ComputeEngineEmulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # dag.test() runs one trigger at a time; without long-polls every wait goes through the lists.
    monkeypatch.setattr(polling.OperationPoller, "supports_long_poll", False)
    for n in range(2, 7):
        gcp_connection.add_instance(f"us-central1-a/web-{n}")
    gcp_connection.set_options(partial_list_fraction=0.3, partial_list_warning="LIST_OVERHEAD_QUOTA_EXCEED")
    # A failure that is not the per-source limit (RESOURCE_OPERATION_RATE_EXCEEDED, which is waited out within
    # the try): each costs one Airflow retry.
    gcp_connection.inject(
        Fault(kind="operation_error", action="machineImages.insert", times=2, error_code="INTERNAL_ERROR")
    )
    dag_run = load_dag("ami_test_partial_lists").test()
    assert task_states(dag_run) == {"backup": ["success"] * 6, "submit": "success", "wait": "success"}
    images = gcp_connection.machine_images(PROJECT)
    expected = {f"web-{n}-partial" for n in range(1, 7)} | {"solo-partial"}
    assert sorted((i["name"], i["status"]) for i in images) == sorted((n, "READY") for n in expected)  # none twice
    tries = {ti.map_index: ti.try_number for ti in dag_run.get_task_instances() if ti.task_id == "backup"}
    assert sorted(tries.values()) == [1, 1, 1, 1, 2, 2]  # the two failed operations each cost one retry
    assert xcom_result(dag_run, "wait")["status"] == "DONE"
    assert gcp_connection.count("globalOperations.list") > 0 and gcp_connection.count("globalOperations.wait") == 0
    assert any(WARNED in r.getMessage() for r in caplog.records if r.name == "airflow_machine_images.triggers.polling")


@pytest.mark.usefixtures("airflow_db")
def test_retention_deletes_nothing_on_a_warned_listing(
    gcp_connection: ComputeEngineEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    old = datetime.now(timezone.utc) - timedelta(days=3)
    for n in range(4):
        gcp_connection.add_machine_image(
            f"old-{n}",
            source_instance="us-central1-a/web-1",
            labels={"managed-by": "airflow"},
            creation_timestamp=old + timedelta(hours=n),
        )
    gcp_connection.inject(Fault(kind="partial_list", action="machineImages.list", omit_fraction=0.25))
    dag_run = load_dag("ami_test_partial_retention").test()
    assert task_states(dag_run) == {"prune": "failed"}
    assert gcp_connection.count("machineImages.delete") == 0
    assert len(gcp_connection.machine_images(PROJECT)) == 4
    output = capfd.readouterr()
    assert (
        "deleted nothing: machineImages.list warned that images may be missing (UNREACHABLE" in output.out + output.err
    )
    time.sleep(0)  # the next run, with a full listing, prunes as usual
    second = load_dag("ami_test_partial_retention").test()
    assert task_states(second) == {"prune": "success"}
    assert sorted(xcom_result(second, "prune")["deleted"]) == ["old-0", "old-1", "old-2"]


def test_the_trigger_logs_operation_warnings(
    gcp_connection: ComputeEngineEmulator, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # Operation.warnings (discovery documents): non-fatal problems the operation met; logged, not fatal.
    gcp_connection.inject(Fault(kind="operation_warning", action="machineImages.insert", warning_message="heads up"))
    (name,) = start_inserts(1, "warned")
    with caplog.at_level(logging.WARNING):
        event = asyncio.run(first_event(MachineImageOperationTrigger(operation_name=name, project_id=PROJECT)))
    assert event["status"] == "success"
    output = capfd.readouterr()
    text = output.out + output.err + "\n".join(r.getMessage() for r in caplog.records)
    assert f"Operation {name} warns: NOT_CRITICAL_ERROR: heads up (fault=operation_warning)" in text


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("dag_id", ["ami_test_operation_sensor_poke", "ami_test_operation_sensor_deferrable"])
def test_operation_warnings_reach_the_task_log_of_the_sensor(
    gcp_connection: ComputeEngineEmulator,
    dag_id: str,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    gcp_connection.inject(Fault(kind="operation_warning", action="machineImages.insert", warning_message="heads up"))
    with caplog.at_level(logging.WARNING):
        dag_run = load_dag(dag_id).test()
    assert task_states(dag_run) == {"create": "success", "wait": "success"}
    output = capfd.readouterr()
    text = output.out + output.err + "\n".join(r.getMessage() for r in caplog.records)
    assert "warns: NOT_CRITICAL_ERROR: heads up" in text
