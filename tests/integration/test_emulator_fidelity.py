"""Google's own discovery-based client drives the emulator: proof that it speaks the real protocol."""

from __future__ import annotations

import json
import time
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


# -- issue 12: quotas, requestId memory, partial lists, operation warnings (through Google's client) ----


def error_info(error: Any) -> dict[str, Any]:
    """The ErrorInfo in ``error.details`` of a googleapiclient HttpError."""
    details = json.loads(error.content)["error"].get("details", [])
    return next(d for d in details if d.get("@type", "").endswith("google.rpc.ErrorInfo"))


def wait_done(client: Any, operation: dict[str, Any]) -> dict[str, Any]:
    while operation["status"] != "DONE":
        operation = client.globalOperations().wait(project=PROJECT, operation=operation["name"]).execute()
    return operation


def test_official_client_meets_the_per_minute_rate_quota_and_its_refill(emu: ComputeEngineEmulator) -> None:
    window = 1.5  # the "minute", shortened; windows start at its multiples on the wall clock, as minutes do
    emu.set_options(rate_quota_per_minute=3, rate_quota_window_seconds=window)
    images = compute(emu, "beta").machineImages()
    time.sleep(window - time.time() % window + 0.05)  # start at the beginning of a window
    for _ in range(3):
        images.list(project=PROJECT).execute()
    refused = http_error(images.list(project=PROJECT))
    assert refused.status_code == 403
    assert json.loads(refused.content)["error"]["errors"][0]["reason"] == "rateLimitExceeded"  # what clients retry on
    info = error_info(refused)
    assert info["reason"] == "RATE_LIMIT_EXCEEDED" and info["domain"] == "googleapis.com"
    assert info["metadata"]["quota_limit_value"] == "3" and "quota_metric" in info["metadata"]
    assert http_error(images.get(project=PROJECT, machineImage="x")).status_code == 403  # every request counts
    time.sleep(window - time.time() % window + 0.05)  # the next window: refilled
    assert "kind" in images.list(project=PROJECT).execute()
    emu.set_options(rate_quota_per_minute=None)
    assert [r.fault for r in emu.requests if r.status == 403] == ["rate_quota"] * 2  # recorded as the option's


def test_official_client_meets_the_concurrent_operations_limit_until_operations_finish(
    emu: ComputeEngineEmulator,
) -> None:
    emu.set_options(concurrent_operations_limit=1)
    client = compute(emu, "beta")
    source = "zones/us-central1-a/instances/web-1"
    first = client.machineImages().insert(project=PROJECT, body={"name": "img-1"}, sourceInstance=source).execute()
    refused = http_error(client.machineImages().insert(project=PROJECT, body={"name": "img-2"}, sourceInstance=source))
    assert refused.status_code == 403
    assert error_info(refused)["reason"] == "CONCURRENT_OPERATIONS_QUOTA_EXCEEDED"
    assert client.machineImages().get(project=PROJECT, machineImage="img-1").execute()  # reads are not limited
    wait_done(client, first)  # the running operation finished: room again
    second = client.machineImages().insert(project=PROJECT, body={"name": "img-2"}, sourceInstance=source).execute()
    assert "error" not in wait_done(client, second)
    assert [i["name"] for i in emu.machine_images()] == ["img-1", "img-2"]


def test_official_client_sees_request_ids_forgotten_after_the_configured_time(emu: ComputeEngineEmulator) -> None:
    emu.set_options(request_id_ttl_seconds=0.5)
    client = compute(emu, "beta")
    images, request_id = client.machineImages(), str(uuid.uuid4())
    source = "zones/us-central1-a/instances/web-1"

    def insert() -> dict[str, Any]:
        return images.insert(
            project=PROJECT, body={"name": "img-1"}, sourceInstance=source, requestId=request_id
        ).execute()

    first = insert()
    assert insert()["name"] == first["name"]  # remembered: the same operation, nothing new
    wait_done(client, first)
    wait_done(client, images.delete(project=PROJECT, machineImage="img-1").execute())
    time.sleep(0.6)
    again = insert()  # forgotten: the same requestId now creates anew
    assert again["name"] != first["name"] and again["clientOperationId"] == request_id
    assert "error" not in wait_done(client, again) and len(emu.machine_images()) == 1


