"""Garbage from the server: the hooks, the trigger and the operator fail clearly, never crash.

A tiny raw HTTP server answers like the Compute API, except that one call answers with garbage:
text that is not JSON, an HTML error page, truncated JSON, JSON of the wrong shape, missing or
wrong-typed fields, bytes that are not UTF-8, a body shorter than its Content-Length, a huge
page. Every outcome must be either a correct result or one of the package's errors, whose message
names the call; never a ``KeyError``/``TypeError``/``ValueError``/``AttributeError`` or a trigger
that dies instead of yielding an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_machine_images.api.retry import RetryPolicy
from airflow_machine_images.exceptions import ComputeEngineError
from airflow_machine_images.hooks import ComputeEngineMachineImageAsyncHook, ComputeEngineMachineImageHook
from airflow_machine_images.operators import ComputeEngineInsertMachineImageOperator
from airflow_machine_images.triggers import MachineImageOperationTrigger, polling
from tests.reliability.conftest import connection_json
from tests.reliability.harness import ClientSettings, TaskSpec, Triggerer, client_settings, run_task_instance

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.reliability

PROJECT = "garbage-project"
SOURCE_URL = f"https://www.googleapis.com/compute/beta/projects/{PROJECT}/zones/us-central1-a/instances/web-1"
IMAGE_URL = f"https://www.googleapis.com/compute/beta/projects/{PROJECT}/global/machineImages/"
OPERATION = "operation-1700000000000-0000000000001-00000001-00000001"


@dataclass(frozen=True)
class Garbage:
    status: int
    body: bytes
    content_type: str = "application/json; charset=UTF-8"
    content_length: int | None = None  # a lie, when set


GARBAGE: dict[str, Garbage] = {
    "text that is not JSON": Garbage(200, b"hello, I am not JSON", "text/plain"),
    "an HTML error page (502)": Garbage(
        502, b"<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>", "text/html"
    ),
    "an HTML login page (200)": Garbage(
        200, b"<!DOCTYPE html><html><body><form>Sign in</form></body></html>", "text/html"
    ),
    "an HTML page (404)": Garbage(404, b"<html><body>Not Found</body></html>", "text/html"),
    "truncated JSON": Garbage(200, b'{"name": "operation-1", "stat'),
    "a JSON array": Garbage(200, b"[1, 2, 3]"),
    "a JSON string": Garbage(200, b'"DONE"'),
    "JSON null": Garbage(200, b"null"),
    "an empty body": Garbage(200, b""),
    "missing fields": Garbage(200, b'{"kind": "compute#operation"}'),
    "wrong types": Garbage(200, b'{"name": 5, "status": ["DONE"], "progress": "lots"}'),
    "an error that is a string": Garbage(
        200, json.dumps({"name": OPERATION, "status": "DONE", "error": "boom"}).encode()
    ),
    "error entries of the wrong shape": Garbage(
        200,
        json.dumps(
            {"name": OPERATION, "status": "DONE", "error": {"errors": "x"}, "httpErrorStatusCode": "four hundred"}
        ).encode(),
    ),
    "an image with wrong-typed fields": Garbage(
        200,
        json.dumps(
            {
                "name": "img-g",
                "status": "READY",
                "sourceInstance": SOURCE_URL,
                "selfLink": 7,
                "labels": "team=web",
                "storageLocations": 5,
                "totalStorageBytes": {"a": 1},
                "id": [1],
            }
        ).encode(),
    ),
    "list items that are not objects": Garbage(200, b'{"items": [1, "two", null]}'),
    "list items without names": Garbage(200, b'{"items": [{"status": "DONE"}, {"name": 3}]}'),
    "list items that are not a list": Garbage(200, b'{"items": {"name": "x"}}'),
    "an error body that is not Google's (500)": Garbage(500, b'{"error": "string"}'),
    "an error body of the wrong shape (400)": Garbage(400, b'{"error": {"errors": "x", "code": "400", "message": 7}}'),
    "bytes that are not UTF-8": Garbage(200, b"\xff\xfe\x00\x9f garbage \xc3\x28"),
    "a body shorter than its Content-Length": Garbage(200, b'{"name": "oper', content_length=400),
    "a huge page": Garbage(200, b"<html>" + b"garbage " * 250_000 + b"</html>", "text/html"),
}
#: Which call answers with garbage, and which operator paths reach that call.
STAGES = ("insert", "wait", "get_operation", "get_image", "list_operations")


class ComputeLikeServer:
    """Answers the calls the package makes like the Compute API would, except one (``garbage_for``)."""

    def __init__(self) -> None:
        self.garbage_for: str | None = None
        self.garbage: Garbage | None = None
        self.calls: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                stage, payload = server.answer(self.command, self.path)
                server.calls.append(stage)
                garbage = server.garbage if stage == server.garbage_for else None
                if garbage is None:
                    self._send(200, json.dumps(payload).encode(), "application/json")
                else:
                    self._send(garbage.status, garbage.body, garbage.content_type, garbage.content_length)

            def _send(self, status: int, body: bytes, content_type: str, length: int | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                if length is not None:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(body)

            do_GET = do_POST = do_DELETE = _any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def answer(self, method: str, target: str) -> tuple[str, Any]:
        path, query = urlsplit(target).path, parse_qs(urlsplit(target).query)
        done = {"name": OPERATION, "status": "DONE", "progress": 100, "targetLink": IMAGE_URL + "img-g"}
        if method == "POST" and path.endswith("/global/machineImages"):
            return "insert", {**done, "status": "PENDING", "progress": 0}
        if method == "POST" and path.endswith("/wait"):
            return "wait", done
        if method == "GET" and "/global/operations/" in path:
            return "get_operation", done
        if method == "GET" and path.endswith("/global/operations"):
            wanted = set(re.findall(r'name = "([^"]+)"', query.get("filter", [""])[0]))
            return "list_operations", {"items": [{**done, "name": n} for n in sorted(wanted)]}
        if method == "GET" and "/global/machineImages/" in path:
            name = path.rsplit("/", 1)[-1]
            image = {"name": name, "status": "READY", "sourceInstance": SOURCE_URL, "selfLink": IMAGE_URL + name}
            return "get_image", {**image, "id": "123", "totalStorageBytes": "1024", "labels": {"a": "b"}}
        return "other", {"error": {"code": 404, "message": "nope"}}

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[ComputeLikeServer]:
    """The server, a connection to it, and hooks that give up after one retry (garbage stays garbage)."""
    garbage_server = ComputeLikeServer()
    quick = ClientSettings(
        read_timeout=2.0,
        retry_policy=RetryPolicy(max_attempts=2, initial_backoff=0.01, max_backoff=0.01, max_retry_after=0),
    )
    with pytest.MonkeyPatch.context() as patch, client_settings(quick):
        patch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", connection_json(garbage_server.url, PROJECT))
        yield garbage_server
    garbage_server.stop()


@pytest.fixture
def serve(server: ComputeLikeServer) -> Iterator[ComputeLikeServer]:
    yield server
    server.garbage_for, server.garbage = None, None
    server.calls.clear()


def clear_error(error: BaseException) -> str:
    """The message of one of the package's errors; anything else is a crash."""
    assert isinstance(error, ComputeEngineError), f"crash: {type(error).__name__}: {error}"
    message = str(error)
    assert message and len(message) < 2000, message[:300]
    return message


