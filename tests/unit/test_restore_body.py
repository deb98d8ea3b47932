"""The restore operator's checks and the Instance body it builds: all before any request."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_machine_images.api.schema import machine_image_schemas
from airflow_machine_images.bodies.instance import (
    RestoreOwnership,
    build_instance_body,
    check_cross_project,
    is_restored,
    restore_labels,
)
from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.flows.request_ids import dag_key

SOURCE = "projects/p/global/machineImages/img-a"
RESTORE_ID = "0123456789abcdef0123456789abcdef"
LABELS = restore_labels("img-a", dag_id="drill", restore_id=RESTORE_ID)
KEY = "a2V5LWtleS1rZXkta2V5LWtleS1rZXkta2V5LWtleS0="  # base64 of 32 bytes


def body(version: str = "beta", **overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "name": "restored-1",
        "zone": "us-central1-a",
        "source_machine_image": SOURCE,
        "machine_type": None,
        "network_interfaces": None,
        "labels": LABELS,
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
        "labels": LABELS,
        "deletionProtection": False,
    }
    assert is_restored(built)
    assert {
        "restored-by": "airflow-machine-images",
        "restored-from": "img-a",
        "restore-dag": dag_key("drill"),
        "restore-id": RESTORE_ID,
    } == LABELS


def test_a_body_deletion_protection_of_a_dag_written_before_the_argument_still_works() -> None:
    """``deletion_protection`` defaults to False; a DAG that set ``body={"deletionProtection": True}`` before
    the argument existed must keep working (it failed: "also given as the deletion_protection argument")."""
    from unittest import mock

    from airflow_machine_images.operators import ComputeEngineRestoreMachineImageOperator

    ti = mock.Mock(dag_id="drill", task_id="restore", run_id="r", map_index=-1)
    for body, expected in (({"deletionProtection": True}, True), (None, False)):
        operator = ComputeEngineRestoreMachineImageOperator(
            task_id="restore", name="drill-1", zone="us-central1-a", source_machine_image="img-a", project_id="p",
            body=body,
        )  # fmt: skip
        assert operator.prepare_request({"ti": ti}).body["deletionProtection"] is expected  # type: ignore[arg-type]
    with pytest.raises(MachineImageValidationError, match="deletion_protection"):
        ComputeEngineRestoreMachineImageOperator(
            task_id="restore", name="drill-1", zone="us-central1-a", source_machine_image="img-a", project_id="p",
            body={"deletionProtection": True}, deletion_protection=True,
        ).prepare_request({"ti": ti})  # type: ignore[arg-type]  # fmt: skip


def test_protection_service_accounts_and_the_image_key_have_their_own_arguments() -> None:
    account = [{"email": "runner@p.iam.gserviceaccount.com", "scopes": []}]
    built = body(
        deletion_protection=False,
        service_accounts=account,
        source_machine_image_encryption_key={"rawKey": KEY},
    )
    assert built["deletionProtection"] is False and built["serviceAccounts"] == account
    assert built["sourceMachineImageEncryptionKey"] == {"rawKey": KEY}
    assert "deletionProtection" not in body()  # None: what the image carries


@pytest.mark.parametrize(
    ("overrides", "parameter"),
    [
        ({"deletion_protection": False, "body": {"deletionProtection": True}}, "body.deletionProtection"),
        ({"service_accounts": []}, "service_accounts"),
        ({"service_accounts": [{"scopes": []}]}, "service_accounts"),
        ({"deletion_protection": "no"}, "deletion_protection"),
        ({"source_machine_image_encryption_key": {"rawKey": "short"}}, "source_machine_image_encryption_key"),
        ({"source_machine_image_encryption_key": {"sha256": "x"}}, "source_machine_image_encryption_key"),
    ],
)
def test_bad_new_arguments_name_the_parameter_without_quoting_keys(overrides: dict[str, Any], parameter: str) -> None:
    with pytest.raises(MachineImageValidationError) as info:
        body(**overrides)
    assert parameter in str(info.value) and "short" not in str(info.value)


def test_a_restore_across_projects_needs_a_service_account_and_networks_of_its_own_project() -> None:
    check_cross_project({}, image_project="p", project_id="p")  # same project: nothing needed
    with pytest.raises(MachineImageValidationError, match=r"service_accounts.*required for a restore across"):
        check_cross_project({}, image_project="backups", project_id="p")
    with pytest.raises(MachineImageValidationError, match=r"network_interfaces.*Cross-project references"):
        check_cross_project({"serviceAccounts": [{"email": "a@b"}]}, image_project="backups", project_id="p")
    check_cross_project(
        {"serviceAccounts": [{"email": "a@b"}], "networkInterfaces": [{"network": "global/networks/default"}]},
        image_project="backups",
        project_id="p",
    )


def instance(**labels: str) -> dict[str, Any]:
    return {"name": "drill-1", "labels": labels}


def test_ownership_is_the_dag_narrowed_by_the_restore_never_the_restore_labels_alone() -> None:
    mine = instance(**LABELS)
    assert RestoreOwnership(("drill",)).refusal(mine) is None
    assert RestoreOwnership(("other", "drill")).refusal(mine) is None  # widened to named DAGs
    assert RestoreOwnership(("drill",), restore_id=RESTORE_ID).refusal(mine) is None  # narrowed to the restore given
    assert RestoreOwnership(("other", "drill"), restore_id=RESTORE_ID).refusal(mine) is None
    # A restore_id is templated and readable in any restored instance's labels: alone it grants nothing.
    alone = RestoreOwnership(("other",), restore_id=RESTORE_ID).refusal(mine)
    assert alone is not None and "another DAG" in alone
    foreign = RestoreOwnership(("cleanup-dag",)).refusal({**mine, "labels": {**LABELS, "airflow-dag": "dr"}})
    assert foreign is not None and "another DAG" in foreign and "'dr'" in foreign
    wrong_restore = RestoreOwnership(("drill",), restore_id="f" * 32).refusal(mine)
    assert wrong_restore is not None and "restore-id" in wrong_restore
    old_release = RestoreOwnership(("drill",)).refusal(instance(**{"restored-by": "airflow-machine-images",
                                                                    "restored-from": "img-a"}))  # fmt: skip
    assert old_release is not None and "nothing binds it to a DAG" in old_release
    assert "restore labels" in str(RestoreOwnership(("drill",)).refusal(instance()))
    # Two DAG ids that sanitize to the same label value still have different keys.
    assert dag_key("My_Drill") != dag_key("my_drill")


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


@pytest.mark.parametrize("given", [{"rawKey": KEY}, '{"rawKey": "' + KEY + '"}', str({"rawKey": KEY})])
def test_the_image_key_argument_is_masked_and_sent_whatever_it_rendered_to(given: object) -> None:
    from unittest import mock

    from airflow_machine_images.operators import ComputeEngineRestoreMachineImageOperator

    operator = ComputeEngineRestoreMachineImageOperator(
        task_id="restore",
        name="drill-1",
        zone="us-central1-a",
        source_machine_image="img-1",
        project_id="p",
        source_machine_image_encryption_key=given,  # type: ignore[arg-type]
    )
    with mock.patch("airflow_machine_images.operators.base.mask_secret") as masked:
        operator.mask_key_material()
    assert KEY in {call.args[0] for call in masked.call_args_list}
    ti = mock.Mock(dag_id="d", task_id="restore", run_id="r", map_index=-1)
    request = operator.prepare_request({"ti": ti})  # type: ignore[arg-type]
    assert request.body["sourceMachineImageEncryptionKey"] == {"rawKey": KEY}
    assert request.body["deletionProtection"] is False  # a drill's instance is deletable by default
    assert KEY not in repr(request)
