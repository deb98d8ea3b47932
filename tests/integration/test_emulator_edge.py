"""The emulator's HTTP edge, third round (issue 23): cross-site requests, non-JSON bodies, a bounded log.

A ``text/plain`` POST with a foreign ``Origin`` (which a browser sends without asking first) changed
faults, seeded images and inserted; and the request log kept every body, refused 4 MB ones included (20
requests grew the emulator by 478 MB). Each test is the attack over real HTTP, and shows the emulator
now refuses it, or keeps within its limits.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import TYPE_CHECKING, Any

import pytest
import requests

from airflow_machine_images.emulator import ComputeEngineEmulator
from tests import strategies
from tests.integration.test_emulator_security import INSERT, PROJECT, head, raw_request

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

RAW_KEY = strategies.CANARY_RAW_KEY


@pytest.fixture
def emu() -> Iterator[ComputeEngineEmulator]:
    with ComputeEngineEmulator(default_project=PROJECT, operation_seconds=0.2, seed=4) as emulator:
        emulator.add_instance("us-central1-a/web-1")
        yield emulator


def post(emu: ComputeEngineEmulator, path: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(emu.url + path, data=body, headers=headers, timeout=30)


#: What a page on another site can make a browser send without a preflight: text/plain, or a form.
ATTACKS: list[tuple[str, bytes]] = [
    ("/_emulator/faults", json.dumps({"kind": "status", "status": 503, "times": 100}).encode()),
    ("/_emulator/machineImages", json.dumps({"name": "planted", "source_instance": "us-central1-a/web-1"}).encode()),
    ("/_emulator/forget-request-ids", b""),
    (INSERT, json.dumps({"name": "img-evil"}).encode()),
]


def untouched(emu: ComputeEngineEmulator) -> None:
    assert emu.pending_faults() == [] and emu.machine_images() == [] and emu.requests == []


@pytest.mark.parametrize(
    "origin",
    ["http://evil.example", "null", "http://127.0.0.1:1", "https://127.0.0.1:{port}", "http://localhost.evil:{port}"],
)
@pytest.mark.parametrize("content_type", ["text/plain", "application/json"])
def test_a_foreign_origin_is_refused_whatever_it_sends(
    emu: ComputeEngineEmulator, origin: str, content_type: str
) -> None:
    origin = origin.format(port=emu.port)
    for path, body in ATTACKS:
        answer = post(emu, path, body, {"Origin": origin, "Content-Type": content_type})
        assert answer.status_code == 403, (path, answer.text)
        assert answer.json()["error"]["errors"][0]["reason"] == "forbidden"
    for path in ("/_emulator/requests", "/_emulator/machineImages"):  # reading too
        assert requests.get(emu.url + path, headers={"Origin": origin}, timeout=10).status_code == 403
    untouched(emu)


def test_the_emulators_own_origin_is_served(emu: ComputeEngineEmulator) -> None:
    for origin in (f"http://127.0.0.1:{emu.port}", f"http://localhost:{emu.port}"):
        answer = post(emu, "/_emulator/faults", ATTACKS[0][1], {"Origin": origin, "Content-Type": "application/json"})
        assert answer.status_code == 200, answer.text
    assert len(emu.pending_faults()) == 2


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_a_body_that_is_not_json_is_refused_on_every_mutating_route(
    emu: ComputeEngineEmulator, content_type: str
) -> None:
    for path, body in [(path, body) for path, body in ATTACKS if body]:
        answer = post(emu, path, body, {"Content-Type": content_type})
        assert answer.status_code == 400, (path, answer.text)
        error = answer.json()["error"]
        assert error["errors"][0]["reason"] == "badContent"
        assert error["message"] == f"Unsupported content with type: {content_type}"
    # No Content-Type with a body is no JSON either; a PUT of the options too. (An empty body may carry
    # any type: a web page's empty POST meets the Origin check instead.)
    status, _ = raw_request(emu, head("POST", "/_emulator/faults", "127.0.0.1", "Content-Length: 2\r\n"), b"{}")
    assert status == 400
    answer = requests.put(f"{emu.url}/_emulator/options", data=b'{"rate_quota_per_minute": 1}', timeout=10)
    assert answer.status_code == 400 and emu.options.rate_quota_per_minute is None
    untouched(emu)


def test_json_bodies_and_bodiless_posts_are_served(emu: ComputeEngineEmulator) -> None:
    answer = post(
        emu, INSERT, json.dumps({"name": "img-a"}).encode(), {"Content-Type": "Application/JSON; charset=utf-8"}
    )
    assert answer.status_code == 200, answer.text
    wait = f"/compute/beta/projects/{PROJECT}/global/operations/{answer.json()['name']}/wait"
    assert requests.post(emu.url + wait, timeout=10).status_code == 200  # no body, no Content-Type: as the hooks send
    # A long list as googleapiclient sends it: POST, X-HTTP-Method-Override: GET, the query as a form body.
    listing = post(
        emu,
        f"/compute/beta/projects/{PROJECT}/global/machineImages",
        b"filter=name+%3D+img-a",
        {"X-HTTP-Method-Override": "GET", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert listing.status_code == 200 and [i["name"] for i in listing.json()["items"]] == ["img-a"]


# ------------------------------------------------------------------------------------------- the log


def refused_insert(size: int, key: str = RAW_KEY) -> bytes:
    """A JSON insert the API refuses (an unknown field), ``size`` bytes long, with a key at its start."""
    start = json.dumps({"machineImageEncryptionKey": {"rawKey": key}, "name": "img-big"})[:-1] + ', "bogus": "'
    return (start + "a" * (size - len(start) - 2) + '"}').encode()


def test_refused_bodies_are_kept_only_as_a_summary(emu: ComputeEngineEmulator) -> None:
    """20 refused 4 MB inserts grew the emulator by 478 MB: every body was kept, parsed."""
    body = refused_insert(4 * 1024 * 1024 - 1000)
    for _ in range(20):
        answer = post(emu, INSERT, body, {"Content-Type": "application/json"})
        assert answer.status_code == 400, answer.text[:200]
    records = emu.requests
    assert len(records) == 20 and all(r.body is None for r in records)
    summary = records[0].body_summary
    assert summary is not None
    assert summary["size"] == len(body) and summary["sha256"] == hashlib.sha256(body).hexdigest()
    assert summary["head"].startswith('{"[redacted]": {"rawKey": "[redacted]')
    served = requests.get(f"{emu.url}/_emulator/requests", timeout=10).text
    assert len(served) < 20 * 1000
    for text in (served, repr(records)):
        assert not any(RAW_KEY[i : i + 8] in text for i in range(len(RAW_KEY) - 8))
    assert emu.request_log_usage()["bytes"] < 20 * 1000


@pytest.mark.parametrize("cut", range(40, 70, 3))
def test_a_summary_never_shows_a_piece_of_a_key_cut_by_its_head(emu: ComputeEngineEmulator, cut: int) -> None:
    key = base64.b64encode(bytes(range(cut % 7, 32 + cut % 7))).decode()
    body = json.dumps({"x": "y" * (cut - 48), "machineImageEncryptionKey": {"rawKey": key}, "bogus": 1}).encode()
    assert post(emu, INSERT, body, {"Content-Type": "application/json"}).status_code == 400
    (record,) = emu.requests
    assert record.body_summary is not None
    assert not any(key[i : i + 6] in record.body_summary["head"] for i in range(len(key) - 6)), record.body_summary


def test_the_log_keeps_the_newest_entries_within_its_limits() -> None:
    with ComputeEngineEmulator(default_project=PROJECT, request_log_max_entries=50) as emu:
        for n in range(120):
            requests.get(f"{emu.url}/compute/beta/projects/{PROJECT}/global/machineImages/img-{n}", timeout=10)
        kept = emu.requests
        assert len(kept) == 50 and kept[-1].path.endswith("/img-119") and kept[0].path.endswith("/img-70")
        assert emu.count() == 120 and emu.count("machineImages.get", status=404) == 120  # counts stay whole
        assert emu.request_log_usage()["forgotten"] == 70
    with ComputeEngineEmulator(default_project=PROJECT, request_log_max_bytes=20_000) as emu:
        emu.add_instance("us-central1-a/web-1")
        for n in range(60):
            body: dict[str, Any] = {"name": f"img-{n}", "description": "d" * 900}
            assert requests.post(emu.url + INSERT.replace("6f1c1f56", f"{n:08x}"), json=body, timeout=10).ok
        usage = emu.request_log_usage()
        assert usage["bytes"] <= 20_000 and usage["entries"] < 60 and usage["forgotten"] == 60 - usage["entries"]
        assert emu.requests[-1].body["name"] == "img-59"  # type: ignore[index]


# ------------------------------------------------------------------- restoring a key-protected image


def test_an_image_protected_by_a_customer_key_is_restored_only_with_that_key(emu: ComputeEngineEmulator) -> None:
    """The restore canaries prove their key reached the API: without it the emulator refuses, as the API does."""
    insert = requests.post(
        emu.url + INSERT, json={"name": "img-k", "machineImageEncryptionKey": {"rawKey": RAW_KEY}}, timeout=10
    )
    assert insert.status_code == 200
    requests.post(
        f"{emu.url}/compute/beta/projects/{PROJECT}/global/operations/{insert.json()['name']}/wait", timeout=30
    )
    other = base64.b64encode(b"another-key-of-thirty-two-bytes!").decode()
    restore = f"/compute/beta/projects/{PROJECT}/zones/us-central1-a/instances"
    source = f"projects/{PROJECT}/global/machineImages/img-k"
    answers = []
    for n, key in enumerate((None, {"rawKey": other}, {"rawKey": RAW_KEY})):
        body: dict[str, Any] = {"name": f"vm-{n}", "sourceMachineImage": source}
        if key is not None:
            body["sourceMachineImageEncryptionKey"] = key
        rid = f"7f1c1f56-5f0e-4c1b-9a57-3c2b8f6f0a1{n}"
        answers.append(requests.post(f"{emu.url}{restore}?requestId={rid}", json=body, timeout=10))
    assert [a.status_code for a in answers] == [400, 400, 200]
    for refused in answers[:2]:
        assert refused.json()["error"]["errors"][0]["reason"] == "resourceIsEncryptedWithCustomerEncryptionKey"
        assert "protected with a customer supplied encryption key" in refused.json()["error"]["message"]
    assert RAW_KEY not in json.dumps([r.to_json() for r in emu.requests])
