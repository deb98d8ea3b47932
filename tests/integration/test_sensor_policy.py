"""The sensors follow Airflow's sensor failure policy (``soft_fail``, ``never_fail``) in every mode.

They poke through the base sensor's loop (a deferrable sensor defers from inside its first poke) and
resume through its ``resume_execution``, so the policy is Airflow's, not a copy of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException, TaskDeferred

from airflow_machine_images.compat import airflow_version
from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.sensors import ComputeEngineMachineImageOperationSensor, ComputeEngineMachineImageSensor
from airflow_machine_images.triggers import MachineImageStatusTrigger

if TYPE_CHECKING:
    from airflow_machine_images.emulator import ComputeEngineEmulator

pytestmark = pytest.mark.integration

FAILED_EVENT = {"status": "error", "reason": "unusable", "message": "Machine image img-x is INVALID"}
#: What ``never_fail`` makes of a wait that fails after resuming: Airflow's sensor applies it there from
#: 3.1 on; 2.11's and 3.0's ``resume_execution`` apply only ``soft_fail``.
NEVER_FAIL_AFTER_RESUME = (
    AirflowSkipException if tuple(map(int, airflow_version.split(".")[:2])) >= (3, 1) else AirflowFailException
)


def image_sensor(**overrides: Any) -> ComputeEngineMachineImageSensor:
    kwargs: dict[str, Any] = {"task_id": "wait", "machine_image": "img-x", "fail_on_missing": True, "timeout": 30}
    kwargs.update(overrides)
    return ComputeEngineMachineImageSensor(**kwargs)


@pytest.mark.parametrize("deferrable", [False, True])
@pytest.mark.parametrize(
    ("policy", "outcome"),
    [
        ({}, AirflowFailException),
        ({"soft_fail": True}, AirflowSkipException),
        ({"never_fail": True}, AirflowSkipException),
    ],
)
def test_a_missing_image_fails_per_the_policy(
    gcp_connection: ComputeEngineEmulator, deferrable: bool, policy: dict[str, bool], outcome: type[BaseException]
) -> None:
    with pytest.raises(outcome):
        image_sensor(deferrable=deferrable, **policy).execute({})
    assert gcp_connection.count("machineImages.get") == 1


@pytest.mark.parametrize(
    ("policy", "outcome"),
    [
        ({}, AirflowFailException),
        ({"soft_fail": True}, AirflowSkipException),
        ({"never_fail": True}, NEVER_FAIL_AFTER_RESUME),
    ],
)
def test_a_failure_event_after_deferral_fails_per_the_policy(
    gcp_connection: ComputeEngineEmulator, policy: dict[str, bool], outcome: type[BaseException]
) -> None:
    # UPLOADING stays as seeded; a CREATING seed turns READY after the emulator's 0.5 s, which a loaded
    # machine could reach before the first poke (the sensor then succeeds without deferring).
    gcp_connection.add_machine_image("img-x", status="UPLOADING")
    sensor = image_sensor(deferrable=True, **policy)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    assert isinstance(deferred.value.trigger, MachineImageStatusTrigger)
    with pytest.raises(outcome):
        sensor.resume_execution("execute_complete", {"event": FAILED_EVENT}, {})


def test_bad_input_fails_without_a_request_even_when_deferrable(gcp_connection: ComputeEngineEmulator) -> None:
    with pytest.raises(MachineImageValidationError, match="operation_name"):  # written literally: at parse time
        ComputeEngineMachineImageOperationSensor(task_id="wait", operation_name="Not An Operation", deferrable=True)
    sensor = ComputeEngineMachineImageOperationSensor(task_id="wait", operation_name="operation-1", deferrable=True)
    sensor.operation_name = "Not An Operation"  # as a template renders it
    with pytest.raises(AirflowFailException, match="operation_name"):
        sensor.execute({})
    assert gcp_connection.requests == []
