"""Out-of-process use of the emulator: the ``/_emulator/*`` control endpoints and the command line."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any

import pytest
import requests

from airflow_machine_images.emulator import ComputeEngineEmulator
from tests.conftest import REPO_ROOT
from tests.integration.test_emulator import Api, google_error

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration


@pytest.fixture
def emu() -> Any:
    with ComputeEngineEmulator(default_project="ctl-project", operation_seconds=0.3, seed=2) as emulator:
        yield emulator


def control(emu: ComputeEngineEmulator, method: str, path: str, **kwargs: Any) -> Any:
    response = requests.request(method, f"{emu.url}/_emulator/{path}", timeout=10, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


def test_control_endpoints_seed_inspect_and_script(emu: ComputeEngineEmulator) -> None:
    assert control(emu, "GET", "health")["status"] == "ok"
    control(emu, "POST", "instances", json={"instance": "us-central1-a/web-1", "disk_size_gb": 40})
    control(emu, "POST", "instances", json={"instance": "europe-west1-b/db-1", "project": "other-project"})
    seeded = control(
        emu,
        "POST",
        "machineImages",
        json={"name": "old-1", "source_instance": "us-central1-a/web-1", "labels": {"a": "b"},
              "creation_timestamp": "2023-05-01T00:00:00Z"},
    )  # fmt: skip
    assert seeded["status"] == "READY" and seeded["totalStorageBytes"] == str(40 * 1024**3 // 4)
    assert [i["name"] for i in control(emu, "GET", "machineImages")] == ["old-1"]
    assert control(emu, "GET", "machineImages", params={"project": "other-project"}) == []

    api = Api(emu, project="ctl-project")
    control(emu, "POST", "faults", json={"kind": "status", "status": 429, "action": "machineImages.get"})
    assert control(emu, "GET", "faults")[0]["status"] == 429
    google_error(api.call("GET", "global/machineImages/old-1"), 429, "rateLimitExceeded")
    control(emu, "POST", "faults", json={"random": {"rate": 1.0, "kinds": ["status"], "statuses": [500]}})
    assert api.call("GET", "global/machineImages/old-1").status_code == 500
    control(emu, "DELETE", "faults")
    assert api.call("GET", "global/machineImages/old-1").status_code == 200

    request_id = str(uuid.uuid4())
    first = api.insert_ok("img-1", request_id=request_id)
    assert [op["name"] for op in control(emu, "GET", "operations")] == [first["name"]]
    control(emu, "POST", "forget-request-ids")
    google_error(api.insert("img-1", request_id=request_id), 409, "alreadyExists")

    recorded = control(emu, "GET", "requests")
    assert [r["action"] for r in recorded] == ["machineImages.get"] * 3 + ["machineImages.insert"] * 2
    assert recorded[0]["status"] == 429 and recorded[0]["fault"] == "status"
    assert recorded[-1]["query"]["requestId"] == request_id
    assert {"started", "finished", "has_authorization", "body", "path", "method"} <= set(recorded[0])
    assert emu.count() == 5  # control calls are never recorded
    control(emu, "DELETE", "requests")
    assert emu.requests == []


def test_control_endpoint_errors(emu: ComputeEngineEmulator) -> None:
    def status(method: str, path: str, **kwargs: Any) -> int:
        return requests.request(method, f"{emu.url}/_emulator/{path}", timeout=10, **kwargs).status_code

    assert status("POST", "faults", json={"kind": "explode"}) == 400
    assert status("POST", "faults", json={"kind": "drop", "colour": "red"}) == 400
    assert status("POST", "faults", json={"random": {"rate": 2}}) == 400
    assert status("POST", "instances", json={"instance": "not an instance"}) == 400
    assert status("POST", "machineImages", json={"name": "x", "source_instance": "a/b", "extra": 1}) == 400
    assert status("POST", "machineImages", data=b"{oops") == 400
    assert status("GET", "nothing") == 404
    assert status("PUT", "health") == 405
    assert emu.pending_faults() == [] and emu.requests == []


def _start_cli(*args: str, tmp_path: Path) -> tuple[subprocess.Popen[str], str]:
    ready = tmp_path / "ready.txt"
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_machine_images.emulator", "--port", "0", *args, "--ready-file", str(ready)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    first = process.stdout.readline().strip()
    prefix = "Compute Engine emulator listening on "
    assert first.startswith(prefix), first + (process.stderr.read() if process.stderr else "")
    url = first[len(prefix) :]
    assert url.startswith("http://127.0.0.1:") and not url.endswith("/")
    assert ready.read_text().strip() == url
    return process, url


def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    process, url = _start_cli(
        "--project", "cli-project", "--instance", "us-central1-a/web-1", "--instance", "us-east1-b/web-2",
        "--operation-seconds", "0.3", "--wait-deadline", "5", "--seed", "1",
        tmp_path=tmp_path,
    )  # fmt: skip
    try:
        assert requests.get(f"{url}/_emulator/health", timeout=5).json()["status"] == "ok"
        base = f"{url}/compute/v1/projects/cli-project"
        operation = requests.post(
            f"{base}/global/machineImages",
            params={"sourceInstance": "zones/us-east1-b/instances/web-2"},
            json={"name": "img-1"},
            timeout=5,
        ).json()
        started = time.monotonic()
        done = requests.post(f"{base}/global/operations/{operation['name']}/wait", timeout=10).json()
        assert done["status"] == "DONE" and time.monotonic() - started < 1
        assert requests.get(f"{base}/global/machineImages/img-1", timeout=5).json()["status"] == "READY"
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert stdout == ""  # exactly one line was printed
    lines = stderr.strip().splitlines()
    assert len(lines) == 3, stderr
    assert lines[0].startswith("POST /compute/v1/projects/cli-project/global/machineImages -> 200 machineImages.insert")
    assert "globalOperations.wait" in lines[1] and "machineImages.get" in lines[2]


def test_cli_instances_take_labels(tmp_path: Path) -> None:
    process, url = _start_cli(
        "--quiet", "--instance", "us-central1-a/web-1:backup=nightly,team=web",
        "--instance", "projects/other/zones/us-east1-b/instances/db-1:backup=", "--instance", "us-east1-b/plain",
        tmp_path=tmp_path,
    )  # fmt: skip
    try:

        def labels(project: str, zone: str, name: str) -> Any:
            answer = requests.get(f"{url}/compute/v1/projects/{project}/zones/{zone}/instances/{name}", timeout=5)
            return answer.json().get("labels")

        assert labels("demo-project", "us-central1-a", "web-1") == {"backup": "nightly", "team": "web"}
        assert labels("other", "us-east1-b", "db-1") == {"backup": ""}
        assert not labels("demo-project", "us-east1-b", "plain")
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
    bad = subprocess.run(
        [sys.executable, "-m", "airflow_machine_images.emulator", "--instance", "us-central1-a/web-1:Team=web"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and "error:" in bad.stderr and "Team" in bad.stderr


@pytest.mark.parametrize(
    ("argument", "expected"),
    [
        ("us-central1-a/web-1", ("us-central1-a/web-1", {})),
        ("us-central1-a/web-1:a=1,b=", ("us-central1-a/web-1", {"a": "1", "b": ""})),
        ("http://127.0.0.1:8085/compute/v1/projects/p/zones/us-central1-a/instances/i",
         ("http://127.0.0.1:8085/compute/v1/projects/p/zones/us-central1-a/instances/i", {})),
        ("https://h/compute/v1/projects/p/zones/us-central1-a/instances/i:a=1",
         ("https://h/compute/v1/projects/p/zones/us-central1-a/instances/i", {"a": "1"})),
    ],
)  # fmt: skip
def test_instance_argument_splits_off_the_labels(argument: str, expected: tuple[str, dict[str, str]]) -> None:
    from airflow_machine_images.emulator.__main__ import instance_argument

    assert instance_argument(argument) == expected
    with pytest.raises(ValueError, match="KEY=VALUE"):
        instance_argument("us-central1-a/web-1:a=1,b")


def test_cli_quiet_and_sigint(tmp_path: Path) -> None:
    process, url = _start_cli("--quiet", "--fault-rate", "1", "--seed", "3", tmp_path=tmp_path)
    try:
        response = None
        with contextlib.suppress(requests.RequestException):
            response = requests.get(f"{url}/compute/beta/projects/demo-project/global/machineImages", timeout=5)
        assert response is None or response.status_code != 200  # every request gets a fault
        assert requests.get(f"{url}/_emulator/health", timeout=5).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert stderr == ""


def test_cli_refuses_a_non_loopback_host() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_machine_images.emulator", "--host", "0.0.0.0", "--port", "0"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert "loopback" in result.stderr and "--allow-remote" in result.stderr
    assert result.stdout == ""


def test_the_control_api_lists_its_routes_and_the_docs_document_each(emu: ComputeEngineEmulator) -> None:
    index = control(emu, "GET", "")["routes"]
    readme = (REPO_ROOT / "docs" / "emulator.md").read_text()
    for entry in index:
        method, target = entry["route"].split(" ", 1)
        path = target.split("?", 1)[0]
        assert f"`{method} {path}" in readme, f"docs/emulator.md does not document {entry['route']}"
        if method == "GET":  # every listed route is served (writes are exercised above)
            assert requests.get(f"{emu.url}{path}", timeout=10).status_code == 200, entry["route"]
    listed = {entry["route"].split("?", 1)[0] for entry in index}
    for method, path in [("POST", "machineImages"), ("POST", "faults"), ("DELETE", "requests")]:
        assert f"{method} /_emulator/{path}" in listed
    assert requests.get(f"{emu.url}/_emulator/no-such-thing", timeout=10).status_code == 404


def test_standing_options_are_set_over_the_control_api_and_checked(emu: ComputeEngineEmulator) -> None:
    assert control(emu, "GET", "options")["rate_quota_per_minute"] is None
    changed = control(
        emu, "PUT", "options", json={"rate_quota_per_minute": 2, "concurrent_operations_limit": 5,
                                     "request_id_ttl_seconds": 30, "partial_list_fraction": 0.3}
    )  # fmt: skip
    assert changed["rate_quota_per_minute"] == 2 and changed["partial_list_warning"] == "UNREACHABLE"
    assert emu.options.concurrent_operations_limit == 5 and emu.options.request_id_ttl_seconds == 30

    def refused(body: dict[str, Any]) -> str:
        response = requests.put(f"{emu.url}/_emulator/options", json=body, timeout=10)
        assert response.status_code == 400
        return str(response.json()["error"]["message"])

    assert "rate_quota_per_minute" in refused({"rate_quota_per_minute": 0})
    assert "partial_list_fraction" in refused({"partial_list_fraction": 1})
    assert "partial_list_warning" in refused({"partial_list_warning": "NO_RESULTS_ON_PAGE"})
    assert "Unknown options: colour" in refused({"colour": "red"})
    assert "source_image_limit_scale" in refused({"source_image_limit_scale": 0})
    assert control(emu, "GET", "options")["rate_quota_per_minute"] == 2  # a refused change changes nothing
    control(emu, "PUT", "options", json={"rate_quota_per_minute": None, "partial_list_fraction": 0})
    assert emu.options.rate_quota_per_minute is None


def test_cli_sets_the_standing_options(tmp_path: Path) -> None:
    process, url = _start_cli(
        "--quiet", "--rate-quota", "1", "--rate-quota-window", "600", "--concurrent-operations-limit", "2",
        "--request-id-ttl", "3600", "--partial-list-fraction", "0.5", "--partial-list-warning", "none",
        "--source-image-limit-scale", "0.01", tmp_path=tmp_path,
    )  # fmt: skip
    try:
        options = requests.get(f"{url}/_emulator/options", timeout=5).json()
        assert options == {
            "rate_quota_per_minute": 1, "rate_quota_window_seconds": 600.0, "concurrent_operations_limit": 2,
            "request_id_ttl_seconds": 3600.0, "partial_list_fraction": 0.5, "partial_list_warning": None,
            "source_image_limit_scale": 0.01,
        }  # fmt: skip
        listing = f"{url}/compute/beta/projects/demo-project/global/machineImages"
        assert requests.get(listing, timeout=5).status_code == 200
        assert requests.get(listing, timeout=5).status_code == 403  # the quota of one request is spent
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
    assert process.returncode == 0