# --------------------------------------------------------------------------------------------------


def test_the_server_answers_well_without_garbage(serve: ComputeLikeServer) -> None:
    for deferrable in (False, True):
        outcome = run(serve, deferrable=deferrable)
        assert outcome.succeeded, outcome.final_error
        assert outcome.result is not None and outcome.result["status"] == "READY"


@pytest.mark.parametrize("kind", GARBAGE)
def test_sync_hook(serve: ComputeLikeServer, kind: str) -> None:
    hook = ComputeEngineMachineImageHook()
    calls = {
        "insert": lambda: hook.insert_machine_image(
            body={"name": "img-g"}, source_instance=SOURCE_URL, request_id="6f1c1f56-5f0e-4c1b-9a57-3c2b8f6f0a11"
        ),
        "wait": lambda: hook.wait_for_operation(operation_name=OPERATION, timeout=5, max_early_backoff=0.1),
        "get_operation": lambda: hook.get_operation(operation_name=OPERATION),
        "get_image": lambda: hook.get_machine_image(name="img-g"),
        "list_operations": lambda: hook.list_machine_images(),
    }
    for stage, call in calls.items():
        serve.garbage_for, serve.garbage = ("list_images" if stage == "list_operations" else stage), GARBAGE[kind]
        try:
            result = call()
        except Exception as error:
            assert re.search(r"machineImages\.\w+|globalOperations\.\w+|Operation ", clear_error(error))
        else:
            assert isinstance(result, (dict, list))


