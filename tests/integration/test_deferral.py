"""A deferrable insert frees its worker in every branch: each wait goes to the triggerer.

The operator runs ``execute()`` against the emulator over real HTTP; a wait that would block the
worker shows up as a ``TaskDeferred`` that did NOT happen (the call returns, or blocks on the worker).
The trigger is then run in a real event loop, and ``execute_complete`` finishes the task.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.sdk.exceptions import TaskDeferred

from airflow_machine_images.emulator import Fault
from airflow_machine_images.hooks import ComputeEngineMachineImageHook
from airflow_machine_images.operators import ComputeEngineInsertMachineImageOperator
from airflow_machine_images.triggers import MachineImageOperationTrigger, MachineImageStatusTrigger
from tests.integration.conftest import PROJECT, SOURCE

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_machine_images.emulator import ComputeEngineEmulator

pytestmark = pytest.mark.integration


@dataclass
class FakeTaskInstance:
    """The parts of a task instance the operator reads (and the link it stores)."""

    dag_id: str = "deferral_dag"
    task_id: str = "create"
    run_id: str = "manual__1"
    map_index: int = -1
    try_number: int = 1
    xcoms: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def operator(**overrides: Any) -> ComputeEngineInsertMachineImageOperator:
    kwargs: dict[str, Any] = {
        "task_id": "create",
        "name": "img-a",
        "source_instance": SOURCE,
        "deferrable": True,
        "poll_interval": 0.2,
        "timeout": 60,
    }
    kwargs.update(overrides)
    return ComputeEngineInsertMachineImageOperator(**kwargs)


def deferred(call: Callable[[], object]) -> TaskDeferred:
    """The deferral ``call`` ends in (it must not return or block on the worker)."""
    with pytest.raises(TaskDeferred) as raised:
        call()
    assert raised.value.method_name == "execute_complete"
    return raised.value


def trigger_event(defer: TaskDeferred) -> dict[str, Any]:
    """Run the deferral's trigger in a real event loop; its first event."""

    async def first_event() -> dict[str, Any]:
        async for event in defer.trigger.run():
            return event.payload
        raise AssertionError("the trigger yielded nothing")

    return asyncio.run(asyncio.wait_for(first_event(), 90))  # the trigger's own deadline is 60 s


def finish(op: ComputeEngineInsertMachineImageOperator, context: dict[str, Any], defer: TaskDeferred) -> Any:
    return op.execute_complete(context, trigger_event(defer))


def test_running_operation_is_waited_for_in_the_triggerer(gcp_connection: ComputeEngineEmulator) -> None:
    op, context = operator(), {"ti": FakeTaskInstance()}
    defer = deferred(lambda: op.execute(context))
    assert isinstance(defer.trigger, MachineImageOperationTrigger)
    assert gcp_connection.count("globalOperations.wait") == 0  # nothing waited on the worker
    result = finish(op, context, defer)
    assert result["status"] == "READY"
    assert result["reused"] is False


def test_the_tasks_request_budget_travels_in_the_trigger_kwargs(gcp_connection: ComputeEngineEmulator) -> None:
    op, context = operator(requests_per_minute_per_project=90), {"ti": FakeTaskInstance()}
    defer = deferred(lambda: op.execute(context))
    assert defer.trigger.serialize()[1]["requests_per_minute_per_project"] == 90
    assert finish(op, context, defer)["status"] == "READY"


def test_reusing_an_image_still_creating_defers(gcp_connection: ComputeEngineEmulator) -> None:
    gcp_connection.add_machine_image("img-a", source_instance=SOURCE, status="CREATING")
    op, context = operator(), {"ti": FakeTaskInstance()}
    defer = deferred(lambda: op.execute(context))
    assert isinstance(defer.trigger, MachineImageStatusTrigger)
    # One insert (409) and one read of the existing image: no polling on the worker.
    assert [r.action for r in gcp_connection.requests] == ["machineImages.insert", "machineImages.get"]
    result = finish(op, context, defer)
    assert result["status"] == "READY"
    assert result["reused"] is True
    assert len(gcp_connection.machine_images(PROJECT)) == 1


