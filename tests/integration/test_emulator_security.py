"""The emulator is a tool users run on their machines: it must not become a way to read their keys.

Each test is an attack over real HTTP (raw sockets where a client library would refuse to send the
request), and shows that the emulator now answers it safely.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_machine_images.emulator import ComputeEngineEmulator
from tests import strategies

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

PROJECT = "sec-project"
RAW_KEY = base64.b64encode(b"EMULATOR-LOG-CANARY-KEY-0123456!").decode()
RSA_KEY = strategies.CANARY_RSA_KEY
IMAGES = f"/compute/beta/projects/{PROJECT}/global/machineImages"
INSERT = f"{IMAGES}?requestId=6f1c1f56-5f0e-4c1b-9a57-3c2b8f6f0a11&sourceInstance=zones/us-central1-a/instances/web-1"


@pytest.fixture
def emu() -> Iterator[ComputeEngineEmulator]:
    with ComputeEngineEmulator(default_project=PROJECT, operation_seconds=0.2, seed=4) as emulator:
        emulator.add_instance("us-central1-a/web-1")
        yield emulator


def raw_request(emu: ComputeEngineEmulator, head: bytes, body: bytes = b"", timeout: float = 10.0) -> tuple[int, bytes]:
    """Send bytes as they are; return the status and the body of the answer (status 0: no answer)."""
    with socket.create_connection(("127.0.0.1", emu.port), timeout=timeout) as conn:
        conn.sendall(head + body)
        data = b""
        with contextlib.suppress(OSError):
            while chunk := conn.recv(65536):
                data += chunk
                if b"\r\n\r\n" in data:
                    top, _, rest = data.partition(b"\r\n\r\n")
                    length = next(
                        (
                            int(line.split(b":")[1])
                            for line in top.split(b"\r\n")
                            if line.lower().startswith(b"content-length:")
                        ),
                        None,
                    )
                    if length is not None and len(rest) >= length:
                        break
    if not data:
        return 0, b""
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


def head(method: str, path: str, host: str, extra: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n".encode()


# ------------------------------------------------------------------------------------------ the request log


def test_keys_are_redacted_in_the_request_log(emu: ComputeEngineEmulator) -> None:
    """Bodies with rawKey were logged verbatim and served to anyone at /_emulator/requests."""
    body = {
        "name": "img-a",
        "machineImageEncryptionKey": {"rawKey": RAW_KEY},
        "sourceDiskEncryptionKeys": [
            {"sourceDisk": "zones/us-central1-a/disks/web-1", "diskEncryptionKey": {"rsaEncryptedKey": RSA_KEY}}
        ],
    }
    answer = requests.post(emu.url + INSERT, json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    (record,) = emu.requests
    served = requests.get(f"{emu.url}/_emulator/requests", timeout=10).text
    for text in (json.dumps(record.body), repr(record), served):
        assert RAW_KEY not in text and RSA_KEY not in text
    assert record.body is not None
    assert record.body["machineImageEncryptionKey"] == {"rawKey": "[redacted]"}
    assert record.body["name"] == "img-a"  # the rest of the body stays, for tests to inspect
    # The emulator used the key all the same: the image shows its sha256, as the API does.
    image = emu.get_machine_image("img-a")
    assert image is not None and image["machineImageEncryptionKey"]["sha256"]


# ------------------------------------------------------------------------------------------- Host header


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.1.nip.io", "10.0.0.1", "[2001:db8::1]"])
def test_requests_for_another_host_are_refused(emu: ComputeEngineEmulator, host: str) -> None:
    """Any Host header was accepted: a web page could read the request log through DNS rebinding."""
    requests.post(
        emu.url + INSERT, json={"name": "img-a", "machineImageEncryptionKey": {"rawKey": RAW_KEY}}, timeout=10
    )
    for path in ("/_emulator/requests", IMAGES, "/_emulator/machineImages"):
        status, body = raw_request(emu, head("GET", path, host))
        assert status == 403, (path, status, body)
        assert b"--allow-remote" in body and b"img-a" not in body


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST", "[::1]", "127.5.6.7", "localhost."])
def test_loopback_hosts_are_served(emu: ComputeEngineEmulator, host: str) -> None:
    for shown in (host, f"{host}:{emu.port}"):
        status, _ = raw_request(emu, head("GET", "/_emulator/health", shown))
        assert status == 200, shown


def test_allow_remote_serves_any_host() -> None:
    with ComputeEngineEmulator(default_project=PROJECT, allow_remote=True) as emulator:
        status, _ = raw_request(emulator, head("GET", "/_emulator/health", "emulator.corp.example:8085"))
    assert status == 200


def test_a_request_without_host_is_refused(emu: ComputeEngineEmulator) -> None:
    status, _ = raw_request(emu, b"GET /_emulator/health HTTP/1.0\r\n\r\n")
    assert status == 403


# ------------------------------------------------------------------------------------------------ bodies


def test_a_body_over_the_limit_is_refused(emu: ComputeEngineEmulator) -> None:
    """No body size limit: any Content-Length was read into memory."""
    big = b'{"name": "' + b"a" * (5 * 1024 * 1024) + b'"}'
    answer = requests.post(emu.url + INSERT, data=big, headers={"Content-Type": "application/json"}, timeout=30)
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == 413

    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(6):
            yield b"a" * 1024 * 1024
        yield b'"}'

    answer = requests.post(emu.url + INSERT, data=chunks(), timeout=30)  # chunked
    assert answer.status_code == 413
    assert emu.requests == [] or all(r.status == 413 for r in emu.requests)


@pytest.mark.parametrize("length", [str(10**18), "99999999999999999999999999", str(2**63)])
def test_a_huge_content_length_is_answered(emu: ComputeEngineEmulator, length: str) -> None:
    """A huge Content-Length dropped the connection (the server tried to read that much)."""
    status, body = raw_request(emu, head("POST", INSERT, "127.0.0.1", f"Content-Length: {length}\r\n"), b"{}")
    assert status == 413, body
    assert json.loads(body)["error"]["code"] == 413


@pytest.mark.parametrize("length", ["-1", "abc", "1, 2", "0x10", " "])
def test_an_unreadable_content_length_is_a_bad_request(emu: ComputeEngineEmulator, length: str) -> None:
    status, body = raw_request(emu, head("POST", INSERT, "127.0.0.1", f"Content-Length: {length}\r\n"), b"{}")
    assert status == 400, body
    assert json.loads(body)["error"]["code"] == 400


@pytest.mark.parametrize("path", [INSERT, f"{IMAGES}/img-a/setLabels", "/_emulator/machineImages", "/_emulator/faults"])
@pytest.mark.parametrize("depth", [200, 100_000])
def test_deeply_nested_json_is_a_bad_request(emu: ComputeEngineEmulator, path: str, depth: int) -> None:
    """Deep nesting raised RecursionError in the handler: the connection was dropped."""
    for body in (b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth):
        answer = requests.post(emu.url + path, data=body, headers={"Content-Type": "application/json"}, timeout=30)
        assert answer.status_code == 400, answer.text[:200]
        assert "nested" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/_emulator/machineImages", {"name": "img-x", "labels": ["not", "a", "map"]}),
        ("/_emulator/machineImages", {"name": "img-x", "labels": {"a": 1}}),
        ("/_emulator/machineImages", {"name": ["img-x"]}),
        ("/_emulator/machineImages", {"name": "img-x", "total_storage_bytes": "many"}),
        ("/_emulator/instances", {"instance": {"zone": "us-central1-a"}}),
        ("/_emulator/instances", {"instance": "us-central1-a/web-9", "disk_size_gb": "ten"}),
        ("/_emulator/faults", {"kind": "status", "status": "503"}),
        ("/_emulator/faults", {"random": {"rate": "half"}}),
        ("/_emulator/faults", {"random": {"kinds": 5}}),
        (INSERT, {"name": "img-x", "labels": {"a": ["b"]}}),
        (INSERT, {"name": "img-x", "params": {"resourceManagerTags": 5}}),
        (INSERT, {"name": "img-x", "sourceDiskEncryptionKeys": [{"sourceDisk": {"a": 1}}]}),
        (INSERT, {"name": "img-x", "machineImageEncryptionKey": {"rawKey": 5}}),
    ],
)
def test_mistyped_bodies_are_bad_requests(emu: ComputeEngineEmulator, path: str, body: Any) -> None:
    """Wrong JSON types dropped the connection (or answered 500)."""
    answer = requests.post(emu.url + path, json=body, timeout=10)
    assert answer.status_code == 400, (answer.status_code, answer.text[:300])
    assert answer.json()["error"]["code"] == 400


@pytest.fixture(scope="module")
def fuzz_target() -> Iterator[ComputeEngineEmulator]:
    with ComputeEngineEmulator(default_project=PROJECT, operation_seconds=0.0, seed=9) as emulator:
        emulator.add_instance("us-central1-a/web-1")
        emulator.add_machine_image("img-a", source_instance="us-central1-a/web-1")
        yield emulator


FUZZED_PATHS = [
    INSERT,
    f"{IMAGES}/img-a/setLabels",
    f"/compute/beta/projects/{PROJECT}/global/operations/operation-1/wait",
    "/_emulator/machineImages",
    "/_emulator/instances",
    "/_emulator/faults",
]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(body=strategies.json_values(max_leaves=20), path=st.sampled_from(FUZZED_PATHS))
def test_any_json_body_gets_an_answer_never_a_crash(fuzz_target: ComputeEngineEmulator, body: Any, path: str) -> None:
    try:
        data = json.dumps(body, allow_nan=True).encode()
        answer = requests.post(
            fuzz_target.url + path, data=data, headers={"Content-Type": "application/json"}, timeout=10
        )
    finally:
        requests.delete(f"{fuzz_target.url}/_emulator/faults", timeout=10)
    assert answer.status_code < 500, (answer.status_code, answer.text[:300])
    payload = answer.json()
    if answer.status_code >= 400:
        assert payload["error"]["code"] == answer.status_code


# ------------------------------------------------------------------------------------------ list filters


@pytest.mark.parametrize(
    "pattern",
    [
        "(a+)+b",
        "(a|aa)*c",
        "(a*)*b",
        "a*a*a*a*a*a*a*a*a*b",
        "(x+x+)+y",
        "(.*a){20}b",
    ],
)
def test_a_crafted_eq_pattern_cannot_stall_the_emulator(emu: ComputeEngineEmulator, pattern: str) -> None:
    """eq filters ran Python's backtracking re: (a+)+b against a long name backtracked for minutes."""
    for n in range(3):
        emu.add_machine_image(f"a{'a' * 60}{n}", source_instance="us-central1-a/web-1", labels={"k": "a" * 63})
    outcome: dict[str, Any] = {}

    def ask() -> None:
        outcome["answer"] = requests.get(emu.url + IMAGES, params={"filter": f"labels.k eq '{pattern}'"}, timeout=30)

    started = time.monotonic()
    worker = threading.Thread(target=ask, daemon=True)
    worker.start()
    worker.join(5)
    assert not worker.is_alive(), f"the filter {pattern!r} is still being matched after 5 s"
    assert time.monotonic() - started < 5
    assert outcome["answer"].status_code == 200
    assert "items" not in outcome["answer"].json()


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        (r"(a)\1", "backreference"),
        ("(?=a)a", "lookaround"),
        ("(?!a)b", "lookaround"),
        ("(?<=a)b", "lookaround"),
        ("a{1001}", "1000"),
        ("((a{1000}){1000}){1000}", "too large"),
        ("a*+", "possessive"),
    ],
)
def test_patterns_re2_does_not_accept_are_refused(emu: ComputeEngineEmulator, pattern: str, why: str) -> None:
    answer = requests.get(emu.url + IMAGES, params={"filter": f"name eq '{pattern}'"}, timeout=10)
    assert answer.status_code == 400
    assert why in answer.json()["error"]["message"]
