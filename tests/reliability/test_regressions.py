"""Regression tests for the bugs the reliability campaigns found in package code."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from airflow_machine_images.emulator import Fault
from airflow_machine_images.exceptions import OperationFailedError
from airflow_machine_images.operators import ComputeEngineInsertMachineImageOperator
from tests.reliability.conftest import PROJECT, SOURCE
from tests.reliability.harness import TaskSpec, Triggerer, insert_operator, run_task_instance

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_machine_images.emulator import ComputeEngineEmulator
    from tests.reliability.harness import ClientSettings

pytestmark = pytest.mark.reliability


@pytest.fixture
def triggerer() -> Iterator[Triggerer]:
    runner = Triggerer()
    yield runner
    runner.close()


def spec(*, deferrable: bool) -> TaskSpec:
    return TaskSpec("regressions", "create", "manual__1", -1, "img-r", SOURCE, deferrable)


def make_operator(task: TaskSpec) -> ComputeEngineInsertMachineImageOperator:
    return insert_operator(task, timeout=60, retries=3)


def fail_inserts(emulator: ComputeEngineEmulator, times: int) -> None:
    emulator.inject(
        Fault(
            kind="operation_error",
            action="machineImages.insert",
            times=times,
            error_code="ZONE_RESOURCE_POOL_EXHAUSTED",
        )
    )


@pytest.mark.parametrize("deferrable", [False, True])
def test_a_retry_after_a_failed_operation_submits_again(
    emulator: ComputeEngineEmulator, fast_clients: ClientSettings, triggerer: Triggerer, deferrable: bool
) -> None:
    """Found by the fault campaign: every Airflow retry replayed the first try's failed operation.

    The task-derived requestId made the server answer each retry with the original, failed
    operation, so ``retries`` could never help while the server remembered the id.
    """
    fail_inserts(emulator, times=1)
    outcome = run_task_instance(spec(deferrable=deferrable), make_operator, triggerer, retries=3)

    assert [t.outcome for t in outcome.tries] == ["failed", "success"]
    assert "ZONE_RESOURCE_POOL_EXHAUSTED" in str(outcome.tries[0].error)
    assert outcome.result is not None and outcome.result["status"] == "READY"
    inserts = [op for op in emulator.operations(PROJECT) if op["operationType"] == "insert"]
    assert [bool(op.get("error")) for op in inserts] == [True, False]
    assert outcome.result["request_id"] == inserts[1]["clientOperationId"] != inserts[0]["clientOperationId"]
    assert [i["name"] for i in emulator.machine_images(PROJECT)] == ["img-r"]


def test_every_try_makes_one_fresh_submission_and_raises_its_own_failure(
    emulator: ComputeEngineEmulator, fast_clients: ClientSettings, triggerer: Triggerer
) -> None:
    # Was: after 3 generations (MAX_GENERATIONS) every further try only replayed the last failure.
    fail_inserts(emulator, times=10)
    outcome = run_task_instance(spec(deferrable=False), make_operator, triggerer, retries=4)

    assert not outcome.succeeded
    assert all("ZONE_RESOURCE_POOL_EXHAUSTED" in str(t.error) for t in outcome.tries)
    assert outcome.tries[-1].error_type == OperationFailedError.__name__
    inserts = [op for op in emulator.operations(PROJECT) if op["operationType"] == "insert"]
    assert len(inserts) == 5  # one fresh generation per try, no cap
    assert len({op["clientOperationId"] for op in inserts}) == 5
    assert emulator.machine_images(PROJECT) == []


def test_a_first_try_does_not_resubmit_its_own_failure(
    emulator: ComputeEngineEmulator, fast_clients: ClientSettings, triggerer: Triggerer
) -> None:
    fail_inserts(emulator, times=1)
    outcome = run_task_instance(spec(deferrable=False), make_operator, triggerer, retries=0)

    assert [t.outcome for t in outcome.tries] == ["failed"]
    assert len([op for op in emulator.operations(PROJECT) if op["operationType"] == "insert"]) == 1


def sent_labels(emulator: ComputeEngineEmulator, **arguments: Any) -> dict[str, str]:
    from tests.reliability.harness import FakeTaskInstance, context_of

    operator = ComputeEngineInsertMachineImageOperator(
        task_id="create", name="img-l", source_instance=SOURCE, wait_for_completion=False, **arguments
    )
    ti = FakeTaskInstance("regressions", "create", "manual__1", -1, 1)
    operator.execute(context_of(ti))
    (insert,) = [r for r in emulator.requests if r.action == "machineImages.insert"]
    assert insert.body is not None
    return dict(insert.body["labels"])


def test_labels_given_in_body_are_accepted_and_get_the_default_labels(emulator: ComputeEngineEmulator) -> None:
    """Found by the bad-input campaign: ``body={"labels": ...}`` was rejected as "also given as labels"."""
    labels = sent_labels(emulator, body={"labels": {"team": "web"}})
    assert labels["team"] == "web"
    assert labels["managed-by"] == "airflow" and "airflow-ti" in labels


@pytest.mark.parametrize("count", [61, 62, 64])
def test_up_to_64_labels_are_accepted_whatever_the_default_labels(emulator: ComputeEngineEmulator, count: int) -> None:
    """Found by the bad-input campaign: 61 to 64 valid labels were rejected (the defaults made them 65+)."""
    mine = {f"k{n}": "v" for n in range(count)}
    labels = sent_labels(emulator, labels=mine)
    assert mine.items() <= labels.items()
    assert len(labels) == 64
    if count <= 62:  # what room is left goes to the task-instance key first, then managed-by
        assert {"airflow-ti", "managed-by"} <= labels.keys()


@pytest.mark.parametrize(
    ("action", "answer", "named"),
    [
        ("globalOperations.list", {"items": [{"status": "DONE"}]}, "without a name"),
        ("globalOperations.list", {"items": [1]}, "not an object"),
        ("machineImages.list", {"items": [{"name": "a", "labels": "x=y"}]}, "'labels'"),
        ("globalOperations.wait", {"name": "operation-1", "status": "READY"}, "not an operation status"),
        ("machineImages.get", {"name": "a", "status": "READY", "storageLocations": 5}, "'storageLocations'"),
        ("machineImages.get", {"name": "a", "status": "READY", "selfLink": 7}, "'selfLink'"),
    ],
)
def test_answers_of_the_wrong_shape_are_malformed_not_crashes(action: str, answer: object, named: str) -> None:
    """Found by the garbage-server tests: such answers crashed the poller (KeyError), the summary
    (TypeError) or made a wait loop until its timeout (an operation status that is never DONE)."""
    import json

    from airflow_machine_images.api.calls import ApiCall
    from airflow_machine_images.api.responses import parse_response
    from airflow_machine_images.exceptions import MalformedResponseError

    call = ApiCall(action, "GET", "https://compute.googleapis.com/compute/beta/projects/p/global/x")
    with pytest.raises(MalformedResponseError, match=named):
        parse_response(call, 200, json.dumps(answer).encode(), {})


def test_an_error_that_quotes_the_request_carries_no_key_and_no_token() -> None:
    """Found by the canary scan: a server (or proxy) quoting the request in its error put the
    customer-supplied keys and the bearer token into the exception text, and so into task logs."""
    import json

    from airflow_machine_images.api.calls import ApiCall
    from airflow_machine_images.api.responses import parse_response
    from airflow_machine_images.exceptions import ComputeEngineApiError, MalformedResponseError
    from tests.strategies import CANARY_RAW_KEY, CANARY_RSA_KEY

    body = {
        "name": "a",
        "machineImageEncryptionKey": {"rawKey": CANARY_RAW_KEY},
        "x": [{"rsaEncryptedKey": CANARY_RSA_KEY}],
    }
    call = ApiCall(
        "machineImages.insert", "POST", "https://compute.googleapis.com/compute/beta/projects/p/x", body=body
    )
    quoted = f"bad request {json.dumps(body)} Authorization: Bearer ya29.someToken-123 token=tok-en-value-99"
    error_json = json.dumps({"error": {"code": 400, "message": quoted, "errors": [{"message": quoted}]}}).encode()
    for status, raw, kind in ((400, error_json, ComputeEngineApiError), (200, quoted.encode(), MalformedResponseError)):
        with pytest.raises(kind) as info:
            parse_response(call, status, raw, {}, secrets=["tok-en-value-99", None])
        text = str(info.value) + repr(getattr(info.value, "errors", ""))
        assert "bad request" in text
        for secret in (CANARY_RAW_KEY, CANARY_RSA_KEY[:40], "ya29.someToken", "tok-en-value-99"):
            assert secret not in text


def test_an_image_that_vanishes_while_reused_is_submitted_again(
    emulator: ComputeEngineEmulator, fast_clients: ClientSettings, triggerer: Triggerer
) -> None:
    """Found by the fault campaign (with the server forgetting requestIds): a retry that met an image
    of its name still CREATING, whose creation then failed, failed with a bare HTTP 404."""
    import uuid

    from airflow_machine_images.hooks import ComputeEngineMachineImageHook

    emulator.add_instance("us-central1-a/slow-1", operation_seconds=1.0)
    fail_inserts(emulator, times=1)
    ComputeEngineMachineImageHook().insert_machine_image(
        body={"name": "img-r"},
        source_instance=f"projects/{PROJECT}/zones/us-central1-a/instances/slow-1",
        request_id=str(uuid.uuid4()),
    )
    task = TaskSpec("regressions", "create", "manual__1", -1, "img-r", "us-central1-a/slow-1", False)
    outcome = run_task_instance(task, make_operator, triggerer, retries=0)

    assert outcome.succeeded, outcome.final_error
    assert outcome.result is not None and outcome.result["status"] == "READY" and not outcome.result["reused"]
    assert [i["name"] for i in emulator.machine_images(PROJECT)] == ["img-r"]