def test_read_back_of_an_image_not_ready_yet_defers(gcp_connection: ComputeEngineEmulator) -> None:
    """A retry gets its DONE operation replayed, but the image of that name is being made again."""
    context = {"ti": FakeTaskInstance()}
    first = operator(deferrable=False).execute(context)
    hook = ComputeEngineMachineImageHook()
    gone = hook.delete_machine_image(name="img-a", request_id=str(uuid.uuid4()))
    hook.wait_for_operation(operation_name=gone["name"], timeout=30)
    gcp_connection.add_machine_image("img-a", source_instance=SOURCE, status="CREATING")
    gcp_connection.clear_requests()

    op = operator()
    retry = {"ti": FakeTaskInstance(try_number=2)}
    defer = deferred(lambda: op.execute(retry))
    assert isinstance(defer.trigger, MachineImageStatusTrigger)
    insert = [r for r in gcp_connection.requests if r.action == "machineImages.insert"]
    assert [r.query["requestId"] for r in insert] == [first["request_id"]]  # the replayed request
    assert gcp_connection.count("machineImages.get") == 1  # the read-back, then the triggerer takes over
    result = finish(op, retry, defer)
    assert result["status"] == "READY"
    assert result["operation_name"] == first["operation_name"]
    assert len(gcp_connection.machine_images(PROJECT)) == 1


def test_image_that_vanishes_while_deferred_is_submitted_again(gcp_connection: ComputeEngineEmulator) -> None:
    """Someone else's insert of the same name and source is CREATING, then fails: its image vanishes."""
    gcp_connection.add_instance("us-central1-a/slow-1", operation_seconds=1.0)
    gcp_connection.inject(Fault(kind="operation_error", action="machineImages.insert"))
    ComputeEngineMachineImageHook().insert_machine_image(
        body={"name": "img-a"},
        source_instance=f"projects/{PROJECT}/zones/us-central1-a/instances/slow-1",
        request_id=str(uuid.uuid4()),
    )
    op, context = operator(source_instance="us-central1-a/slow-1"), {"ti": FakeTaskInstance()}
    defer = deferred(lambda: op.execute(context))
    assert isinstance(defer.trigger, MachineImageStatusTrigger)
    event = trigger_event(defer)
    assert event["status"] == "error"
    # The resubmission defers again (its operation runs in the triggerer), under a new requestId.
    again = deferred(lambda: op.execute_complete(context, event))
    assert isinstance(again.trigger, MachineImageOperationTrigger)
    assert again.trigger.event_extra["generation"] == 1
    result = finish(op, context, again)
    assert result["status"] == "READY"
    assert result["reused"] is False
    assert [i["name"] for i in gcp_connection.machine_images(PROJECT)] == ["img-a"]


@pytest.mark.parametrize(("status", "error_type"), [(403, "PermissionDeniedError"), (400, "InvalidRequestError")])
def test_a_permanent_api_error_in_the_triggerer_fails_the_task_without_retries_as_on_the_worker(
    gcp_connection: ComputeEngineEmulator, status: int, error_type: str
) -> None:
    """A 403 (permission) or a 400 (invalid) answered to the triggerer's first call while it waits. On the worker the
    same answer raises a permanent error, which Airflow does not retry; resumed from the trigger's event the
    task raised a retried ComputeEngineError instead (each retry deferred again into the same answer)."""
    op = operator()
    context = {"ti": FakeTaskInstance()}
    defer = deferred(lambda: op.execute(context))
    gcp_connection.inject(Fault(kind="status", status=status, times=1))  # the next request, whatever it is
    event = trigger_event(defer)
    assert (event["reason"], event["error_type"], event["http_status"]) == ("api_error", error_type, status)
    with pytest.raises(AirflowFailException) as raised:  # Airflow fails it at once, whatever its retries
        op.execute_complete(context, event)
    assert type(raised.value).__name__ == error_type and raised.value.http_status == status  # type: ignore[attr-defined]
