"""The per-project request budget as configuration: the ``[machine_images]`` section, its checks, a
task's override, and what reaches the trigger (no HTTP: every path here ends before a request)."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_machine_images import config, get_provider_info
from airflow_machine_images.events import EVENT_INVALID_ARGUMENT
from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.operators import (
    ComputeEngineDeleteMachineImageOperator,
    ComputeEngineDeleteRestoredInstanceOperator,
    ComputeEngineInsertMachineImageOperator,
    ComputeEngineRestoreMachineImageOperator,
)
from airflow_machine_images.sensors import ComputeEngineMachineImageOperationSensor, ComputeEngineMachineImageSensor
from airflow_machine_images.triggers import MachineImageOperationTrigger, MachineImageStatusTrigger, budget

TOTAL = config.env_var(config.REQUESTS_PER_MINUTE_PER_PROJECT)
TRIGGERERS = config.env_var(config.TRIGGERERS)


@pytest.fixture(autouse=True)
def _no_budget_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOTAL, raising=False)
    monkeypatch.delenv(TRIGGERERS, raising=False)


def test_env_names_follow_airflow_convention() -> None:
    assert TOTAL == "AIRFLOW__MACHINE_IMAGES__REQUESTS_PER_MINUTE_PER_PROJECT"
    assert TRIGGERERS == "AIRFLOW__MACHINE_IMAGES__TRIGGERERS"


def test_defaults_give_one_triggerer_sixty_a_minute() -> None:
    assert budget.configured_total() == 60
    assert budget.configured_triggerers() == 1
    assert budget.shares(None)[0] == 60


@pytest.mark.parametrize(
    ("total", "triggerers", "share"),
    [("120", "2", 60), ("100", "3", 33), ("60", "1", 60), (" 7 ", "7", 1)],
)
def test_each_triggerer_gets_the_total_divided_rounded_down(
    monkeypatch: pytest.MonkeyPatch, total: str, triggerers: str, share: int
) -> None:
    monkeypatch.setenv(TOTAL, total)
    monkeypatch.setenv(TRIGGERERS, triggerers)
    assert budget.shares(None)[0] == share
    assert budget.shares(None)[0] * int(triggerers) <= int(total)  # together within the total


def test_more_triggerers_than_requests_get_one_each_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(TOTAL, "2")
    monkeypatch.setenv(TRIGGERERS, "3")
    monkeypatch.setattr(budget, "_warned", set())
    with caplog.at_level(logging.WARNING, logger=budget.__name__):
        assert budget.shares(None)[0] == budget.MIN_REQUESTS_PER_MINUTE
        assert budget.shares(None)[0] == budget.MIN_REQUESTS_PER_MINUTE
    assert caplog.text.count("cannot be shared by 3 triggerers") == 1  # once per process, not per wait


def test_a_task_total_replaces_the_configured_one_and_is_shared_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOTAL, "600")
    monkeypatch.setenv(TRIGGERERS, "3")
    assert budget.shares(90)[1] == 30
    assert budget.shares(None)[0] == 200


@pytest.mark.parametrize("variable", [TOTAL, TRIGGERERS])
@pytest.mark.parametrize("value", ["0", "-5", "1.5", "sixty", "", "1e3"])
def test_bad_values_are_refused_naming_the_option_and_the_rule(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(MachineImageValidationError) as raised:
        budget.shares(None)[0]
    option = variable.split("__")[-1].lower()
    assert f"[machine_images] {option}" in str(raised.value)
    assert variable in str(raised.value)
    assert "must be a whole number >= 1" in str(raised.value)


def test_the_section_is_declared_in_airflows_provider_info_schema() -> None:
    import jsonschema

    schema_path = Path(__import__("airflow").__file__).parent / "provider_info.schema.json"
    assert schema_path.is_file()  # shipped by every supported Airflow, 3.0.2 included
    info = get_provider_info()
    jsonschema.validate(info, json.loads(schema_path.read_text()))
    options = info["config"]["machine_images"]["options"]
    assert options["requests_per_minute_per_project"]["default"] == "60"
    assert options["triggerers"]["default"] == "1"
    assert (
        options["allowed_endpoints"]["default"] == "https://compute.googleapis.com, https://*.googleapis.com, loopback"
    )
    assert {name: option["type"] for name, option in options.items()} == {
        "requests_per_minute_per_project": "integer",
        "triggerers": "integer",
        "allowed_endpoints": "string",
        "source_image_limit_wait_seconds": "float",
    }
    assert options["source_image_limit_wait_seconds"]["default"] == "600"


def test_airflow_config_shows_the_section_and_the_env_override() -> None:
    """Airflow's own CLI, in a fresh process: the providers manager loads the section from the package."""
    env = {**__import__("os").environ, TRIGGERERS: "2"}
    env.pop(TOTAL, None)

    def airflow(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "airflow", "config", *args], capture_output=True, text=True, check=True, env=env
        )
        return done.stdout

    def last_line(output: str) -> str:  # Airflow may log a line to stdout first
        return output.strip().splitlines()[-1].strip()

    listed = airflow("list", "--section", "machine_images", "--include-descriptions")
    assert "[machine_images]" in listed
    assert "requests_per_minute_per_project" in listed
    assert "Each triggerer takes an equal share" in listed
    assert last_line(airflow("get-value", "machine_images", "triggerers")) == "2"  # the environment wins
    assert last_line(airflow("get-value", "machine_images", "requests_per_minute_per_project")) == "60"


