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
def test_official_client_aggregated_list_of_instances_pages_and_filters(
    emu: ComputeEngineEmulator, version: str
) -> None:
    emu.add_instance("us-central1-a/web-2", labels={"backup": "nightly"})
    emu.add_instance("us-east1-b/db-1", labels={"backup": "nightly"}, status="STOPPED")
    emu.add_instance("projects/other-project/zones/us-east1-b/instances/db-9", labels={"backup": "nightly"})
    instances = compute(emu, version).instances()

    request = instances.aggregatedList(project=PROJECT, filter="labels.backup = nightly", maxResults=1)
    pages, found = 0, []
    while request is not None:
        page = request.execute()
        pages += 1
        assert page["kind"] == "compute#instanceAggregatedList"
        for scope, scoped in page["items"].items():
            assert scope.startswith("zones/")
            if "instances" in scoped:
                found += [(scope, i["name"], i["status"], i["labels"]) for i in scoped["instances"]]
            else:  # an empty scope carries a warning instead of a list
                assert scoped["warning"]["code"] == "NO_RESULTS_ON_PAGE"
                assert scoped["warning"]["data"] == [{"key": "scope", "value": scope}]
        request = instances.aggregatedList_next(request, page)
    assert pages == 2  # maxResults counts instances over all scopes
    assert found == [
        ("zones/us-central1-a", "web-2", "RUNNING", {"backup": "nightly"}),
        ("zones/us-east1-b", "db-1", "STOPPED", {"backup": "nightly"}),
    ]

    everything = instances.aggregatedList(project=PROJECT).execute()
    names = sorted(i["name"] for scoped in everything["items"].values() for i in scoped.get("instances", []))
    assert names == ["db-1", "web-1", "web-2"]  # this project's only
    assert "nextPageToken" not in everything

    emu.set_unreachable_zones(["us-east1-b"])
    partial = instances.aggregatedList(project=PROJECT).execute()
    assert partial["items"]["zones/us-east1-b"]["warning"]["code"] == "UNREACHABLE"
    assert partial["unreachables"] == ["zones/us-east1-b"]
    assert http_error(instances.aggregatedList(project=PROJECT, filter="labels.backup = (")).status_code == 400


@pytest.mark.parametrize("version", ["beta", "v1"])
def test_official_client_images_an_instance_of_another_project_into_a_backup_project(
    emu: ComputeEngineEmulator, version: str
) -> None:
    images = compute(emu, version).machineImages()
    source = f"projects/{PROJECT}/zones/us-central1-a/instances/web-1"
    operation = images.insert(project="backup-project", body={"name": "web-1-b"}, sourceInstance=source).execute()
    assert operation["targetLink"].endswith("/projects/backup-project/global/machineImages/web-1-b")
    image = images.get(project="backup-project", machineImage="web-1-b").execute()
    assert image["sourceInstance"] == f"https://www.googleapis.com/compute/{version}/{source}"
    assert "items" not in images.list(project=PROJECT).execute()  # nothing in the workload project
    missing = f"projects/{PROJECT}/zones/us-central1-a/instances/nope"
    error = http_error(images.insert(project="backup-project", body={"name": "x"}, sourceInstance=missing))
    assert error.status_code == 404
