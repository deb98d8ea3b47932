"""Where requests go: no redirects followed, proxies as ``requests`` decides them, keys only over https or loopback.

Each test stands up plain sockets or ``http.server`` listeners on this machine and drives both hooks
(``requests`` and ``aiohttp``) through their public methods; nothing of the package's HTTP layer is
patched. Every attack is a request that reaches, or would reach, a listener it must not reach.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest

from airflow_machine_images.api.retry import RetryPolicy
from airflow_machine_images.exceptions import (
    ComputeEngineApiError,
    EndpointUnreachableError,
    InsecureEndpointError,
    RedirectNotFollowedError,
    TransientApiError,
)
from airflow_machine_images.hooks import ComputeEngineMachineImageAsyncHook, ComputeEngineMachineImageHook
from tests.integration.conftest import PROJECT, connection_json

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_machine_images.emulator import ComputeEngineEmulator

pytestmark = pytest.mark.integration

RAW_KEY = base64.b64encode(b"TRANSPORT-CANARY-KEY-0123456789!").decode()
TOKEN = "ya29.TRANSPORT-CANARY-TOKEN-0123456789abcdefghijklmnop"
REQUEST_ID = "6f1c1f56-5f0e-4c1b-9a57-3c2b8f6f0a11"
SOURCE_URL = f"projects/{PROJECT}/zones/us-central1-a/instances/web-1"
BODY = {"name": "img-a", "machineImageEncryptionKey": {"rawKey": RAW_KEY}}
ONE_ATTEMPT = RetryPolicy(max_attempts=1)
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy")


class Recorder:
    """An HTTP server that records every request and answers with ``answer(path)``: (status, headers, body)."""

    def __init__(self, answer: Callable[[str], tuple[int, dict[str, str], bytes]], host: str = "127.0.0.1") -> None:
        self.requests: list[dict[str, Any]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorder.requests.append(
                    {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
                )
                status, headers, payload = answer(self.path)
                self.send_response(status)
                for name, value in {"Content-Length": str(len(payload)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _any

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class RawListener:
    """A TCP listener that records the first bytes of each connection and answers ``reply``."""

    def __init__(
        self, reply: bytes = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.heads: list[str] = []
        self._reply = reply
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    self.heads.append(conn.recv(65536).decode("latin-1"))
                    conn.sendall(self._reply)
                except OSError:
                    pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def token_credentials() -> Any:
    from google.oauth2.credentials import Credentials

    return Credentials(token=TOKEN)


@pytest.fixture
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def allowed_test_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The made-up hosts these tests call are listed, as an administrator would list a private endpoint."""
    allowed = "https://compute.proxied.example, https://compute.bypassed.example, loopback"
    monkeypatch.setenv("AIRFLOW__MACHINE_IMAGES__ALLOWED_ENDPOINTS", allowed)


def sync_insert(endpoint: str) -> Callable[[], object]:
    hook = ComputeEngineMachineImageHook(api_endpoint=endpoint, retry_policy=ONE_ATTEMPT)
    return lambda: hook.insert_machine_image(
        body=BODY, source_instance=SOURCE_URL, request_id=REQUEST_ID, project_id=PROJECT
    )


def async_insert(endpoint: str) -> Callable[[], object]:
    hook = ComputeEngineMachineImageAsyncHook(api_endpoint=endpoint, retry_policy=ONE_ATTEMPT)
    call = hook.execute_call(
        lambda api: api.insert_machine_image(PROJECT, BODY, source_instance=SOURCE_URL, request_id=REQUEST_ID)
    )
    return lambda: asyncio.run(call)


TRANSPORTS = {"requests": sync_insert, "aiohttp": async_insert}


def redirecting(target: Recorder, status: int) -> Recorder:
    """An endpoint that answers every request with ``status`` and a Location on ``target``."""
    return Recorder(lambda path: (status, {"Location": f"{target.url}{path}"}, b""))


def ok_operation(path: str) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, b'{"name": "op", "status": "DONE"}'


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_not_followed(transport: str, status: int, no_proxy_environment: None) -> None:
    """A 307/308 made both clients send the JSON body, key included, to the Location (even over http)."""
    target = Recorder(ok_operation)
    endpoint = redirecting(target, status)
    try:
        with pytest.raises(RedirectNotFollowedError) as info:
            TRANSPORTS[transport](endpoint.url)()
    finally:
        endpoint.stop()
        target.stop()
    assert target.requests == [], "the request (and its key) went to the redirect's target"
    assert len(endpoint.requests) == 1  # not retried
    assert f"HTTP {status}" in str(info.value) and "127.0.0.1" in str(info.value)
    assert RAW_KEY not in str(info.value)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_redirect_to_an_unreachable_host_is_not_retried_as_transient(
    transport: str, no_proxy_environment: None
) -> None:
    endpoint = Recorder(lambda path: (308, {"Location": "http://unreachable.invalid/elsewhere"}, b""))
    try:
        with pytest.raises(ComputeEngineApiError) as info:
            TRANSPORTS[transport](endpoint.url)()
    finally:
        endpoint.stop()
    assert not isinstance(info.value, TransientApiError)
    assert "unreachable.invalid" in str(info.value) and "HTTP 308" in str(info.value)
    assert len(endpoint.requests) == 1


