"""The Compute Engine emulator over real HTTP: resources, operations, requestIds, errors, waits, lifecycle."""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from airflow_machine_images.emulator import ComputeEngineEmulator, RecordedRequest

pytestmark = pytest.mark.integration

PROJECT = "emu-project"
SOURCE = "zones/us-central1-a/instances/web-1"
OPERATION_NAME = re.compile(r"operation-\d{13}-[0-9a-f]{13}-[0-9a-f]{8}-[0-9a-f]{8}")
NAME_RE = re.compile(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?")
RFC3339_OFFSET = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2}")


class Api:
    """A thin client for the emulator's REST surface (one keep-alive session).

    :param emu: the emulator.
    :param version: ``beta`` or ``v1``.
    :param project: the project in the paths.
    """

    def __init__(self, emu: ComputeEngineEmulator, version: str = "beta", project: str = PROJECT) -> None:
        self.emu = emu
        self.session = requests.Session()
        self.base = f"{emu.url}/compute/{version}/projects/{project}"

    def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        timeout: float = 10.0,
        **kwargs: Any,
    ) -> requests.Response:
        """:return: the raw response (``path`` is relative to ``projects/P/``)."""
        return self.session.request(method, f"{self.base}/{path}", params=params, json=json, timeout=timeout, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """:return: the JSON of a call that must answer 200."""
        response = self.call(method, path, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    def insert(
        self,
        name: str,
        *,
        request_id: str | None = None,
        source: str = SOURCE,
        body: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Start an insert (``sourceInstance`` as a query parameter, like the official clients)."""
        params = {"sourceInstance": source}
        if request_id is not None:
            params["requestId"] = request_id
        return self.call("POST", "global/machineImages", params=params, json={"name": name, **(body or {})}, **kwargs)

    def insert_ok(self, name: str, **kwargs: Any) -> dict[str, Any]:
        """:return: the operation of an insert that must be accepted."""
        response = self.insert(name, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    def wait(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """:return: the operation after one ``globalOperations.wait``."""
        return self.ok("POST", f"global/operations/{operation}/wait", **kwargs)

    def until_done(self, operation: str) -> dict[str, Any]:
        """:return: the operation once DONE (waits as often as needed)."""
        for _ in range(20):
            result = self.wait(operation)
            if result["status"] == "DONE":
                return result
        raise AssertionError(f"{operation} never finished")

    def image(self, name: str) -> dict[str, Any]:
        """:return: the image JSON (must exist)."""
        return self.ok("GET", f"global/machineImages/{name}")


def google_error(response: requests.Response, code: int, reason: str) -> str:
    """Assert a Google-style error answer and return its message."""
    assert response.status_code == code, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert error["errors"][0]["reason"] == reason
    assert error["errors"][0]["domain"] == "global"
    assert error["errors"][0]["message"] == error["message"]
    return str(error["message"])


@pytest.fixture
def emu() -> Any:
    """An emulator whose operations take 0.3 s, with one 20 GB source instance."""
    with ComputeEngineEmulator(default_project=PROJECT, operation_seconds=0.3, seed=7) as emulator:
        emulator.add_instance("us-central1-a/web-1", disk_size_gb=20)
        yield emulator


@pytest.fixture
def api(emu: ComputeEngineEmulator) -> Api:
    return Api(emu)


# -- insert, operations, images -------------------------------------------------------------------


def test_insert_operation_moves_pending_running_done_with_monotonic_progress(emu: ComputeEngineEmulator) -> None:
    emu.add_instance("us-central1-a/slow-1", operation_seconds=1.0)
    api = Api(emu)
    request_id = str(uuid.uuid4())
    started = time.monotonic()
    operation = api.insert_ok("img-1", request_id=request_id, source="zones/us-central1-a/instances/slow-1")
    assert operation["status"] == "PENDING"
    assert operation["kind"] == "compute#operation"
    assert operation["operationType"] == "insert"
    assert OPERATION_NAME.fullmatch(operation["name"]) and NAME_RE.fullmatch(operation["name"])
    assert operation["id"].isdigit()
    assert operation["clientOperationId"] == request_id
    assert RFC3339_OFFSET.fullmatch(operation["insertTime"])
    assert "endTime" not in operation
    seen: list[tuple[str, int]] = []
    while True:
        current = api.ok("GET", f"global/operations/{operation['name']}")
        seen.append((current["status"], current["progress"]))
        if current["status"] == "DONE":
            break
        assert time.monotonic() - started < 5
        time.sleep(0.03)
    statuses = [status for status, _ in seen]
    order = {"PENDING": 0, "RUNNING": 1, "DONE": 2}
    assert [order[s] for s in statuses] == sorted(order[s] for s in statuses)
    assert "RUNNING" in statuses
    assert any(0 < progress < 100 for status, progress in seen if status == "RUNNING")
    progresses = [progress for _, progress in seen]
    assert progresses == sorted(progresses) and progresses[-1] == 100
    assert time.monotonic() - started >= 0.95
    image = api.image("img-1")
    assert current["targetLink"] == image["selfLink"]
    assert current["targetId"] == image["id"]
    assert current["selfLink"] == (
        f"https://www.googleapis.com/compute/beta/projects/{PROJECT}/global/operations/{operation['name']}"
    )
    start, end = (datetime.fromisoformat(current[k]) for k in ("startTime", "endTime"))
    assert timedelta(seconds=0.9) <= end - datetime.fromisoformat(current["insertTime"]) <= timedelta(seconds=1.1)
    assert start < end


def test_image_goes_creating_to_ready_with_its_size(api: Api) -> None:
    operation = api.insert_ok("img-1", body={"description": "nightly", "labels": {"managed-by": "airflow"}})
    image = api.image("img-1")
    assert image["status"] == "CREATING"
    assert "totalStorageBytes" not in image
    api.until_done(operation["name"])
    image = api.image("img-1")
    assert image["status"] == "READY"
    assert image["kind"] == "compute#machineImage"
    assert image["totalStorageBytes"] == str(20 * 1024**3 // 4)
    assert image["selfLink"] == f"https://www.googleapis.com/compute/beta/projects/{PROJECT}/global/machineImages/img-1"
    assert image["sourceInstance"] == (
        f"https://www.googleapis.com/compute/beta/projects/{PROJECT}/zones/us-central1-a/instances/web-1"
    )
    assert image["storageLocations"] == ["us"]
    assert image["description"] == "nightly"
    assert image["labels"] == {"managed-by": "airflow"}
    assert base64.b64decode(image["labelFingerprint"])
    assert RFC3339_OFFSET.fullmatch(image["creationTimestamp"])
    assert image["sourceInstanceProperties"]["disks"][0]["diskSizeGb"] == "20"
    assert api.emu.get_machine_image("img-1") == {**image, "status": "READY"}


@pytest.mark.parametrize(
    "source",
    [
        f"https://compute.googleapis.com/compute/v1/projects/{PROJECT}/zones/us-central1-a/instances/web-1",
        f"http://127.0.0.1:1/compute/beta/projects/{PROJECT}/zones/us-central1-a/instances/web-1",
        f"projects/{PROJECT}/zones/us-central1-a/instances/web-1",
        "zones/us-central1-a/instances/web-1",
    ],
)
def test_source_instance_may_be_a_full_or_partial_url(api: Api, source: str) -> None:
    api.insert_ok("img-1", source=source)
    assert api.image("img-1")["sourceInstance"].endswith(f"/projects/{PROJECT}/zones/us-central1-a/instances/web-1")


def test_source_instance_in_the_body_and_in_another_project(emu: ComputeEngineEmulator) -> None:
    emu.add_instance("projects/other-project/zones/europe-west1-b/instances/db-1")
    api = Api(emu)
    response = api.call(
        "POST",
        "global/machineImages",
        json={"name": "img-1", "sourceInstance": "projects/other-project/zones/europe-west1-b/instances/db-1"},
    )
    assert response.status_code == 200, response.text
    image = api.image("img-1")
    assert "/projects/other-project/zones/europe-west1-b/instances/db-1" in image["sourceInstance"]
    assert image["storageLocations"] == ["eu"]


def test_output_only_fields_are_ignored(api: Api) -> None:
    api.insert_ok(
        "img-1",
        body={"id": "1", "status": "READY", "selfLink": "x", "totalStorageBytes": "5", "kind": "compute#nothing"},
    )
    image = api.image("img-1")
    assert image["id"] != "1" and image["status"] == "CREATING" and image["kind"] == "compute#machineImage"
    assert "totalStorageBytes" not in image


def test_v1_paths_answer_with_v1_links(emu: ComputeEngineEmulator) -> None:
    api = Api(emu, version="v1")
    operation = api.insert_ok("img-1")
    assert "/compute/v1/" in operation["selfLink"] and "/compute/v1/" in operation["targetLink"]
    assert api.image("img-1")["selfLink"].startswith("https://www.googleapis.com/compute/v1/")
    assert Api(emu).image("img-1")["selfLink"].startswith("https://www.googleapis.com/compute/beta/")


def test_self_link_base_is_configurable() -> None:
    with ComputeEngineEmulator(default_project=PROJECT, self_link_base="https://compute.example/") as emu:
        emu.add_instance("us-central1-a/web-1")
        operation = Api(emu).insert_ok("img-1")
        assert (
            operation["targetLink"]
            == f"https://compute.example/compute/beta/projects/{PROJECT}/global/machineImages/img-1"
        )


# -- requestId -------------------------------------------------------------------------------------


def test_repeated_request_id_returns_the_original_operation(api: Api) -> None:
    request_id = str(uuid.uuid4())
    first = api.insert_ok("img-1", request_id=request_id)
    again = api.insert_ok("img-1", request_id=request_id)
    assert again["name"] == first["name"] and again["id"] == first["id"]
    done = api.until_done(first["name"])
    after_done = api.insert_ok("img-1", request_id=request_id, body={"description": "ignored"})
    assert after_done["name"] == first["name"] and after_done["status"] == "DONE"
    assert after_done["endTime"] == done["endTime"]
    assert len(api.emu.machine_images()) == 1
    assert "description" not in api.image("img-1")


def test_request_id_still_answers_after_the_image_was_deleted_until_forgotten(api: Api) -> None:
    request_id = str(uuid.uuid4())
    first = api.insert_ok("img-1", request_id=request_id)
    api.until_done(first["name"])
    deletion = api.ok("DELETE", "global/machineImages/img-1")
    api.until_done(deletion["name"])
    replay = api.insert_ok("img-1", request_id=request_id)
    assert replay["name"] == first["name"] and replay["status"] == "DONE"
    assert api.emu.machine_images() == []  # the replay did nothing
    api.emu.forget_request_ids()
    fresh = api.insert_ok("img-1", request_id=request_id)
    assert fresh["name"] != first["name"]
    assert [i["name"] for i in api.emu.machine_images()] == ["img-1"]


def test_request_ids_expire_after_their_ttl() -> None:
    with ComputeEngineEmulator(default_project=PROJECT, operation_seconds=0, request_id_ttl_seconds=0.2) as emu:
        emu.add_instance("us-central1-a/web-1")
        api = Api(emu)
        request_id = str(uuid.uuid4())
        first = api.insert_ok("img-1", request_id=request_id)
        assert api.insert_ok("img-1", request_id=request_id)["name"] == first["name"]
        time.sleep(0.3)
        google_error(api.insert("img-1", request_id=request_id), 409, "alreadyExists")


def test_request_ids_are_per_project(emu: ComputeEngineEmulator) -> None:
    emu.add_instance("us-central1-a/web-1", project="second-project")
    request_id = str(uuid.uuid4())
    first = Api(emu).insert_ok("img-1", request_id=request_id)
    other = Api(emu, project="second-project").insert_ok("img-1", request_id=request_id)
    assert other["name"] != first["name"]
    assert len(emu.machine_images("second-project")) == 1


# -- errors ----------------------------------------------------------------------------------------


def test_existing_name_is_409_already_exists(api: Api) -> None:
    api.insert_ok("img-1")
    message = google_error(api.insert("img-1"), 409, "alreadyExists")
    assert message == f"The resource 'projects/{PROJECT}/global/machineImages/img-1' already exists"


def test_missing_source_instance_is_404(api: Api) -> None:
    response = api.insert("img-1", source="zones/us-central1-a/instances/missing")
    message = google_error(response, 404, "notFound")
    assert message == f"The resource 'projects/{PROJECT}/zones/us-central1-a/instances/missing' was not found"
    assert api.emu.machine_images() == []


@pytest.mark.parametrize(
    ("kwargs", "reason", "fragment"),
    [
        ({"body": {"name": None}}, "required", "resource.name"),
        ({"body": {"name": "Bad_Name"}}, "invalid", "resource.name"),
        ({"body": {"name": "-bad"}}, "invalid", "resource.name"),
        ({"body": {"name": "a" * 64}}, "invalid", "resource.name"),
        ({"request_id": "not-a-uuid"}, "invalid", "requestId"),
        ({"request_id": "00000000-0000-0000-0000-000000000000"}, "invalid", "requestId"),
        ({"body": {"sourceInstanceName": "web-1"}}, "invalid", 'Unknown name "sourceInstanceName"'),
        ({"source": "web-1"}, "invalid", "sourceInstance"),
        ({"source": "us-central1-a/web-1"}, "invalid", "sourceInstance"),
        ({"source": ""}, "required", "sourceInstance"),
        ({"body": {"labels": {"Bad": "x"}}}, "invalid", "Label key 'Bad'"),
        ({"body": {"labels": {"ok": "Not OK"}}}, "invalid", "Label value"),
        ({"body": {"guestFlush": "yes"}}, "invalid", "guestFlush"),
        ({"body": {"machineImageEncryptionKey": {"rawKey": "c2hvcnQ="}}}, "invalid", "rawKey"),
    ],
)
def test_invalid_inserts_are_400_and_create_nothing(
    api: Api, kwargs: dict[str, Any], reason: str, fragment: str
) -> None:
    body = {"name": "img-1", **kwargs.pop("body", {})}
    if body["name"] is None:
        del body["name"]
    request_id = kwargs.get("request_id")
    params = {"sourceInstance": kwargs.get("source", SOURCE)}
    if request_id:
        params["requestId"] = request_id
    response = api.call("POST", "global/machineImages", params=params, json=body)
    assert fragment in google_error(response, 400, reason)
    assert api.emu.machine_images() == []
    assert api.emu.operations() == []


def test_request_errors_are_google_style(api: Api) -> None:
    session, root = api.session, api.emu.url
    google_error(session.get(f"{root}/compute/beta/projects/{PROJECT}/global/nothing"), 404, "notFound")
    google_error(session.get(f"{root}/compute/v2/projects/{PROJECT}/global/machineImages"), 404, "notFound")
    google_error(session.get(f"{root}/compute/beta/projects/{PROJECT}/global/machineImages/"), 404, "notFound")
    google_error(session.get(f"{root}/"), 404, "notFound")
    google_error(api.call("PUT", "global/machineImages/img-1"), 405, "methodNotAllowed")
    google_error(api.call("GET", "global/operations/op-1/wait"), 405, "methodNotAllowed")
    malformed = api.call(
        "POST",
        "global/machineImages",
        params={"sourceInstance": SOURCE},
        data=b'{"name": "img-1",',
        headers={"Content-Type": "application/json"},
    )
    google_error(malformed, 400, "parseError")
    google_error(
        api.call("POST", "global/machineImages", params={"sourceInstance": SOURCE}, json=["x"]), 400, "invalid"
    )
    assert "source_instance" in google_error(
        api.call("GET", "global/machineImages", params={"source_instance": "x"}), 400, "invalid"
    )
    bad_project = session.get(f"{root}/compute/beta/projects/Bad_Project/global/machineImages")
    google_error(bad_project, 400, "invalidParameter")
    google_error(api.call("GET", "global/machineImages/Bad_Name"), 400, "invalidParameter")
    assert api.emu.machine_images() == []
    actions = [r.action for r in api.emu.requests]
    assert actions[:6] == ["unknown"] * 6
    assert api.emu.count("machineImages.insert", status=400) == 2


def test_get_and_instance_reads(api: Api) -> None:
    google_error(api.call("GET", "global/machineImages/img-1"), 404, "notFound")
    instance = api.ok("GET", "zones/us-central1-a/instances/web-1")
    assert instance["kind"] == "compute#instance" and instance["name"] == "web-1" and instance["status"] == "RUNNING"
    assert instance["zone"].endswith(f"/projects/{PROJECT}/zones/us-central1-a")
    assert instance["selfLink"].endswith(f"/projects/{PROJECT}/zones/us-central1-a/instances/web-1")
    assert instance["disks"][0]["boot"] is True
    message = google_error(api.call("GET", "zones/us-central1-a/instances/nope"), 404, "notFound")
    assert message == f"The resource 'projects/{PROJECT}/zones/us-central1-a/instances/nope' was not found"
    image = api.insert_ok("img-1")
    by_id = api.image(api.image("img-1")["id"])
    assert by_id["name"] == "img-1"
    assert api.ok("GET", f"global/operations/{image['id']}")["name"] == image["name"]


def test_customer_keys_are_echoed_as_hashes_only(api: Api) -> None:
    raw = base64.b64encode(bytes(range(32))).decode()
    wrapped = base64.b64encode(b"wrapped-key-bytes").decode()
    body = {
        "machineImageEncryptionKey": {"rawKey": raw},
        "sourceDiskEncryptionKeys": [
            {"sourceDisk": "zones/us-central1-a/disks/web-1", "diskEncryptionKey": {"rsaEncryptedKey": wrapped}},
            {"sourceDisk": "zones/us-central1-a/disks/data", "diskEncryptionKey": {"kmsKeyName": "projects/k/keys/1"}},
        ],
    }
    api.insert_ok("img-1", body=body)
    response = api.call("GET", "global/machineImages/img-1")
    assert raw not in response.text and wrapped not in response.text
    image = response.json()
    assert image["machineImageEncryptionKey"] == {
        "sha256": base64.b64encode(hashlib.sha256(bytes(range(32))).digest()).decode()
    }
    disk_keys = image["sourceDiskEncryptionKeys"]
    assert set(disk_keys[0]["diskEncryptionKey"]) == {"sha256"}
    assert disk_keys[1]["diskEncryptionKey"] == {"kmsKeyName": "projects/k/keys/1"}
    # The request log keeps the body, keys redacted (it is served to any local process).
    (recorded,) = [r for r in api.emu.requests if r.action == "machineImages.insert"]
    assert recorded.body is not None and recorded.body["machineImageEncryptionKey"]["rawKey"] == "[redacted]"
    assert raw not in repr(recorded) and wrapped not in repr(recorded)


# -- delete and setLabels --------------------------------------------------------------------------


def test_delete_goes_deleting_then_gone(api: Api) -> None:
    api.until_done(api.insert_ok("img-1")["name"])
    request_id = str(uuid.uuid4())
    deletion = api.ok("DELETE", "global/machineImages/img-1", params={"requestId": request_id})
    assert deletion["operationType"] == "delete" and deletion["targetLink"].endswith("/machineImages/img-1")
    assert api.image("img-1")["status"] == "DELETING"
    assert api.ok("DELETE", "global/machineImages/img-1", params={"requestId": request_id})["name"] == deletion["name"]
    assert api.until_done(deletion["name"])["progress"] == 100
    google_error(api.call("GET", "global/machineImages/img-1"), 404, "notFound")
    google_error(api.call("DELETE", "global/machineImages/img-1"), 404, "notFound")
    assert [op["operationType"] for op in api.emu.operations()] == ["insert", "delete"]


def test_deleting_a_creating_image_is_resource_not_ready(api: Api) -> None:
    api.insert_ok("img-1")
    google_error(api.call("DELETE", "global/machineImages/img-1"), 400, "resourceNotReady")


def test_set_labels_needs_the_current_fingerprint(api: Api) -> None:
    api.until_done(api.insert_ok("img-1", body={"labels": {"a": "1"}})["name"])
    fingerprint = api.image("img-1")["labelFingerprint"]
    stale = api.call(
        "POST", "global/machineImages/img-1/setLabels", json={"labels": {"b": "2"}, "labelFingerprint": "AAAAAAAAAAA="}
    )
    google_error(stale, 412, "conditionNotMet")
    google_error(
        api.call("POST", "global/machineImages/img-1/setLabels", json={"labels": {"b": "2"}}), 412, "conditionNotMet"
    )
    operation = api.ok(
        "POST", "global/machineImages/img-1/setLabels", json={"labels": {"b": "2"}, "labelFingerprint": fingerprint}
    )
    assert operation["operationType"] == "setLabels" and operation["status"] == "DONE"
    image = api.image("img-1")
    assert image["labels"] == {"b": "2"} and image["labelFingerprint"] != fingerprint
    again = api.call(
        "POST", "global/machineImages/img-1/setLabels", json={"labels": {}, "labelFingerprint": fingerprint}
    )
    google_error(again, 412, "conditionNotMet")
    api.ok(
        "POST",
        "global/machineImages/img-1/setLabels",
        json={"labels": {}, "labelFingerprint": image["labelFingerprint"]},
    )
    assert "labels" not in api.image("img-1")
    google_error(
        api.call("POST", "global/machineImages/nope/setLabels", json={"labels": {}, "labelFingerprint": "x"}),
        404,
        "notFound",
    )


# -- waits -----------------------------------------------------------------------------------------


def test_wait_returns_promptly_when_the_operation_is_done(emu: ComputeEngineEmulator) -> None:
    emu.add_instance("us-central1-a/web-2", operation_seconds=0.6)
    api = Api(emu)
    started = time.monotonic()
    operation = api.insert_ok("img-1", source="zones/us-central1-a/instances/web-2")
    result = api.wait(operation["name"])
    elapsed = time.monotonic() - started
    assert result["status"] == "DONE"
    assert 0.58 <= elapsed < 0.6 + 0.05, elapsed  # woken within ~50 ms of DONE
    (wait,) = [r for r in emu.requests if r.action == "globalOperations.wait"]
    assert wait.status == 200 and wait.method == "POST"


def test_wait_returns_the_current_operation_at_its_deadline() -> None:
    with ComputeEngineEmulator(default_project=PROJECT, operation_seconds=2, wait_deadline_seconds=0.3) as emu:
        emu.add_instance("us-central1-a/web-1")
        api = Api(emu)
        operation = api.insert_ok("img-1")
        started = time.monotonic()
        result = api.wait(operation["name"])
        assert 0.28 <= time.monotonic() - started < 1.0
        assert result["status"] == "RUNNING" and result["name"] == operation["name"]


def test_early_waits_return_at_once() -> None:
    with ComputeEngineEmulator(default_project=PROJECT, operation_seconds=2, early_wait_probability=1.0) as emu:
        emu.add_instance("us-central1-a/web-1")
        api = Api(emu)
        operation = api.insert_ok("img-1")
        started = time.monotonic()
        for _ in range(3):
            assert api.wait(operation["name"])["status"] != "DONE"
        assert time.monotonic() - started < 0.5


def test_early_wait_probability_is_a_seeded_draw() -> None:
    def pattern(seed: int) -> list[bool]:
        kwargs: dict[str, Any] = {"operation_seconds": 30, "wait_deadline_seconds": 0.08, "seed": seed}
        with ComputeEngineEmulator(default_project=PROJECT, early_wait_probability=0.5, **kwargs) as emu:
            emu.add_instance("us-central1-a/web-1")
            api = Api(emu)
            name = api.insert_ok("img-1")["name"]
            for _ in range(12):
                assert api.wait(name)["status"] != "DONE"
            waits = [r for r in emu.requests if r.action == "globalOperations.wait"]
            held = [r.finished - r.started for r in waits]
            assert all(h < 0.04 or h >= 0.08 for h in held), held
            return [h < 0.04 for h in held]

    first = pattern(11)
    assert True in first and False in first
    assert pattern(11) == first


def test_wait_for_a_missing_operation_is_404(api: Api) -> None:
    message = google_error(api.call("POST", "global/operations/operation-123/wait"), 404, "notFound")
    assert message == f"The resource 'projects/{PROJECT}/global/operations/operation-123' was not found"
    google_error(api.call("GET", "global/operations/operation-123"), 404, "notFound")


def test_many_concurrent_long_polls_all_wake_at_done(emu: ComputeEngineEmulator) -> None:
    emu.add_instance("us-central1-a/web-3", operation_seconds=0.5)
    api = Api(emu)
    names = [api.insert_ok(f"img-{n}", source="zones/us-central1-a/instances/web-3")["name"] for n in range(40)]
    started = time.monotonic()

    def wait(name: str) -> str:
        return str(Api(emu).wait(name)["status"])

    with ThreadPoolExecutor(max_workers=40) as pool:
        statuses = list(pool.map(wait, names))
    assert statuses == ["DONE"] * 40
    assert time.monotonic() - started < 1.5


# -- seeding and inspection ------------------------------------------------------------------------


def test_seeded_images(emu: ComputeEngineEmulator) -> None:
    old = emu.add_machine_image(
        "old-1", source_instance="us-central1-a/web-1", creation_timestamp="2024-01-02T03:04:05Z", labels={"a": "b"}
    )
    assert old["status"] == "READY" and old["labels"] == {"a": "b"}
    assert datetime.fromisoformat(old["creationTimestamp"]) == datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert emu.add_machine_image("sized", total_storage_bytes=123)["totalStorageBytes"] == "123"
    emu.add_machine_image("gone-source", source_instance="us-east1-b/deleted-vm")
    assert emu.add_machine_image("broken", status="INVALID")["status"] == "INVALID"
    assert emu.add_machine_image("coming", status="CREATING")["status"] == "CREATING"
    assert emu.add_machine_image("going", status="DELETING")["status"] == "DELETING"
    with pytest.raises(ValueError, match="already exists"):
        emu.add_machine_image("old-1")
    with pytest.raises(ValueError, match="name"):
        emu.add_machine_image("Bad")
    time.sleep(0.35)
    statuses = {i["name"]: i["status"] for i in emu.machine_images()}
    assert statuses == {
        "old-1": "READY",
        "sized": "READY",
        "gone-source": "READY",
        "broken": "INVALID",
        "coming": "READY",
    }
    assert emu.get_machine_image("going") is None and emu.get_machine_image("coming") is not None
    assert emu.requests == []  # seeding is not an API request


def test_recorded_requests(emu: ComputeEngineEmulator) -> None:
    api = Api(emu)
    request_id = str(uuid.uuid4())
    api.insert_ok("img-1", request_id=request_id, headers={"Authorization": "Bearer top-secret"})
    api.call("GET", "global/machineImages/img-1")
    records = emu.requests
    assert [r.action for r in records] == ["machineImages.insert", "machineImages.get"]
    insert = records[0]
    assert isinstance(insert, RecordedRequest)
    assert insert.method == "POST" and insert.path == f"/compute/beta/projects/{PROJECT}/global/machineImages"
    assert insert.query == {"sourceInstance": SOURCE, "requestId": request_id}
    assert insert.body == {"name": "img-1"}
    assert insert.status == 200 and insert.fault is None
    assert insert.has_authorization is True and records[1].has_authorization is False
    assert "top-secret" not in repr(records)
    assert insert.started <= insert.finished <= records[1].started
    with pytest.raises(AttributeError):
        insert.status = 500  # type: ignore[misc]
    assert emu.count() == 2 and emu.count("machineImages.get") == 1 and emu.count(status=200) == 2
    emu.clear_requests()
    assert emu.requests == [] and emu.count() == 0


def test_requests_are_kept_in_arrival_order(emu: ComputeEngineEmulator) -> None:
    emu.add_instance("us-central1-a/web-4", operation_seconds=0.4)
    api = Api(emu)
    name = api.insert_ok("img-1", source="zones/us-central1-a/instances/web-4")["name"]
    emu.clear_requests()
    waiter = threading.Thread(target=lambda: Api(emu).wait(name))
    waiter.start()
    time.sleep(0.1)
    api.call("GET", "global/machineImages/img-1")
    waiter.join()
    assert [r.action for r in emu.requests] == ["globalOperations.wait", "machineImages.get"]


def test_method_override_for_long_list_urls(api: Api) -> None:
    api.insert_ok("img-1")
    response = api.call(
        "POST",
        "global/machineImages",
        data="filter=name+%3D+img-1&maxResults=5",
        headers={"X-HTTP-Method-Override": "GET", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    assert [i["name"] for i in response.json()["items"]] == ["img-1"]
    recorded = api.emu.requests[-1]
    assert recorded.action == "machineImages.list" and recorded.method == "GET"
    assert recorded.query == {"filter": "name = img-1", "maxResults": "5"}


# -- lifecycle and load ----------------------------------------------------------------------------


def test_stop_does_not_hang_with_open_long_polls() -> None:
    emu = ComputeEngineEmulator(default_project=PROJECT, operation_seconds=60, wait_deadline_seconds=60).start()
    emu.add_instance("us-central1-a/web-1")
    api = Api(emu)
    name = api.insert_ok("img-1")["name"]
    outcomes: list[object] = []

    def long_poll() -> None:
        try:
            outcomes.append(Api(emu).wait(name, timeout=30)["status"])
        except requests.RequestException as exc:
            outcomes.append(exc)

    pollers = [threading.Thread(target=long_poll) for _ in range(5)]
    for poller in pollers:
        poller.start()
    time.sleep(0.2)
    started = time.monotonic()
    emu.stop()
    assert time.monotonic() - started < 2
    for poller in pollers:
        poller.join(timeout=5)
    assert len(outcomes) == 5 and not any(p.is_alive() for p in pollers)
    assert emu.running is False
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{emu.url}/_emulator/health", timeout=2)


def test_restart_keeps_state_and_port(emu: ComputeEngineEmulator) -> None:
    Api(emu).insert_ok("img-1")
    port = emu.port
    emu.stop()
    emu.start()
    assert emu.port == port
    assert Api(emu).image("img-1")["name"] == "img-1"


def test_refuses_non_loopback_hosts() -> None:
    with pytest.raises(ValueError, match="loopback"):
        ComputeEngineEmulator(host="0.0.0.0")


def test_hundreds_of_connections_and_a_thousand_gets(emu: ComputeEngineEmulator) -> None:
    api = Api(emu)
    api.insert_ok("img-1")
    url = f"{api.base}/global/machineImages/img-1"
    barrier = threading.Barrier(200)

    def hold_connection(_: int) -> int:
        with requests.Session() as session:
            barrier.wait(timeout=10)
            return session.get(url, timeout=20).status_code

    with ThreadPoolExecutor(max_workers=200) as pool:
        assert list(pool.map(hold_connection, range(200))) == [200] * 200

    def hammer(_: int) -> int:
        with requests.Session() as session:
            return sum(session.get(url, timeout=10).status_code == 200 for _ in range(125))

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sum(pool.map(hammer, range(8))) == 1000
    elapsed = time.monotonic() - started
    print(f"1000 keep-alive GETs in {elapsed:.2f} s ({1000 / elapsed:.0f}/s)")
    assert elapsed < 10
