"""Bad input fails before any HTTP request, with a message naming the parameter.

The connection points at a live emulator, so "no request was sent" is observed, not assumed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_machine_images.operators import ComputeEngineInsertMachineImageOperator
from airflow_machine_images.validation import MachineImageValidationError

if TYPE_CHECKING:
    from airflow_machine_images.emulator import ComputeEngineEmulator

pytestmark = pytest.mark.integration


class FakeTI:
    dag_id = "dag"
    task_id = "create"
    run_id = "manual__1"
    map_index = -1

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


GOOD: dict[str, Any] = {"name": "img-a", "source_instance": "us-central1-a/web-1"}


@pytest.mark.parametrize(
    ("overrides", "parameter"),
    [
        ({"name": "Web_1"}, "name"),
        ({"name": "-starts-with-hyphen"}, "name"),
        ({"name": "x" * 64}, "name"),
        ({"project_id": "Bad Project!"}, "project_id"),
        ({"project_id": "p/../x"}, "project_id"),
        ({"request_id": "not-a-uuid"}, "request_id"),
        ({"request_id": "00000000-0000-0000-0000-000000000000"}, "request_id"),
        ({"source_instance": "web-1"}, "source_instance"),
        ({"source_instance": "us-central1-a/web-1/../other"}, "source_instance"),
        ({"source_instance": "zones/us-central1-a/instances/web%2F1"}, "source_instance"),
        ({"body": {"colour": "blue"}}, "body.colour"),
        ({"body": {"selfLink": "https://example.com/x"}}, "body.selfLink"),
        ({"body": {"status": "READY"}}, "body.status"),
        ({"body": {"guestFlush": "yes"}}, "body.guestFlush"),
        ({"labels": {"Team": "x"}}, "labels"),
        ({"labels": {"team": "Has Spaces"}}, "labels"),
        ({"labels": {"team": "x" * 64}}, "labels"),
        ({"storage_locations": [""]}, "storage_locations"),
        ({"machine_image_encryption_key": {"rawKey": "too-short"}}, "machine_image_encryption_key"),
    ],
)
def test_bad_argument_fails_at_parse_when_literal_and_before_any_request_when_rendered(
    gcp_connection: ComputeEngineEmulator, overrides: dict[str, Any], parameter: str
) -> None:
    # Written literally in the DAG file: the DAG file fails to import, naming the parameter.
    with pytest.raises(MachineImageValidationError) as parsed:
        ComputeEngineInsertMachineImageOperator(task_id="create", **{**GOOD, **overrides})
    assert parsed.value.parameter.startswith(parameter.split(".")[0])
    # The same value arriving through a template (rendered into the attribute when the task runs).
    operator = ComputeEngineInsertMachineImageOperator(task_id="create", **GOOD)
    for key, value in overrides.items():
        setattr(operator, key, value)
    with pytest.raises(AirflowFailException) as info:
        operator.execute({"ti": FakeTI()})  # type: ignore[arg-type]
    cause = info.value.__cause__
    assert isinstance(cause, MachineImageValidationError)
    assert parameter in str(info.value)
    assert cause.parameter.startswith(parameter.split(".")[0])
    assert gcp_connection.requests == []


@pytest.mark.parametrize(
    ("overrides", "parameter"),
    [
        ({"if_exists": "overwrite"}, "if_exists"),
        ({"api_version": "alpha"}, "api_version"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"timeout": -1}, "timeout"),
    ],
)
def test_bad_fixed_argument_fails_when_the_dag_is_parsed(overrides: dict[str, Any], parameter: str) -> None:
    with pytest.raises(MachineImageValidationError, match=parameter):
        ComputeEngineInsertMachineImageOperator(task_id="create", **{**GOOD, **overrides})


def test_key_material_never_appears_in_the_error(gcp_connection: ComputeEngineEmulator) -> None:
    canary = "Q0FOQVJZLUtFWS1NQVRFUklBTC0xMjM0NTY3ODkw"  # valid base64, wrong length (30 bytes)
    with pytest.raises(MachineImageValidationError) as parsed:  # written literally: refused at parse time
        ComputeEngineInsertMachineImageOperator(
            task_id="create", machine_image_encryption_key={"rawKey": canary}, **GOOD
        )
    assert parsed.value.parameter.startswith("machine_image_encryption_key")
    assert canary not in str(parsed.value) and canary not in repr(parsed.value)
    operator = ComputeEngineInsertMachineImageOperator(task_id="create", **GOOD)
    operator.machine_image_encryption_key = {"rawKey": canary}  # as a template renders it
    with pytest.raises(AirflowFailException) as info:
        operator.execute({"ti": FakeTI()})  # type: ignore[arg-type]
    assert canary not in str(info.value)
    assert canary not in repr(info.value.__cause__)
    assert gcp_connection.requests == []
