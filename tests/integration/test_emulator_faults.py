"""Scripted and random faults of the emulator, seen from a real HTTP client."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import Counter
from typing import Any

import pytest
import requests

from airflow_machine_images.emulator import ComputeEngineEmulator, Fault
from tests.integration.test_emulator import PROJECT, Api, google_error

pytestmark = pytest.mark.integration


@pytest.fixture
def emu() -> Any:
    with ComputeEngineEmulator(default_project=PROJECT, operation_seconds=0.3, seed=5) as emulator:
        emulator.add_instance("us-central1-a/web-1")
        yield emulator


@pytest.fixture
def api(emu: ComputeEngineEmulator) -> Api:
    return Api(emu)


def test_status_fault_answers_without_doing_the_work(emu: ComputeEngineEmulator, api: Api) -> None:
    emu.inject(Fault(kind="status", status=503, action="machineImages.insert", retry_after_seconds=1.2))
    response = api.insert("img-1", request_id=str(uuid.uuid4()))
    google_error(response, 503, "backendError")
    assert response.headers["Retry-After"] == "2"  # whole seconds, rounded up
    assert emu.machine_images() == []
    api.insert_ok("img-1")  # times=1: used up
    assert [(r.status, r.fault) for r in emu.requests] == [(503, "status"), (200, None)]


def test_status_faults_are_used_in_order_and_only_on_their_action(emu: ComputeEngineEmulator, api: Api) -> None:
    emu.inject(Fault(kind="status", status=500, action="machineImages.get", times=2))
    emu.inject(Fault(kind="status", status=429, action="machineImages.get"))
    api.insert_ok("img-1")
    statuses = [api.call("GET", "global/machineImages/img-1").status_code for _ in range(4)]
    assert statuses == [500, 500, 429, 200]
    assert "Retry-After" not in api.call("GET", "global/machineImages/img-1").headers
    assert emu.count("machineImages.get", status=500) == 2
    assert emu.pending_faults() == []


def test_every_time_fault_until_cleared(emu: ComputeEngineEmulator, api: Api) -> None:
    emu.inject(Fault(kind="status", status=503, times=None))
    for _ in range(3):
        assert api.call("GET", "zones/us-central1-a/instances/web-1").status_code == 503
    assert api.call("GET", "global/machineImages").status_code == 503
    emu.clear_faults()
    assert api.call("GET", "global/machineImages").status_code == 200


def test_drop_closes_the_connection_without_doing_the_work(emu: ComputeEngineEmulator, api: Api) -> None:
    emu.inject(Fault(kind="drop", action="machineImages.insert"))
    with pytest.raises(requests.ConnectionError):
        api.insert("img-1", request_id=str(uuid.uuid4()))
    assert emu.machine_images() == []
    (dropped,) = emu.requests
    assert dropped.status is None and dropped.fault == "drop"
    api.insert_ok("img-1")


def test_accept_then_drop_does_the_work_then_loses_the_answer(emu: ComputeEngineEmulator, api: Api) -> None:
    emu.inject(Fault(kind="accept_then_drop", action="machineImages.insert"))
    request_id = str(uuid.uuid4())
    with pytest.raises(requests.ConnectionError):
        api.insert("img-1", request_id=request_id)
    assert [i["name"] for i in emu.machine_images()] == ["img-1"]
    (lost,) = emu.operations()
    retried = api.insert_ok("img-1", request_id=request_id)  # the retry finds the original operation
    assert retried["name"] == lost["name"]
    assert len(emu.machine_images()) == 1
    records = emu.requests
    assert [(r.status, r.fault) for r in records] == [(None, "accept_then_drop"), (200, None)]
    assert records[0].query["requestId"] == records[1].query["requestId"]


def test_slow_does_the_work_then_answers_late(emu: ComputeEngineEmulator, api: Api) -> None:
    emu.inject(Fault(kind="slow", action="machineImages.insert", delay_seconds=0.6))
    request_id = str(uuid.uuid4())
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        api.insert("img-1", request_id=request_id, timeout=0.2)
    assert time.monotonic() - started < 0.5
    assert [i["name"] for i in emu.machine_images()] == ["img-1"]
    time.sleep(0.5)
    (slow,) = emu.requests
    assert slow.fault == "slow" and slow.status == 200 and slow.finished - slow.started >= 0.6
    assert api.insert_ok("img-1", request_id=request_id)["clientOperationId"] == request_id


def test_early_wait_fault_returns_the_running_operation_at_once(emu: ComputeEngineEmulator, api: Api) -> None:
    emu.inject(Fault(kind="early_wait"))  # no action: it can only apply to waits
    name = api.insert_ok("img-1")["name"]
    api.call("GET", "global/machineImages/img-1")  # not consumed by other actions
    assert api.wait(name)["status"] != "DONE"  # answered before the operation ended (no timing asserted)
    assert api.wait(name)["status"] == "DONE"
    assert [r.fault for r in emu.requests if r.action == "globalOperations.wait"] == ["early_wait", None]


def test_operation_error_on_insert_leaves_no_image(emu: ComputeEngineEmulator, api: Api) -> None:
    emu.inject(
        Fault(
            kind="operation_error",
            action="machineImages.insert",
            error_code="ZONE_RESOURCE_POOL_EXHAUSTED",
            error_message="The zone does not have enough resources",
            http_error_status_code=503,
        )
    )
    operation = api.insert_ok("img-1")
    assert "error" not in operation
    assert api.image("img-1")["status"] == "CREATING"
    done = api.until_done(operation["name"])
    assert done["error"] == {
        "errors": [{"code": "ZONE_RESOURCE_POOL_EXHAUSTED", "message": "The zone does not have enough resources"}]
    }
    assert done["httpErrorStatusCode"] == 503 and done["httpErrorMessage"] == "SERVICE UNAVAILABLE"
    assert done["progress"] == 100
    google_error(api.call("GET", "global/machineImages/img-1"), 404, "notFound")
    assert emu.machine_images() == []
    api.insert_ok("img-1")  # the name is free again


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (None, "Operation rate exceeded for the resource. Too frequent operations from the source resource."),
        ("QUOTA_EXCEEDED", "The operation failed: QUOTA_EXCEEDED."),
        ("INTERNAL_ERROR", "The operation failed: INTERNAL_ERROR."),
    ],
)
def test_an_operation_error_s_message_follows_its_code(
    emu: ComputeEngineEmulator, api: Api, code: str | None, message: str
) -> None:
    """It said "Operation rate exceeded" whatever code was set (issue 24 item 6): the service's wording is
    kept where a source gives it (RESOURCE_OPERATION_RATE_EXCEEDED), any other code is only named."""
    chosen = {"error_code": code} if code else {}
    emu.inject(Fault(kind="operation_error", action="machineImages.insert", **chosen))  # type: ignore[arg-type]
    done = api.until_done(api.insert_ok("img-1")["name"])
    assert done["error"]["errors"] == [{"code": code or "RESOURCE_OPERATION_RATE_EXCEEDED", "message": message}]


def test_operation_error_on_delete_keeps_the_image(emu: ComputeEngineEmulator, api: Api) -> None:
    emu.add_machine_image("img-1")
    emu.inject(Fault(kind="operation_error", action="machineImages.delete"))
    done = api.until_done(api.ok("DELETE", "global/machineImages/img-1")["name"])
    assert done["error"]["errors"][0]["code"] == "RESOURCE_OPERATION_RATE_EXCEEDED"
    assert done["httpErrorStatusCode"] == 400 and done["httpErrorMessage"] == "BAD REQUEST"
    assert api.image("img-1")["status"] == "READY"


def test_faults_are_validated() -> None:
    with pytest.raises(ValueError, match="kind"):
        Fault(kind="explode")
    with pytest.raises(ValueError, match="cannot apply"):
        Fault(kind="early_wait", action="machineImages.insert")
    with pytest.raises(ValueError, match="cannot apply"):
        Fault(kind="operation_error", action="machineImages.get")
    with pytest.raises(ValueError, match="action"):
        Fault(kind="drop", action="machineImages.explode")
    with pytest.raises(ValueError, match="times"):
        Fault(kind="drop", times=0)


def test_injected_fault_objects_are_not_mutated(emu: ComputeEngineEmulator, api: Api) -> None:
    fault = Fault(kind="status", action="machineImages.list", times=1)
    emu.inject(fault)
    emu.inject(fault)
    assert [api.call("GET", "global/machineImages").status_code for _ in range(3)] == [503, 503, 200]
    assert fault.times == 1


def test_random_faults_pick_only_kinds_valid_for_each_action(emu: ComputeEngineEmulator) -> None:
    emu.inject_random(rate=1.0, kinds=("early_wait", "operation_error", "accept_then_drop"), seed=3)
    api = Api(emu)
    for _ in range(5):
        assert api.call("GET", "global/machineImages").status_code == 200  # nothing applies to a list
    for n in range(6):
        with contextlib.suppress(requests.ConnectionError):
            api.insert(f"img-{n}")
    faults = Counter((r.action, r.fault) for r in emu.requests)
    assert faults[("machineImages.list", None)] == 5
    assert set(faults) - {("machineImages.list", None)} <= {
        ("machineImages.insert", "operation_error"),
        ("machineImages.insert", "accept_then_drop"),
    }
    assert sum(count for (action, _), count in faults.items() if action == "machineImages.insert") == 6


def test_random_faults_are_reproducible_with_a_seed() -> None:
    def run(seed: int) -> list[tuple[str | None, int | None]]:
        with ComputeEngineEmulator(default_project=PROJECT, operation_seconds=0) as emu:
            emu.inject_random(rate=0.5, kinds=("status", "drop"), actions=["machineImages.list"], seed=seed)
            api = Api(emu)
            for _ in range(20):
                with contextlib.suppress(requests.ConnectionError):
                    api.call("GET", "global/machineImages")
            assert api.call("GET", "zones/us-central1-a/instances/x").status_code == 404  # not a listed action
            return [(r.fault, r.status) for r in emu.requests if r.action == "machineImages.list"]

    first = run(42)
    assert first == run(42)
    kinds = {fault for fault, _ in first}
    assert {None, "status", "drop"} <= kinds
    assert all(status in (500, 503, 429) for fault, status in first if fault == "status")
    assert all(status is None for fault, status in first if fault == "drop")


def test_random_status_faults_carry_retry_after_on_429_and_503(emu: ComputeEngineEmulator, api: Api) -> None:
    emu.inject_random(rate=1.0, kinds=("status",), statuses=(429, 500), retry_after_seconds=3, seed=1)
    seen: dict[int, str | None] = {}
    for _ in range(12):
        response = api.call("GET", "global/machineImages")
        seen[response.status_code] = response.headers.get("Retry-After")
    assert seen == {429: "3", 500: None}


def test_random_slow_faults(emu: ComputeEngineEmulator, api: Api) -> None:
    emu.inject_random(rate=1.0, kinds=("slow",), slow_seconds=0.2, seed=1)
    started = time.monotonic()
    assert api.call("GET", "global/machineImages").status_code == 200
    assert time.monotonic() - started >= 0.2
    assert emu.requests[-1].fault == "slow"


def test_scripted_faults_come_before_random_ones(emu: ComputeEngineEmulator, api: Api) -> None:
    emu.inject_random(rate=1.0, kinds=("status",), statuses=(500,), seed=1)
    emu.inject(Fault(kind="status", status=418, action="machineImages.list"))
    assert [api.call("GET", "global/machineImages").status_code for _ in range(2)] == [418, 500]


def test_rate_limit_fault_answers_403_with_error_details_for_its_duration(emu: ComputeEngineEmulator, api: Api) -> None:
    emu.inject(Fault(kind="rate_limit", action="machineImages.get", duration_seconds=0.5))
    api.insert_ok("img-1")
    limited = api.call("GET", "global/machineImages/img-1")
    assert limited.status_code == 403
    error = limited.json()["error"]
    assert error["errors"][0]["reason"] == "rateLimitExceeded" and error["errors"][0]["domain"] == "usageLimits"
    assert error["details"][0]["reason"] == "RATE_LIMIT_EXCEEDED"
    assert api.call("GET", "global/machineImages/img-1").status_code == 403  # still inside the window
    time.sleep(0.6)
    assert api.call("GET", "global/machineImages/img-1").status_code == 200  # the window refilled
    assert emu.pending_faults() == []


def test_concurrent_operations_fault_carries_its_error_info(emu: ComputeEngineEmulator, api: Api) -> None:
    emu.inject(Fault(kind="concurrent_operations", action="machineImages.insert"))
    answer = api.insert("img-1")
    assert answer.status_code == 403
    assert answer.json()["error"]["details"][0]["reason"] == "CONCURRENT_OPERATIONS_QUOTA_EXCEEDED"
    assert emu.machine_images(PROJECT) == []


def test_an_operation_error_is_not_used_up_by_a_replay(emu: ComputeEngineEmulator, api: Api) -> None:
    request_id = str(uuid.uuid4())
    api.insert_ok("img-1", request_id=request_id)
    emu.inject(Fault(kind="operation_error", action="machineImages.insert"))
    api.insert_ok("img-1", request_id=request_id)  # replayed: no new operation, the fault waits
    assert len(emu.pending_faults()) == 1
