"""The restore operator's checks and the Instance body it builds: all before any request."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_machine_images.api.schema import machine_image_schemas
from airflow_machine_images.bodies.instance import build_instance_body, is_restored, restore_labels
from airflow_machine_images.exceptions import MachineImageValidationError

SOURCE = "projects/p/global/machineImages/img-a"


def body(version: str = "beta", **overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "name": "restored-1",
        "zone": "us-central1-a",
        "source_machine_image": SOURCE,
        "machine_type": None,
        "network_interfaces": None,
        "labels": restore_labels("img-a"),
        "metadata": None,
        "description": None,
        "body": None,
        **overrides,
    }
    return build_instance_body(schemas=machine_image_schemas(version), **arguments)


@pytest.mark.parametrize("version", ["beta", "v1"])
def test_overrides_become_instance_fields(version: str) -> None:
    built = body(
        version,
        machine_type="e2-small",
        metadata={"startup-script": "echo hi"},
        network_interfaces=[{"network": "global/networks/default"}],
        description="drill",
        body={"deletionProtection": False},
    )
    assert built == {
        "name": "restored-1",
        "sourceMachineImage": SOURCE,
        "machineType": "zones/us-central1-a/machineTypes/e2-small",
        "metadata": {"items": [{"key": "startup-script", "value": "echo hi"}]},
        "networkInterfaces": [{"network": "global/networks/default"}],
        "description": "drill",
        "labels": {"restored-by": "airflow-machine-images", "restored-from": "img-a"},
        "deletionProtection": False,
    }
    assert is_restored(built)


@pytest.mark.parametrize(
    ("overrides", "parameter"),
    [
        ({"machine_type": "zones/europe-west1-b/machineTypes/e2-small"}, "machine_type"),
        ({"machine_type": "E2 Small"}, "machine_type"),
        ({"body": {"machineTyp": "x"}}, "body.machineTyp"),
        ({"body": {"status": "RUNNING"}}, "body.status"),  # output only
        ({"body": {"name": "other"}}, "body.name"),
        ({"body": {"sourceMachineImage": SOURCE}}, "body.sourceMachineImage"),
        ({"body": {"labels": {}}}, "body.labels"),
        ({"body": {"description": "x"}, "description": "y"}, "body.description"),
        ({"network_interfaces": []}, "network_interfaces"),
        ({"metadata": {"key": 1}}, "metadata['key']"),
        ({"name": "Restored"}, "name"),
    ],
)
def test_bad_arguments_name_the_parameter(overrides: dict[str, Any], parameter: str) -> None:
    with pytest.raises(MachineImageValidationError) as info:
        body(**overrides)
    assert parameter in str(info.value)


def test_instances_without_both_restore_labels_are_not_restored() -> None:
    assert not is_restored({"labels": {"restored-by": "airflow-machine-images"}})
    assert not is_restored({"labels": {"restored-by": "someone-else", "restored-from": "img-a"}})
    assert not is_restored({})