# ---------------------------------------------------------------- the trigger's kwargs


def run_first_event(trigger: Any) -> dict[str, Any]:
    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger yielded nothing")

    return asyncio.run(first())


def test_trigger_serializes_the_task_total() -> None:
    trigger = MachineImageOperationTrigger(
        operation_name="operation-1", project_id="demo-project", requests_per_minute_per_project=90
    )
    classpath, kwargs = trigger.serialize()
    assert kwargs["requests_per_minute_per_project"] == 90
    assert MachineImageOperationTrigger(**kwargs).serialize() == (classpath, kwargs)
    _, image_kwargs = MachineImageStatusTrigger(machine_image="img", project_id="demo-project").serialize()
    assert image_kwargs["requests_per_minute_per_project"] is None


def test_trigger_budget_is_its_triggerers_share(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOTAL, "120")
    monkeypatch.setenv(TRIGGERERS, "2")
    configured = MachineImageOperationTrigger(operation_name="operation-1", project_id="demo-project")
    assert asyncio.run(configured._read_budget()) is None
    assert configured.configured_requests_per_minute == 60
    assert configured.max_requests_per_minute is None  # no total of its own: counts with the poller's default
    overridden = MachineImageStatusTrigger(
        machine_image="img", project_id="demo-project", requests_per_minute_per_project=40
    )
    assert asyncio.run(overridden._read_budget()) is None
    assert overridden.configured_requests_per_minute == 60
    assert overridden.max_requests_per_minute == 20


@pytest.mark.parametrize("value", [0, -1, 2.5, "60", True])
def test_tampered_task_total_ends_in_an_invalid_argument_event(value: object) -> None:
    trigger = MachineImageOperationTrigger(
        operation_name="operation-1",
        project_id="demo-project",
        requests_per_minute_per_project=value,  # type: ignore[arg-type]
    )
    event = run_first_event(trigger)
    assert event["status"] == "error"
    assert event["reason"] == EVENT_INVALID_ARGUMENT
    assert "requests_per_minute_per_project" in event["message"]


def test_bad_configuration_ends_in_an_event_naming_the_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TRIGGERERS, "two")
    event = run_first_event(MachineImageStatusTrigger(machine_image="img", project_id="demo-project"))
    assert event["status"] == "error"
    assert event["reason"] == EVENT_INVALID_ARGUMENT
    assert "[machine_images] triggerers" in event["message"]
    assert TRIGGERERS in event["message"]


# ---------------------------------------------------------------- operators and sensors


DEFERRING = [
    (ComputeEngineInsertMachineImageOperator, {"name": "img", "source_instance": "us-central1-a/web-1"}),
    (ComputeEngineDeleteMachineImageOperator, {"name": "img"}),
    (
        ComputeEngineRestoreMachineImageOperator,
        {"name": "vm", "zone": "us-central1-a", "source_machine_image": "img"},
    ),
    (ComputeEngineDeleteRestoredInstanceOperator, {"name": "vm", "zone": "us-central1-a"}),
    (ComputeEngineMachineImageOperationSensor, {"operation_name": "operation-1"}),
    (ComputeEngineMachineImageSensor, {"machine_image": "img"}),
]


@pytest.mark.parametrize(("cls", "kwargs"), DEFERRING, ids=[cls.__name__ for cls, _ in DEFERRING])
def test_deferring_tasks_check_their_total_when_the_dag_is_parsed(cls: type, kwargs: dict[str, Any]) -> None:
    assert cls(task_id="t", requests_per_minute_per_project=90, **kwargs).requests_per_minute_per_project == 90
    assert cls(task_id="t", **kwargs).requests_per_minute_per_project is None
    with pytest.raises(MachineImageValidationError, match="requests_per_minute_per_project"):
        cls(task_id="t", requests_per_minute_per_project=0, **kwargs)


def test_sensors_hand_their_total_to_the_trigger() -> None:
    sensors = [
        ComputeEngineMachineImageOperationSensor(
            task_id="t", operation_name="operation-1", project_id="demo-project", requests_per_minute_per_project=90
        ),
        ComputeEngineMachineImageSensor(
            task_id="t", machine_image="img", project_id="demo-project", requests_per_minute_per_project=90
        ),
    ]
    for sensor in sensors:
        assert sensor.trigger().serialize()[1]["requests_per_minute_per_project"] == 90
