"""Limits against a misbehaving endpoint: response size, whole-call deadline, the caller's wait timeout.

Raw sockets play the endpoint (a body larger than any answer, bytes dripped slower than any timeout
per read but never finishing), and the emulator plays a slow operation. Both hooks are driven
through their public methods; nothing of the package's HTTP layer is patched.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pytest

from airflow_machine_images.api.retry import RetryPolicy
from airflow_machine_images.emulator import ComputeEngineEmulator
from airflow_machine_images.exceptions import DeadlineExceededError, OperationTimeoutError, ResponseLimitError
from airflow_machine_images.hooks import ComputeEngineMachineImageAsyncHook, ComputeEngineMachineImageHook
from tests.integration.conftest import PROJECT, SOURCE, connection_json, load_dag, task_states

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
ONE_ATTEMPT = RetryPolicy(max_attempts=1)


class RawServer:
    """Accepts connections and hands each to ``serve(connection)`` in its own thread."""

    def __init__(self, serve: Callable[[socket.socket], None]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        self._serve = serve
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)  # the request (small: no body on these calls)
                self._serve(conn)
            except OSError:
                pass  # the client gave up

    def stop(self) -> None:
        self._stop.set()
        self.sock.close()


def huge_body(conn: socket.socket, *, chunked: bool, size: int = 40 * MiB) -> None:
    """A valid Operation padded to ``size`` bytes."""
    head = b'{"name": "operation-1", "status": "DONE", "pad": "'
    tail = b'"}'
    pad = size - len(head) - len(tail)
    if chunked:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        pieces = [head, *([b"a" * MiB] * (pad // MiB)), b"a" * (pad % MiB), tail]
        for piece in pieces:
            conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        conn.sendall(b"0\r\n\r\n")
    else:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % size)
        conn.sendall(head)
        for _ in range(pad // MiB):
            conn.sendall(b"a" * MiB)
        conn.sendall(b"a" * (pad % MiB) + tail)


def drip(conn: socket.socket, *, where: str, seconds: float = 12.0) -> None:
    """Bytes every 0.3 s (each read is answered well within any read timeout), for ``seconds``."""
    if where == "headers":
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        payload = b"X-Drip: " + b"d" * 1000
    else:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
        payload = b'{"name": "operation-1", "status": "DONE", "pad": "' + b"a" * 1000
    deadline = time.monotonic() + seconds
    for byte in payload:
        if time.monotonic() > deadline:
            return
        conn.sendall(bytes([byte]))
        time.sleep(0.3)


def sync_get(endpoint: str, **settings: Any) -> Callable[[], object]:
    hook = ComputeEngineMachineImageHook(api_endpoint=endpoint, retry_policy=ONE_ATTEMPT, **settings)
    return lambda: hook.get_operation(operation_name="operation-1", project_id=PROJECT)


def async_get(endpoint: str, **settings: Any) -> Callable[[], object]:
    hook = ComputeEngineMachineImageAsyncHook(api_endpoint=endpoint, retry_policy=ONE_ATTEMPT, **settings)
    return lambda: asyncio.run(hook.execute_call(lambda api: api.get_operation(PROJECT, "operation-1")))


TRANSPORTS = {"requests": sync_get, "aiohttp": async_get}


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_answer_larger_than_the_limit_is_refused(transport: str, chunked: bool) -> None:
    """Response bodies were read without a size limit (a 40 MiB 'operation' was accepted)."""
    server = RawServer(lambda conn: huge_body(conn, chunked=chunked))
    try:
        with pytest.raises(ResponseLimitError, match="32 MiB") as info:
            TRANSPORTS[transport](server.url)()
    finally:
        server.stop()
    assert server.connections == 1  # not retried
    assert "max_response_bytes" in str(info.value)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("where", ["headers", "body"])
def test_a_server_that_drips_bytes_is_cut_at_the_call_deadline(transport: str, where: str) -> None:
    """Timeouts were per socket read only: a byte every 0.3 s outlasted a 1 s read timeout for as long as it went on."""
    server = RawServer(lambda conn: drip(conn, where=where))
    started = time.monotonic()
    try:
        with pytest.raises(DeadlineExceededError, match="deadline") as info:
            TRANSPORTS[transport](server.url, connect_timeout=1.0, read_timeout=1.0)()
    finally:
        server.stop()
    elapsed = time.monotonic() - started
    assert elapsed < 4.0, f"the call took {elapsed:.1f} s; its deadline was 2 s"
    assert "2 s" in str(info.value)


@pytest.fixture
def slow_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[ComputeEngineEmulator]:
    """Operations take 20 s; ``google_cloud_default`` points at the emulator."""
    with ComputeEngineEmulator(default_project=PROJECT, operation_seconds=20, seed=3) as emu:
        emu.add_instance(SOURCE)
        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", connection_json(emu.url))
        yield emu


def test_wait_for_operation_fails_near_its_timeout(slow_emulator: ComputeEngineEmulator) -> None:
    """timeout=3 on a 20 s operation ran one 20 s long-poll and succeeded."""
    hook = ComputeEngineMachineImageHook()
    operation = hook.insert_machine_image(
        body={"name": "img-a"},
        source_instance=f"projects/{PROJECT}/zones/us-central1-a/instances/web-1",
        request_id="6f1c1f56-5f0e-4c1b-9a57-3c2b8f6f0a11",
    )
    started = time.monotonic()
    with pytest.raises(OperationTimeoutError, match="not DONE after 3 s"):
        hook.wait_for_operation(operation_name=operation["name"], timeout=3)
    elapsed = time.monotonic() - started
    assert 2.9 <= elapsed < 4.5, f"{elapsed:.1f} s"


@pytest.mark.usefixtures("airflow_db")
def test_the_insert_task_fails_near_its_timeout(
    slow_emulator: ComputeEngineEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures = tmp_path / "failures.jsonl"
    monkeypatch.setenv("AMI_TEST_FAILURES", str(failures))
    now = datetime.now(timezone.utc)
    dag_run = load_dag("ami_test_insert_short_timeout").test(logical_date=now, run_after=now)
    assert task_states(dag_run) == {"create": "failed"}
    (failure,) = [json.loads(line) for line in failures.read_text().splitlines()]
    assert failure["type"] == "OperationTimeoutError", failure
    (insert,) = [r for r in slow_emulator.requests if r.action == "machineImages.insert"]
    waited = failure["at"] - insert.finished
    assert 2.9 <= waited < 5.0, f"the task failed {waited:.1f} s after the insert; its timeout was 3 s"