# ----------------------------------------------------------------------------------------------- proxies


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_no_proxy_for_a_plain_http_loopback_endpoint(
    gcp_connection: ComputeEngineEmulator,
    monkeypatch: pytest.MonkeyPatch,
    transport: str,
    no_proxy_environment: None,
) -> None:
    """``HTTP_PROXY`` in the worker's environment got the emulator's (or a tunnel's) requests, token included."""
    proxy = RawListener()
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("http_proxy", proxy.url)
    monkeypatch.setenv("ALL_PROXY", proxy.url)
    monkeypatch.setattr(ComputeEngineMachineImageHook, "get_credentials", lambda self: token_credentials())
    try:
        if transport == "requests":
            images = ComputeEngineMachineImageHook(retry_policy=ONE_ATTEMPT).list_machine_images(project_id=PROJECT)
        else:
            hook = ComputeEngineMachineImageAsyncHook(retry_policy=ONE_ATTEMPT)
            images = asyncio.run(hook.list_machine_images_page(project_id=PROJECT)).get("items", [])
    finally:
        proxy.stop()
    assert images == []
    assert proxy.heads == [], "the request went to the proxy"
    (request,) = gcp_connection.requests
    assert request.has_authorization  # the token went straight to the loopback endpoint


def https_call(transport: str, endpoint: str) -> Callable[[], object]:
    if transport == "requests":
        hook = ComputeEngineMachineImageHook(api_endpoint=endpoint, retry_policy=ONE_ATTEMPT)
        return lambda: hook.get_machine_image(name="img-a", project_id=PROJECT)
    async_hook = ComputeEngineMachineImageAsyncHook(api_endpoint=endpoint, retry_policy=ONE_ATTEMPT)
    return lambda: asyncio.run(async_hook.wait_operation(operation_name="operation-1", project_id=PROJECT))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_https_goes_through_the_https_proxy_of_the_environment(
    monkeypatch: pytest.MonkeyPatch, transport: str, no_proxy_environment: None
) -> None:
    """The aiohttp path ignored ``HTTPS_PROXY``: deferrable waits could not reach Google behind a proxy."""
    proxy = RawListener()
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    try:
        with pytest.raises(TransientApiError):  # the proxy refuses the tunnel (403)
            https_call(transport, "https://compute.proxied.example")()
    finally:
        proxy.stop()
    assert len(proxy.heads) == 1
    assert proxy.heads[0].startswith("CONNECT compute.proxied.example:443 ")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_no_proxy_excludes_hosts_as_requests_does(
    monkeypatch: pytest.MonkeyPatch, transport: str, no_proxy_environment: None
) -> None:
    proxy = RawListener()
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "example.com,.bypassed.example")
    try:
        with pytest.raises(EndpointUnreachableError):  # straight to the host, whose name does not resolve
            https_call(transport, "https://compute.bypassed.example")()
    finally:
        proxy.stop()
    assert proxy.heads == []


# ---------------------------------------------------------------------------------- key material over http


def non_loopback_address() -> str:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.254", 9))
        return str(probe.getsockname()[0])
    finally:
        probe.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_key_material_is_refused_over_plain_http_even_without_credentials(
    monkeypatch: pytest.MonkeyPatch, transport: str, no_proxy_environment: None
) -> None:
    """With ``is_anonymous`` a body carrying a key went over http to any host."""
    server = Recorder(ok_operation, host="0.0.0.0")
    endpoint = f"http://{non_loopback_address()}:{server.url.rsplit(':', 1)[1]}"
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", connection_json(endpoint))  # anonymous
    monkeypatch.setenv("AIRFLOW__MACHINE_IMAGES__ALLOWED_ENDPOINTS", endpoint)  # listed: the rule below is another
    try:
        with pytest.raises(InsecureEndpointError, match="key material") as info:
            TRANSPORTS[transport](endpoint)()
        assert server.requests == []
        assert "https" in str(info.value) and "loopback" in str(info.value)
        # The same endpoint answers a call without key material: the refusal was the rule, not the network.
        hook = ComputeEngineMachineImageHook(api_endpoint=endpoint, retry_policy=ONE_ATTEMPT)
        assert hook.get_operation(operation_name="op", project_id=PROJECT)["status"] == "DONE"
        assert len(server.requests) == 1 and json.dumps(server.requests[0]["headers"]).find(RAW_KEY) < 0
    finally:
        server.stop()
