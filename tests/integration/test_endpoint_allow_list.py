"""``[machine_images] allowed_endpoints``: tokens and keys go only to endpoints an administrator listed.

Issue 23: ``api_endpoint`` was a template field and trigger rows were checked only for their form, so a
``dag_run.conf`` value, a connection editor or a database writer could send a live service-account
token to any https host. Each path is tried here against a listener on this machine's non-loopback
address (outside the default list), with credentials whose reads are counted: the listener sees no
connection and no credentials are read.
"""

from __future__ import annotations

import asyncio
import importlib
import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_machine_images.exceptions import InsecureEndpointError
from airflow_machine_images.hooks import ComputeEngineMachineImageAsyncHook, ComputeEngineMachineImageHook
from airflow_machine_images.operators import (
    ComputeEngineDeleteMachineImageOperator,
    ComputeEngineDeleteRestoredInstanceOperator,
    ComputeEngineInsertMachineImageOperator,
    ComputeEngineRestoreMachineImageOperator,
)
from airflow_machine_images.sensors import ComputeEngineMachineImageOperationSensor, ComputeEngineMachineImageSensor
from airflow_machine_images.triggers import MachineImageOperationTrigger, MachineImageStatusTrigger
from airflow_machine_images.validation import MachineImageValidationError
from tests.integration.conftest import PROJECT, connection_json, load_dag
from tests.reliability.harness import FakeTaskInstance, context_of
from tests.reliability.test_secret_hygiene import TOKEN, Listener, first_event, non_loopback_address

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_machine_images.emulator import ComputeEngineEmulator

pytestmark = pytest.mark.integration


class CountedCredentials:
    """How often a hook read its credentials (a token was fetched), and credentials carrying a canary token."""

    def __init__(self) -> None:
        self.reads = 0

    def __call__(self, hook: Any) -> Any:
        from google.oauth2.credentials import Credentials

        self.reads += 1
        return Credentials(token=TOKEN)


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> CountedCredentials:
    counted = CountedCredentials()
    monkeypatch.setattr(ComputeEngineMachineImageHook, "get_credentials", counted)
    monkeypatch.delenv("AIRFLOW__MACHINE_IMAGES__ALLOWED_ENDPOINTS", raising=False)  # the default list
    return counted


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    try:
        yield server
    finally:
        server.stop()


def outside(listener: Listener, scheme: str) -> str:
    """An endpoint on this machine that the default list does not allow (https, or plain http)."""
    return f"{scheme}://{non_loopback_address()}:{listener.port}"


def refused(error: BaseException | str) -> bool:
    return "allowed_endpoints" in str(error) and "AIRFLOW__MACHINE_IMAGES__ALLOWED_ENDPOINTS" in str(error)


def test_no_operator_or_sensor_templates_api_endpoint() -> None:
    for cls in (
        ComputeEngineInsertMachineImageOperator,
        ComputeEngineDeleteMachineImageOperator,
        ComputeEngineRestoreMachineImageOperator,
        ComputeEngineDeleteRestoredInstanceOperator,
        ComputeEngineMachineImageOperationSensor,
        ComputeEngineMachineImageSensor,
    ):
        assert "api_endpoint" not in cls.template_fields, cls
        assert "project_id" in cls.template_fields  # the other connection settings stay templated