def test_official_client_reads_lists_that_leave_items_out_with_a_warning(emu: ComputeEngineEmulator) -> None:
    for index in range(10):
        emu.add_machine_image(f"img-{index}", "us-central1-a/web-1")
    client = compute(emu, "v1")
    emu.set_options(partial_list_fraction=0.3, partial_list_warning="PARTIAL_SUCCESS")
    listing = client.machineImages().list(project=PROJECT).execute()
    assert len(listing["items"]) == 7
    assert listing["warning"]["code"] == "PARTIAL_SUCCESS" and listing["warning"]["message"]
    assert listing["warning"]["data"] == [{"key": "scope", "value": "global"}]
    emu.set_options(partial_list_warning=None)  # left out without a word
    silent = client.machineImages().list(project=PROJECT).execute()
    assert len(silent["items"]) == 7 and "warning" not in silent
    emu.set_options(partial_list_fraction=0)
    from airflow_machine_images.emulator import Fault

    emu.inject(Fault(kind="partial_list", action="machineImages.list", omit_fraction=0.5, warning_code="UNREACHABLE"))
    faulted = client.machineImages().list(project=PROJECT).execute()
    assert len(faulted["items"]) == 5 and faulted["warning"]["code"] == "UNREACHABLE"
    assert len(client.machineImages().list(project=PROJECT).execute()["items"]) == 10  # the fault is used up


def test_official_client_sees_operation_warnings(emu: ComputeEngineEmulator) -> None:
    from airflow_machine_images.emulator import Fault

    emu.inject(Fault(kind="operation_warning", action="machineImages.insert"))
    client = compute(emu, "beta")
    operation = (
        client.machineImages()
        .insert(project=PROJECT, body={"name": "img-1"}, sourceInstance="zones/us-central1-a/instances/web-1")
        .execute()
    )
    done = wait_done(client, operation)
    assert done["warnings"][0]["code"] == "NOT_CRITICAL_ERROR" and done["warnings"][0]["message"]
    assert "error" not in done


def test_resource_operation_rate_exceeded_is_the_default_operation_error(emu: ComputeEngineEmulator) -> None:
    from airflow_machine_images.emulator import Fault

    emu.inject(Fault(kind="operation_error", action="machineImages.insert"))
    client = compute(emu, "beta")
    operation = (
        client.machineImages()
        .insert(project=PROJECT, body={"name": "img-1"}, sourceInstance="zones/us-central1-a/instances/web-1")
        .execute()
    )
    done = wait_done(client, operation)
    assert done["error"]["errors"][0]["code"] == "RESOURCE_OPERATION_RATE_EXCEEDED"


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


@pytest.mark.parametrize("version", ["beta", "v1"])
def test_official_client_lists_the_operations_finished_after_a_server_time(
    emu: ComputeEngineEmulator, version: str
) -> None:
    """The poller's "finished since" filter (finished_operations.py): ``endTime`` compared as an instant."""
    from airflow_machine_images.triggers.finished_operations import ServerWatermark, done_since_filter

    client = compute(emu, version)
    images, operations = client.machineImages(), client.globalOperations()
    source = f"projects/{PROJECT}/zones/us-central1-a/instances/web-1"
    first = images.insert(project=PROJECT, body={"name": "img-a"}, sourceInstance=source).execute()
    first = operations.wait(project=PROJECT, operation=first["name"]).execute()
    time.sleep(0.05)
    second = images.insert(project=PROJECT, body={"name": "img-b"}, sourceInstance=source).execute()
    mark = ServerWatermark(overlap_seconds=0.0)
    mark.observe(first)  # the newest server time seen: the first one's endTime

    def listed() -> list[str]:
        answer = operations.list(project=PROJECT, filter=done_since_filter(mark.text() or "")).execute()
        return [op["name"] for op in answer.get("items", [])]

    assert listed() == []  # the first ended at the mark (not after it); the second is not DONE
    second = operations.wait(project=PROJECT, operation=second["name"]).execute()
    assert second["status"] == "DONE" and listed() == [second["name"]]