@pytest.mark.parametrize("kind", GARBAGE)
def test_async_hook(serve: ComputeLikeServer, kind: str) -> None:
    """The calls the triggers' pollers make (the async hook has no others); parsing is the sync hook's."""
    hook = ComputeEngineMachineImageAsyncHook()

    async def scenario() -> None:
        calls = {
            "wait": hook.wait_operation(operation_name=OPERATION),
            "list_operations": hook.list_operations_page(filter_=f'(name = "{OPERATION}")'),
        }
        for stage, call in calls.items():
            serve.garbage_for, serve.garbage = stage, GARBAGE[kind]
            try:
                result = await call
            except Exception as error:
                assert re.search(r"machineImages\.\w+|globalOperations\.\w+|Operation ", clear_error(error))
            else:
                assert isinstance(result, (dict, list))

    asyncio.run(scenario())


@pytest.mark.parametrize("kind", GARBAGE)
def test_trigger_yields_an_error_event_never_dies(
    serve: ComputeLikeServer, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two waiters, so the coalescing poller lists operations; then a lone waiter, which long-polls."""
    monkeypatch.setattr(polling.coalescing, "MAX_LONG_POLLS", 1)  # two waiters are coalesced into list calls

    async def first_event(trigger: MachineImageOperationTrigger) -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("no event")

    async def waits(names: list[str]) -> list[dict[str, Any]]:
        triggers = [
            MachineImageOperationTrigger(operation_name=n, project_id=PROJECT, poll_interval=0.05) for n in names
        ]
        return list(await asyncio.wait_for(asyncio.gather(*(first_event(t) for t in triggers)), 60))

    for stage, names in (("list_operations", [OPERATION, OPERATION[:-1] + "2"]), ("wait", [OPERATION])):
        serve.garbage_for, serve.garbage = stage, GARBAGE[kind]
        serve.calls.clear()
        for event in asyncio.run(waits(names)):
            assert event["status"] in ("success", "error")
            if event["status"] == "error":
                assert event["message"] and len(event["message"]) < 2000
        assert stage in serve.calls  # the garbage was served to the path under test


def run(server: ComputeLikeServer, *, deferrable: bool) -> Any:
    triggerer = Triggerer()
    try:
        return run_task_instance(
            TaskSpec("garbage", "create", "manual__1", -1, "img-g", "us-central1-a/web-1", deferrable),
            lambda spec: ComputeEngineInsertMachineImageOperator(
                task_id=spec.task_id,
                name=spec.name,
                source_instance=spec.source_instance,
                deferrable=spec.deferrable,
                poll_interval=0.05,
                timeout=10,
            ),
            triggerer,
            retries=0,
        )
    finally:
        triggerer.close()


@pytest.mark.parametrize("kind", GARBAGE)
@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_operator(serve: ComputeLikeServer, kind: str, deferrable: bool) -> None:
    for stage in ("insert", "wait", "get_image"):
        serve.garbage_for, serve.garbage = stage, GARBAGE[kind]
        outcome = run(serve, deferrable=deferrable)
        if outcome.succeeded:
            result = outcome.result
            json.dumps(result)
            assert result["status"] == "READY" and result["name"] == "img-g"
            continue
        (failed,) = outcome.tries
        assert failed.error_type not in {
            "KeyError",
            "TypeError",
            "ValueError",
            "AttributeError",
            "TaskDeferralError",
        }, (
            stage,
            failed.error_type,
            failed.error,
        )
        assert failed.error and len(failed.error) < 2000
        assert re.search(r"machineImages\.\w+|globalOperations\.\w+|[Oo]peration |[Mm]achine image", failed.error)
