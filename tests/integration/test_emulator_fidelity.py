"""Google's own discovery-based client drives the emulator: proof that it speaks the real protocol."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from airflow_machine_images.emulator import ComputeEngineEmulator

pytestmark = pytest.mark.integration

PROJECT = "fidelity-project"

google_auth_credentials = pytest.importorskip("google.auth.credentials")
discovery = pytest.importorskip("googleapiclient.discovery")
googleapiclient_errors = pytest.importorskip("googleapiclient.errors")


@pytest.fixture
def emu() -> Any:
    with ComputeEngineEmulator(default_project=PROJECT, operation_seconds=0.3, seed=9) as emulator:
        emulator.add_instance("us-central1-a/web-1")
        yield emulator


def compute(emu: ComputeEngineEmulator, version: str) -> Any:
    return discovery.build(
        "compute",
        version,
        static_discovery=True,
        credentials=google_auth_credentials.AnonymousCredentials(),
        client_options={"api_endpoint": f"{emu.url}/compute/{version}/"},
        cache_discovery=False,
    )


def http_error(call: Any) -> Any:
    with pytest.raises(googleapiclient_errors.HttpError) as info:
        call.execute()
    return info.value


@pytest.mark.parametrize("version", ["beta", "v1"])
def test_official_client_insert_wait_get_list_delete(emu: ComputeEngineEmulator, version: str) -> None:
    client = compute(emu, version)
    images, operations = client.machineImages(), client.globalOperations()
    request_id = str(uuid.uuid4())
    source = f"projects/{PROJECT}/zones/us-central1-a/instances/web-1"
    operation = images.insert(
        project=PROJECT,
        body={"name": "img-1", "labels": {"managed-by": "airflow"}},
        sourceInstance=source,
        requestId=request_id,
    ).execute()
    assert operation["status"] in ("PENDING", "RUNNING") and operation["clientOperationId"] == request_id
    while operation["status"] != "DONE":
        operation = operations.wait(project=PROJECT, operation=operation["name"]).execute()
    assert "error" not in operation

    image = images.get(project=PROJECT, machineImage="img-1").execute()
    assert image["status"] == "READY" and int(image["totalStorageBytes"]) > 0
    assert (
        image["selfLink"]
        == f"https://www.googleapis.com/compute/{version}/projects/{PROJECT}/global/machineImages/img-1"
    )

    listing = images.list(project=PROJECT, filter="labels.managed-by = airflow", maxResults=10).execute()
    assert [i["name"] for i in listing["items"]] == ["img-1"]
    assert "items" not in images.list(project=PROJECT, filter='name = "nothing"').execute()

    same = images.insert(project=PROJECT, body={"name": "img-1"}, sourceInstance=source, requestId=request_id).execute()
    assert same["name"] == operation["name"] and same["status"] == "DONE"

    deletion = images.delete(project=PROJECT, machineImage="img-1").execute()
    assert deletion["operationType"] == "delete"
    while deletion["status"] != "DONE":
        deletion = operations.wait(project=PROJECT, operation=deletion["name"]).execute()
    assert http_error(images.get(project=PROJECT, machineImage="img-1")).status_code == 404

    done = operations.list(
        project=PROJECT, filter=f'(name = "{operation["name"]}") OR (name = "{deletion["name"]}")'
    ).execute()
    assert sorted(op["operationType"] for op in done["items"]) == ["delete", "insert"]

    actions = [r.action for r in emu.requests]
    assert actions[:2] == ["machineImages.insert", "globalOperations.wait"]
    assert all(action != "unknown" for action in actions)
    (first,) = [r for r in emu.requests if r.action == "machineImages.insert"][:1]
    assert first.query["sourceInstance"] == source and first.query["alt"] == "json"


@pytest.mark.parametrize("version", ["beta", "v1"])
def test_official_client_sees_google_errors(emu: ComputeEngineEmulator, version: str) -> None:
    images = compute(emu, version).machineImages()
    source = "zones/us-central1-a/instances/web-1"
    images.insert(project=PROJECT, body={"name": "img-1"}, sourceInstance=source).execute()

    exists = http_error(images.insert(project=PROJECT, body={"name": "img-1"}, sourceInstance=source))
    assert exists.status_code == 409
    assert exists.error_details[0]["reason"] == "alreadyExists"
    assert exists.reason == f"The resource 'projects/{PROJECT}/global/machineImages/img-1' already exists"

    missing = http_error(
        images.insert(project=PROJECT, body={"name": "img-2"}, sourceInstance="zones/us-central1-a/instances/nope")
    )
    assert missing.status_code == 404 and missing.error_details[0]["reason"] == "notFound"

    labels = http_error(
        images.setLabels(
            project=PROJECT, resource="img-1", body={"labels": {"a": "b"}, "labelFingerprint": "AAAAAAAAAAA="}
        )
    )
    assert labels.status_code == 412 and labels.error_details[0]["reason"] == "conditionNotMet"


def test_official_client_long_filter_goes_through_method_override(emu: ComputeEngineEmulator) -> None:
    client = compute(emu, "beta")
    for n in range(3):
        emu.add_machine_image(f"img-{n}")
    names = [f"img-{n}" for n in range(3)] + [f"absent-name-number-{n:04d}" for n in range(120)]
    expression = " OR ".join(f'(name = "{name}")' for name in names)  # > 2048 characters of URL
    listing = client.machineImages().list(project=PROJECT, filter=expression).execute()
    assert [i["name"] for i in listing["items"]] == ["img-0", "img-1", "img-2"]
    (recorded,) = emu.requests
    assert recorded.action == "machineImages.list" and recorded.method == "GET"
    assert recorded.query["filter"] == expression


@pytest.mark.parametrize("version", ["beta", "v1"])
def test_official_client_restores_a_machine_image_and_deletes_the_instance(
    emu: ComputeEngineEmulator, version: str
) -> None:
    # instances.insert with sourceMachineImage (query parameter and body field, both in the discovery
    # documents), zoneOperations.wait/get/list, instances.get and instances.delete by name and by id.
    client = compute(emu, version)
    emu.add_machine_image("img-1", source_instance="us-central1-a/web-1")
    instances, zone_operations, zone = client.instances(), client.zoneOperations(), "us-central1-a"
    image = f"projects/{PROJECT}/global/machineImages/img-1"
    request_id = str(uuid.uuid4())
    body = {"name": "restored-1", "sourceMachineImage": image, "labels": {"restored-by": "airflow-machine-images"}}
    operation = instances.insert(
        project=PROJECT, zone=zone, body=body, sourceMachineImage=image, requestId=request_id
    ).execute()
    assert operation["status"] in ("PENDING", "RUNNING") and operation["clientOperationId"] == request_id
    assert operation["selfLink"].endswith(f"/zones/{zone}/operations/{operation['name']}")
    assert operation["zone"].endswith(f"/projects/{PROJECT}/zones/{zone}")
    early = instances.get(project=PROJECT, zone=zone, instance="restored-1").execute()
    still_running = zone_operations.get(project=PROJECT, zone=zone, operation=operation["name"]).execute()
    if still_running["status"] != "DONE":  # RUNNING only once the insert operation is DONE
        assert early["status"] in ("PROVISIONING", "STAGING")
    while operation["status"] != "DONE":
        operation = zone_operations.wait(project=PROJECT, zone=zone, operation=operation["name"]).execute()
    assert "error" not in operation
    assert zone_operations.get(project=PROJECT, zone=zone, operation=operation["name"]).execute()["status"] == "DONE"
    listed = zone_operations.list(project=PROJECT, zone=zone, filter=f'name = "{operation["name"]}"').execute()
    assert [op["name"] for op in listed["items"]] == [operation["name"]]
    assert "items" not in client.globalOperations().list(project=PROJECT).execute()  # zonal ops are not global

    instance = instances.get(project=PROJECT, zone=zone, instance="restored-1").execute()
    assert instance["status"] == "RUNNING" and instance["labels"] == {"restored-by": "airflow-machine-images"}
    assert instance["sourceMachineImage"] == f"https://www.googleapis.com/compute/{version}/{image}"

    same = instances.insert(project=PROJECT, zone=zone, body=body, requestId=request_id).execute()
    assert same["name"] == operation["name"]  # requestId dedup, as machineImages.insert
    taken = instances.insert(project=PROJECT, zone=zone, body=body, requestId=str(uuid.uuid4()))
    assert http_error(taken).status_code == 409
    missing = {"name": "restored-2", "sourceMachineImage": f"projects/{PROJECT}/global/machineImages/nothing"}
    assert http_error(instances.insert(project=PROJECT, zone=zone, body=missing)).status_code == 404

    deletion = instances.delete(
        project=PROJECT, zone=zone, instance=instance["id"], requestId=str(uuid.uuid4())
    ).execute()
    assert deletion["operationType"] == "delete"
    assert instances.get(project=PROJECT, zone=zone, instance="restored-1").execute()["status"] == "STOPPING"
    while deletion["status"] != "DONE":
        deletion = zone_operations.wait(project=PROJECT, zone=zone, operation=deletion["name"]).execute()
    assert http_error(instances.get(project=PROJECT, zone=zone, instance="restored-1")).status_code == 404
    assert http_error(instances.delete(project=PROJECT, zone=zone, instance="restored-1")).status_code == 404