def test_an_endpoint_from_the_runs_conf_is_never_rendered(
    airflow_db: None, credentials: CountedCredentials, listener: Listener
) -> None:
    """``api_endpoint="{{ dag_run.conf['endpoint'] }}"`` sent the token wherever the run's conf said."""
    now = datetime.now(timezone.utc)
    dag_run = load_dag("ami_test_endpoint_from_conf").test(
        logical_date=now, run_after=now, run_conf={"endpoint": outside(listener, "https")}
    )
    assert {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()} == {"create": "failed"}
    assert listener.connections == 0 and credentials.reads == 0


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_an_endpoint_from_the_connection_extra_is_refused_before_any_credentials(
    monkeypatch: pytest.MonkeyPatch, credentials: CountedCredentials, listener: Listener, scheme: str
) -> None:
    """A connection editor pointed ``compute_api_endpoint`` elsewhere: every hook sent its token there."""
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", connection_json(outside(listener, scheme)))
    with pytest.raises(InsecureEndpointError) as info:
        ComputeEngineMachineImageHook().get_machine_image(name="img-a", project_id=PROJECT)
    assert refused(info.value) and "compute_api_endpoint" in str(info.value)
    with pytest.raises(InsecureEndpointError):
        asyncio.run(ComputeEngineMachineImageAsyncHook().wait_operation(operation_name="op-1", project_id=PROJECT))
    operator = ComputeEngineInsertMachineImageOperator(
        task_id="create", name="img-a", source_instance="us-central1-a/web-1"
    )
    with pytest.raises(AirflowFailException) as failed:  # not retried by Airflow
        operator.execute(context_of(FakeTaskInstance("endpoints", "create", "manual__1", -1, 1)))
    assert refused(failed.value)
    event = asyncio.run(first_event(MachineImageOperationTrigger(operation_name="op-1", project_id=PROJECT)))
    assert event["status"] == "error" and refused(event["message"])
    assert listener.connections == 0 and credentials.reads == 0


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_a_tampered_trigger_row_is_an_error_event_before_any_credentials(
    airflow_db: None,
    gcp_connection: ComputeEngineEmulator,
    credentials: CountedCredentials,
    listener: Listener,
    scheme: str,
) -> None:
    """A database writer changed a trigger's stored ``api_endpoint``: the wait sent its token there."""
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session

    made = [
        MachineImageOperationTrigger(operation_name="op-1", project_id=PROJECT, api_endpoint=gcp_connection.url),
        MachineImageStatusTrigger(machine_image="img-a", project_id=PROJECT, api_endpoint=gcp_connection.url),
    ]
    events = []
    for trigger in made:
        classpath, kwargs = trigger.serialize()
        with create_session() as session:
            row = Trigger(classpath, kwargs)
            session.add(row)
            session.flush()
            row.kwargs = {**row.kwargs, "api_endpoint": outside(listener, scheme)}  # the tampering
            row_id = row.id
        with create_session() as session:
            stored = session.get(Trigger, row_id)
            assert stored is not None
            module, name = stored.classpath.rsplit(".", 1)
            revived = getattr(importlib.import_module(module), name)(**stored.kwargs)  # as the triggerer does
        events.append(asyncio.run(first_event(revived)))
    assert [e["status"] for e in events] == ["error", "error"]
    assert all(e["reason"] == "invalid_argument" and refused(e["message"]) for e in events), events
    assert listener.connections == 0 and credentials.reads == 0
    assert gcp_connection.requests == []


def test_the_administrators_list_is_what_counts(
    monkeypatch: pytest.MonkeyPatch, gcp_connection: ComputeEngineEmulator
) -> None:
    port = gcp_connection.port
    monkeypatch.setenv("AIRFLOW__MACHINE_IMAGES__ALLOWED_ENDPOINTS", f"http://127.0.0.1:{port}")
    hook = ComputeEngineMachineImageHook(api_endpoint=f"http://127.0.0.1:{port}")
    assert hook.list_machine_images(project_id=PROJECT) == []
    with pytest.raises(InsecureEndpointError):  # loopback, but not the listed name and port
        ComputeEngineMachineImageHook(api_endpoint=f"http://localhost:{port}").list_machine_images(project_id=PROJECT)
    assert len(gcp_connection.requests) == 1
    # A list that cannot be read allows nothing: every path fails at once, naming the option and the rule.
    monkeypatch.setenv("AIRFLOW__MACHINE_IMAGES__ALLOWED_ENDPOINTS", "https://compute.googleapis.com, 127.0.0.1")
    malformed = (
        r"Invalid \[machine_images\] allowed_endpoints \(or AIRFLOW__MACHINE_IMAGES__ALLOWED_ENDPOINTS\): must be"
    )
    with pytest.raises(InsecureEndpointError, match=malformed) as info:
        ComputeEngineMachineImageHook(api_endpoint=f"http://127.0.0.1:{port}").list_machine_images(project_id=PROJECT)
    assert isinstance(info.value.__cause__, MachineImageValidationError)
    for trigger in (
        MachineImageOperationTrigger(operation_name="op-1", project_id=PROJECT, api_endpoint=gcp_connection.url),
        MachineImageOperationTrigger(operation_name="op-1", project_id=PROJECT),  # the connection's endpoint
    ):
        event = asyncio.run(first_event(trigger))
        assert event["status"] == "error" and event["reason"] == "invalid_argument", event
        assert re.search(malformed, event["message"]), event["message"]
    operator = ComputeEngineInsertMachineImageOperator(
        task_id="create", name="img-a", source_instance="us-central1-a/web-1"
    )
    with pytest.raises(AirflowFailException, match=malformed):  # not retried by Airflow
        operator.execute(context_of(FakeTaskInstance("endpoints", "create", "manual__1", -1, 1)))
    assert len(gcp_connection.requests) == 1
