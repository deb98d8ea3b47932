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
def test_official_client_names_projects_by_number_and_instances_by_id(emu: ComputeEngineEmulator, version: str) -> None:
    """The API takes a project number wherever a project id goes and an instance's numeric id in
    ``instances.get`` (discovery ``project`` pattern ``[0-9]{1,19}``, ``instance`` pattern
    ``[1-9][0-9]{0,19}``), and answers with the project id and the instance name."""
    client = compute(emu, version)
    number = emu.project_number(PROJECT)
    assert number.isdigit() and number == emu.project_number(PROJECT)  # stable
    by_name = client.instances().get(project=PROJECT, zone="us-central1-a", instance="web-1").execute()
    by_id = client.instances().get(project=number, zone="us-central1-a", instance=by_name["id"]).execute()
    assert by_id == by_name and by_id["name"] == "web-1"
    assert by_id["selfLink"].endswith(f"/compute/{version}/projects/{PROJECT}/zones/us-central1-a/instances/web-1")

    images = client.machineImages()
    source = f"projects/{number}/zones/us-central1-a/instances/{by_name['id']}"
    operation = images.insert(project=number, body={"name": "img-n"}, sourceInstance=source).execute()
    while operation["status"] != "DONE":
        operation = client.globalOperations().wait(project=number, operation=operation["name"]).execute()
    assert f"/projects/{PROJECT}/global/operations/" in operation["selfLink"]
    image = images.get(project=number, machineImage="img-n").execute()
    assert image["sourceInstance"] == by_name["selfLink"]  # project id and instance name, never the number
    assert image["selfLink"].endswith(f"/projects/{PROJECT}/global/machineImages/img-n")
    assert [i["name"] for i in images.list(project=number).execute()["items"]] == ["img-n"]
    assert emu.machine_images(PROJECT)[0]["name"] == "img-n"

    unknown = http_error(images.list(project="999999999999"))
    assert unknown.status_code == 404


def test_a_project_number_can_be_chosen(emu: ComputeEngineEmulator) -> None:
    assert emu.add_project(PROJECT, number="123456789012") == {"name": PROJECT, "id": "123456789012"}
    listing = compute(emu, "v1").machineImages().list(project="123456789012").execute()
    assert listing["id"] == f"projects/{PROJECT}/global/machineImages"
    with pytest.raises(ValueError, match="belongs to"):
        emu.add_project("other-project", number="123456789012")


@pytest.mark.parametrize("version", ["beta", "v1"])
def test_official_client_gets_400_for_filter_with_order_by(emu: ComputeEngineEmulator, version: str) -> None:
    images = compute(emu, version).machineImages()
    error = http_error(images.list(project=PROJECT, filter="name = img-1", orderBy="creationTimestamp desc"))
    assert error.status_code == 400 and error.error_details[0]["reason"] == "invalid"
    assert "Specifying both a list filter and sort order is not currently supported" in error.reason
    assert "items" not in images.list(project=PROJECT, orderBy="creationTimestamp desc").execute()


@pytest.mark.parametrize("version", ["beta", "v1"])
def test_official_client_gets_400_for_a_query_parameter_the_method_does_not_declare(
    emu: ComputeEngineEmulator, version: str
) -> None:
    """``machineImages.setLabels`` declares no ``requestId`` in either discovery document: the client
    refuses to build it, and the API answers 400 when it is sent anyway."""
    emu.add_machine_image("img-1")
    images = compute(emu, version).machineImages()
    with pytest.raises(TypeError, match="requestId"):
        images.setLabels(project=PROJECT, resource="img-1", body={}, requestId=str(uuid.uuid4()))
    fingerprint = images.get(project=PROJECT, machineImage="img-1").execute()["labelFingerprint"]
    request = images.setLabels(
        project=PROJECT, resource="img-1", body={"labels": {"a": "b"}, "labelFingerprint": fingerprint}
    )
    request.uri += f"&requestId={uuid.uuid4()}"
    error = http_error(request)
    assert error.status_code == 400 and "requestId" in error.reason
    assert emu.get_machine_image("img-1", PROJECT)["labelFingerprint"] == fingerprint  # nothing changed
    partial = images.list(project=PROJECT)
    partial.uri += "&returnPartialSuccess=true"  # declared for machineImages.list in beta only
    if version == "beta":
        assert partial.execute()["items"]
    else:
        assert http_error(partial).status_code == 400
