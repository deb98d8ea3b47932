"""What a new user meets in the first hour, end to end through ``dag.test()`` against the emulator.

Deadlines that hold, booleans that mean what they say, permanent errors that fail once, a quiet
extra link, replays said plainly, one failure message in every mode, retention's rough edges.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_machine_images.emulator import Fault
from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.flows.resubmission import REPLAY_TOLERANCE_SECONDS
from airflow_machine_images.hooks import ComputeEngineMachineImageHook
from airflow_machine_images.operators import (
    ComputeEngineDeleteMachineImageOperator,
    ComputeEngineInsertMachineImageOperator,
    ComputeEngineMachineImageRetentionOperator,
)
from airflow_machine_images.sensors import ComputeEngineMachineImageOperationSensor, ComputeEngineMachineImageSensor
from tests.integration.conftest import PROJECT, load_dag, task_states, xcom_result

if TYPE_CHECKING:
    from airflow_machine_images.emulator import ComputeEngineEmulator

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

LOGICAL_DATE = datetime(2026, 4, 1, tzinfo=timezone.utc)
SOURCE_URL = f"projects/{PROJECT}/zones/us-central1-a/instances/web-1"


def run(dag_id: str, **conf: Any):  # type: ignore[no-untyped-def]
    dag = load_dag(dag_id)
    return dag.test(logical_date=LOGICAL_DATE, run_after=LOGICAL_DATE, run_conf=conf or None)


# ------------------------------------------------------------------ 1. deadlines


@pytest.mark.timeout(120)  # without its own deadline the trigger waits forever under dag.test()
def test_a_deferrable_sensor_stops_at_its_timeout_under_dag_test(
    gcp_connection: ComputeEngineEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    dag_run = run("ami_test_deferrable_sensor_deadline")
    assert task_states(dag_run) == {"wait": "failed"}
    assert "never-made in project test-project was not READY by the task's deadline" in capfd.readouterr().out


# ------------------------------------------------------------------ 2. booleans and numbers


@pytest.mark.parametrize(
    ("operator", "arguments", "parameter"),
    [
        (ComputeEngineInsertMachineImageOperator, {"wait_for_completion": "no"}, "wait_for_completion"),
        (ComputeEngineInsertMachineImageOperator, {"deferrable": "yes"}, "deferrable"),
        (ComputeEngineInsertMachineImageOperator, {"add_default_labels": "false"}, "add_default_labels"),
        (ComputeEngineInsertMachineImageOperator, {"guest_flush": 1}, "guest_flush"),
        (ComputeEngineInsertMachineImageOperator, {"poll_interval": "10"}, "poll_interval"),
        (ComputeEngineDeleteMachineImageOperator, {"fail_if_missing": "true"}, "fail_if_missing"),
        (ComputeEngineMachineImageRetentionOperator, {"dry_run": "false"}, "dry_run"),
        (ComputeEngineMachineImageRetentionOperator, {"max_concurrency": "4"}, "max_concurrency"),
        (ComputeEngineMachineImageSensor, {"fail_on_missing": "no"}, "fail_on_missing"),
        (ComputeEngineMachineImageOperationSensor, {"deferrable": "yes"}, "deferrable"),
    ],
)
def test_a_string_where_a_boolean_or_number_belongs_fails_at_parse_time(
    operator: type, arguments: dict[str, Any], parameter: str
) -> None:
    base: dict[str, Any] = {
        ComputeEngineInsertMachineImageOperator: {"name": "img-a", "source_instance": "us-central1-a/web-1"},
        ComputeEngineDeleteMachineImageOperator: {"name": "img-a"},
        ComputeEngineMachineImageRetentionOperator: {"label_selector": {"backup": "nightly"}, "keep_last": 1},
        ComputeEngineMachineImageSensor: {"machine_image": "img-a"},
        ComputeEngineMachineImageOperationSensor: {"operation_name": "operation-1"},
    }[operator]
    with pytest.raises(MachineImageValidationError, match=rf"^Invalid {parameter}: ") as raised:
        operator(task_id="t", **base, **arguments)
    assert repr(next(iter(arguments.values()))) in str(raised.value)  # the message quotes the value given


def seed_nightly_images(emulator: ComputeEngineEmulator, dag_id: str) -> None:
    for day in range(3):
        emulator.add_machine_image(
            f"web-1-old-{day}",
            source_instance="us-central1-a/web-1",
            creation_timestamp=f"2026-03-0{day + 1}T00:00:00Z",
            labels={"managed-by": "airflow", "backup": "nightly", "airflow-dag": dag_id},  # as the package labels them
        )


def test_templated_dry_run_false_deletes(gcp_connection: ComputeEngineEmulator) -> None:
    seed_nightly_images(gcp_connection, "ami_test_templated_dry_run")
    dry = xcom_result(run("ami_test_templated_dry_run"), "prune")
    assert dry["dry_run"] is True and dry["would_delete"] == ["web-1-old-0", "web-1-old-1"]
    assert len(gcp_connection.machine_images(PROJECT)) == 3
    real = xcom_result(run("ami_test_templated_dry_run", dry_run=False), "prune")
    assert real["dry_run"] is False and real["deleted"] == ["web-1-old-0", "web-1-old-1"]
    assert [i["name"] for i in gcp_connection.machine_images(PROJECT)] == ["web-1-old-2"]


def test_a_templated_dry_run_that_renders_to_no_boolean_fails() -> None:
    op = ComputeEngineMachineImageRetentionOperator(
        task_id="prune", label_selector={"backup": "nightly"}, keep_last=1, dry_run="{{ params.dry_run }}"
    )
    op.plan_only = "maybe"  # what rendering left
    with pytest.raises(AirflowFailException, match="Invalid dry_run: must render to a boolean"):
        op.execute({})


# ------------------------------------------------------------------ 3. permanent errors fail once


def test_a_missing_source_fails_once_without_retries(gcp_connection: ComputeEngineEmulator) -> None:
    dag_run = run("ami_test_missing_source")
    assert task_states(dag_run) == {"create": "failed"}
    assert gcp_connection.count("machineImages.insert") == 1  # retries=2, but a 404 stays a 404
    (ti,) = dag_run.get_task_instances()
    assert ti.try_number == 1


@pytest.mark.parametrize("endpoint", ["http://no-such-host.invalid:8085", "http://127.0.0.1:9"])
def test_an_unreachable_endpoint_is_not_retried(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_machine_images.exceptions import EndpointUnreachableError

    monkeypatch.setenv("AIRFLOW__MACHINE_IMAGES__ALLOWED_ENDPOINTS", f"{endpoint}, loopback")  # listed, unreachable
    hook = ComputeEngineMachineImageHook(api_endpoint=endpoint)
    with pytest.raises(EndpointUnreachableError, match=r"does not resolve|refused the connection") as raised:
        hook.get_machine_image(name="img-a", project_id=PROJECT)
    assert isinstance(raised.value, AirflowFailException)  # Airflow does not retry it either
    assert "retrying" not in str(raised.value)


# ------------------------------------------------------------------ 5. a quiet extra link


def test_a_task_failing_before_naming_its_image_logs_no_xcom_error(
    gcp_connection: ComputeEngineEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    capfd.readouterr()
    dag_run = run("ami_test_bad_name")
    assert task_states(dag_run) == {"create": "failed"}
    captured = capfd.readouterr()
    assert "Invalid name" in captured.out
    assert "XCom not found" not in captured.out + captured.err
    assert gcp_connection.requests == []


# ------------------------------------------------------------------ 6. replays said plainly


def test_a_rerun_says_the_server_replayed_its_operation(
    gcp_connection: ComputeEngineEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    first = xcom_result(run("ami_test_insert"), "create")
    assert first["replayed"] is False
    time.sleep(REPLAY_TOLERANCE_SECONDS + 1.5)  # a replay is told by the operation's age on the server
    capfd.readouterr()
    second = xcom_result(run("ami_test_insert"), "create")  # same run id: like a clear
    assert second["replayed"] is True
    assert second["operation_name"] == first["operation_name"]
    assert f"answered requestId {first['request_id']} with its original operation" in capfd.readouterr().out


# ------------------------------------------------------------------ 9. one failure message in every mode


def test_a_failed_operation_reads_the_same_in_poke_and_deferrable_mode(gcp_connection: ComputeEngineEmulator) -> None:

    gcp_connection.inject(Fault(kind="operation_error", action="machineImages.insert", error_code="QUOTA_EXCEEDED"))
    hook = ComputeEngineMachineImageHook()
    operation = hook.insert_machine_image(
        body={"name": "img-q"}, source_instance=SOURCE_URL, request_id=str(uuid.uuid4())
    )
    with pytest.raises(Exception):  # noqa: B017 - any failure: we only want it DONE
        hook.wait_for_operation(operation_name=operation["name"], timeout=30)

    poke = ComputeEngineMachineImageOperationSensor(task_id="wait", operation_name=operation["name"])
    with pytest.raises(AirflowFailException) as poked:
        poke.execute({})

    deferrable = ComputeEngineMachineImageOperationSensor(
        task_id="wait", operation_name=operation["name"], deferrable=True, mode="poke"
    )
    # The operation is DONE already, so a deferrable sensor would fail in its first poke: run the
    # trigger it would defer to, and resume with its event, as the triggerer would.
    trigger = deferrable.trigger()

    async def first_event() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    with pytest.raises(AirflowFailException) as resumed:
        deferrable.execute_complete({}, asyncio.run(first_event()))
    assert str(resumed.value) == str(poked.value)
    assert "machine image img-q" in str(poked.value)
    assert "QUOTA_EXCEEDED" in str(poked.value)


# ------------------------------------------------------------------ 7/10. retention's rough edges


def test_label_selector_as_text_and_not_ready_images_named(
    gcp_connection: ComputeEngineEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    seed_nightly_images(gcp_connection, "dag-a")
    gcp_connection.add_machine_image(
        "web-1-broken",
        source_instance="us-central1-a/web-1",
        status="INVALID",
        labels={"managed-by": "airflow", "backup": "nightly", "airflow-dag": "dag-a"},
    )
    op = ComputeEngineMachineImageRetentionOperator(
        task_id="prune", label_selector="backup=nightly, airflow-dag=dag-a", keep_last=2, dry_run=True
    )
    capfd.readouterr()
    result = op.execute({"ti": None})
    assert result["would_delete"] == ["web-1-old-0"]
    assert result["not_ready"] == ["web-1-broken"]
    assert "not READY, left alone: ['web-1-broken']" in capfd.readouterr().out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"label_selector": "backup:nightly", "keep_last": 1},
            "Invalid label_selector: must be a dict of labels or text",
        ),
        (
            {"label_selector": {"backup": "nightly"}, "keep_last": "2"},
            "Invalid keep_last: must be an integer >= 1; got '2'",
        ),
        ({"label_selector": {"backup": "nightly"}, "keep_last": 0}, "keep_last=0 would delete every image"),
    ],
)
def test_retention_messages_quote_the_value_given(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(MachineImageValidationError) as raised:
        ComputeEngineMachineImageRetentionOperator(task_id="prune", **arguments)
    assert message in str(raised.value)
    if arguments["keep_last"] == "2":
        assert "keep_last=0" not in str(raised.value)


def test_max_age_as_a_timedelta_still_works() -> None:
    op = ComputeEngineMachineImageRetentionOperator(
        task_id="prune", label_selector={"backup": "nightly"}, max_age=timedelta(days=7)
    )
    assert op.max_age == timedelta(days=7)
