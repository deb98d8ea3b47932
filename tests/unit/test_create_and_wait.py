"""The steps the insert and restore operators share (``CreateAndWaitBaseOperator``), with a stub hook."""

from __future__ import annotations

from typing import Any

from airflow_machine_images.exceptions import OperationFailedError
from airflow_machine_images.flows.deadlines import Deadline
from airflow_machine_images.operators import ComputeEngineInsertMachineImageOperator


class StubHook:
    """Answers ``wait_for_operation`` with ``answer``, or raises it; records the calls."""

    def __init__(self, answer: dict[str, Any] | BaseException) -> None:
        self.answer = answer
        self.calls: list[dict[str, Any]] = []

    def wait_for_operation(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def operator_with(hook: StubHook) -> ComputeEngineInsertMachineImageOperator:
    op = ComputeEngineInsertMachineImageOperator(
        task_id="create", source_instance="zones/us-central1-a/instances/web-1", name="img-a", poll_interval=7
    )
    op.__dict__["hook"] = hook  # the cached property's slot
    op._deadline = Deadline.after(600)
    return op


def test_a_done_operation_goes_to_finished_with_the_zone_deadline_and_backoff() -> None:
    hook = StubHook({"name": "operation-1", "status": "DONE"})
    result = operator_with(hook).wait_out_operation(
        {"name": "operation-1"},
        project_id="p",
        zone="us-central1-a",
        finished=lambda op: ("finished", op["name"]),
        failed=lambda failure: ("failed", failure.operation_name),
    )
    assert result == ("finished", "operation-1")
    (call,) = hook.calls
    assert call["operation_name"] == "operation-1" and call["zone"] == "us-central1-a"
    assert call["project_id"] == "p" and call["max_early_backoff"] == 7
    assert 590 < call["timeout"] <= 600


def test_a_failed_operation_goes_to_failed_not_up() -> None:
    failure = OperationFailedError("operation-1", [{"code": "RESOURCE_ALREADY_EXISTS", "message": "taken"}])
    result = operator_with(StubHook(failure)).wait_out_operation(
        {"name": "operation-1"},
        project_id="p",
        finished=lambda op: ("finished", op["name"]),
        failed=lambda caught: ("failed", caught),
    )
    assert result == ("failed", failure)
