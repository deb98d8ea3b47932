"""A region (or anything else that is no zone) where a zone belongs: refused by the emulator as the API
refuses it, refused by the package at DAG parse when literal and before any request when templated.

Issue 24 item 1: ``zones=["us-central1"]`` used to list nothing and succeed (a nightly backup green with
nothing backed up), a restore into ``us-central1`` reached RUNNING in the emulator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import requests

from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.operators import (
    ComputeEngineDeleteRestoredInstanceOperator,
    ComputeEngineFleetBackupOperator,
    ComputeEngineInsertMachineImageOperator,
    ComputeEngineListInstancesOperator,
    ComputeEngineMachineImageCoverageCheckOperator,
    ComputeEngineRestoreMachineImageOperator,
)
from airflow_machine_images.sensors import ComputeEngineMachineImageOperationSensor
from tests.integration.conftest import PROJECT, run_dag, task_states

if TYPE_CHECKING:
    from airflow_machine_images.emulator import ComputeEngineEmulator

pytestmark = pytest.mark.integration

UNKNOWN_ZONE = "Invalid value for field 'zone': 'us-central1'. Unknown zone."
HINT = "'us-central1' is a region, not a zone"
MEANT = "did you mean us-central1-a, -b, -c, -f?"


# ------------------------------------------------------------------ the emulator, like the service


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "instances/web-1"),
        ("GET", "operations"),
        ("POST", "instances?sourceMachineImage=global/machineImages/img-a"),
        ("GET", "operations/operation-1"),
        ("DELETE", "instances/web-1"),
    ],
)
def test_the_emulator_answers_an_unknown_zone_400_like_the_service(
    emulator: ComputeEngineEmulator, method: str, path: str
) -> None:
    # Compute Engine: 400 "Invalid value for field 'zone': 'us-central1'. Unknown zone." (COMPUTE_ENGINE_NOTES,
    # "Restores and instances"); a 404 or an empty list would hide the mistake.
    url = f"{emulator.url}/compute/v1/projects/{PROJECT}/zones/us-central1/{path}"
    answer = requests.request(method, url, json={"name": "drill-1"} if method == "POST" else None, timeout=10)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["message"] == UNKNOWN_ZONE
    assert error["errors"][0]["reason"] == "invalid"
    assert [i["name"] for i in emulator.instances(PROJECT)] == ["web-1"]  # nothing was made or deleted


def test_the_emulator_cannot_be_seeded_in_a_zone_that_does_not_exist(emulator: ComputeEngineEmulator) -> None:
    with pytest.raises(ValueError, match="Unknown zone 'us-central1'"):
        emulator.add_instance("us-central1/web-2")
    with pytest.raises(ValueError, match="Unknown zone 'us-central1'"):
        emulator.add_instance("projects/test-project/zones/us-central1/instances/web-2")


# ------------------------------------------------------------------ literal: the DAG file fails to import

SELECTION: dict[str, Any] = {"zones": ["us-central1-a", "us-central1"]}


@pytest.mark.parametrize(
    ("operator", "arguments", "parameter"),
    [
        (ComputeEngineListInstancesOperator, SELECTION, "zones[1]"),
        (ComputeEngineMachineImageCoverageCheckOperator, {**SELECTION, "max_age": 3600}, "zones[1]"),
        (ComputeEngineFleetBackupOperator, SELECTION, "zones[1]"),
        (ComputeEngineFleetBackupOperator, {"instances": ["us-central1/web-1"]}, "instances[0]"),
        (ComputeEngineInsertMachineImageOperator, {"name": "img-a", "source_instance": "us-central1/web-1"},
         "source_instance"),
        (ComputeEngineRestoreMachineImageOperator,
         {"name": "drill-1", "zone": "us-central1", "source_machine_image": "img-a"}, "zone"),
        (ComputeEngineRestoreMachineImageOperator,
         {"name": "drill-1", "zone": "us-central1-a", "source_instance": "us-central1/web-1"}, "source_instance"),
        (ComputeEngineDeleteRestoredInstanceOperator, {"name": "drill-1", "zone": "us-central1"}, "zone"),
        (ComputeEngineMachineImageOperationSensor, {"operation_name": "operation-1", "zone": "us-central1"}, "zone"),
    ],
)  # fmt: skip
def test_a_literal_region_as_a_zone_fails_when_the_dag_is_parsed(
    operator: type, arguments: dict[str, Any], parameter: str
) -> None:
    with pytest.raises(MachineImageValidationError) as caught:
        operator(task_id="t", **arguments)
    assert caught.value.parameter.startswith(parameter), caught.value.parameter
    assert HINT in str(caught.value) and MEANT in str(caught.value)


# ------------------------------------------------------------------ templated: fails before any request


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize(
    ("dag_id", "task_id", "parameter"),
    [
        ("ami_test_zones_list", "select", "zones[0]"),
        ("ami_test_zones_coverage", "coverage", "zones[0]"),
        ("ami_test_zones_fleet_backup", "backup", "zones[0]"),
        ("ami_test_zones_fleet_backup_instances", "backup", "instances[0]"),
        ("ami_test_zones_insert", "create", "source_instance"),
        ("ami_test_zones_restore", "restore", "zone"),
        ("ami_test_zones_restore_by_instance", "restore", "source_instance"),
        ("ami_test_zones_delete_restored", "delete", "zone"),
        ("ami_test_zones_sensor", "wait", "zone"),
    ],
)
def test_a_templated_region_as_a_zone_fails_before_any_request(
    gcp_connection: ComputeEngineEmulator,
    capfd: pytest.CaptureFixture[str],
    dag_id: str,
    task_id: str,
    parameter: str,
) -> None:
    dag_run = run_dag(dag_id, run_conf={"zone": "us-central1"})
    assert task_states(dag_run) == {task_id: "failed"}  # never green with nothing done
    out = capfd.readouterr().out
    assert f"Invalid {parameter}" in out and HINT in out and MEANT in out
    assert gcp_connection.requests == []
