"""The parser against a misbehaving endpoint: answers nested too deep, and list walks that grow too large.

Issue 23: an answer nested 200,000 levels deep raised a bare ``RecursionError`` (in the triggerer it
failed every waiter of the poller), and one list walk could keep up to 1,000 pages of 32 MiB. A raw
socket server plays the endpoint; both hooks and the operation trigger are driven over real HTTP,
nothing of the package's HTTP layer patched.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import TYPE_CHECKING, Any

import pytest

from airflow_machine_images.api.paging import MAX_WALK_BYTES
from airflow_machine_images.api.responses import MAX_ANSWER_DEPTH
from airflow_machine_images.api.retry import RetryPolicy
from airflow_machine_images.exceptions import MalformedResponseError, ResponseLimitError
from airflow_machine_images.hooks import ComputeEngineMachineImageAsyncHook, ComputeEngineMachineImageHook
from airflow_machine_images.triggers import MachineImageOperationTrigger, MachineImageStatusTrigger
from tests.integration.conftest import PROJECT, connection_json
from tests.integration.test_limits import MiB, RawServer
from tests.reliability.harness import ClientSettings, client_settings

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable

pytestmark = pytest.mark.integration

ONE_ATTEMPT = RetryPolicy(max_attempts=1)


def answer(conn: socket.socket, body: bytes, status: str = "200 OK") -> None:
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close"
    conn.sendall(head.encode() + b"\r\n\r\n" + body)


def nested(depth: int) -> bytes:
    """An Operation whose ``error`` nests ``depth`` levels of objects and lists."""
    inner = b'{"a": [' * (depth // 2) + b"1" + b"]}" * (depth // 2)
    return b'{"name": "operation-1", "status": "DONE", "error": ' + inner + b"}"


@pytest.mark.parametrize("depth", [200_000, 5_000, MAX_ANSWER_DEPTH + 2])
@pytest.mark.parametrize("status", ["200 OK", "400 Bad Request"])
def test_an_answer_nested_too_deep_is_malformed_for_both_hooks(depth: int, status: str) -> None:
    """A 200,000-level answer raised a bare RecursionError from json.loads."""
    server = RawServer(lambda conn: answer(conn, nested(depth), status))
    try:
        sync_hook = ComputeEngineMachineImageHook(api_endpoint=server.url, retry_policy=ONE_ATTEMPT)
        async_hook = ComputeEngineMachineImageAsyncHook(api_endpoint=server.url, retry_policy=ONE_ATTEMPT)
        calls: dict[str, Callable[[], Any]] = {
            "requests": lambda: sync_hook.get_operation(operation_name="operation-1", project_id=PROJECT),
            "aiohttp": lambda: asyncio.run(async_hook.get_operation(operation_name="operation-1", project_id=PROJECT)),
        }
        for transport, call in calls.items():
            if status.startswith("200"):
                with pytest.raises(MalformedResponseError, match=f"nested deeper than {MAX_ANSWER_DEPTH}"):
                    call()
            else:  # an error body nested too deep is read as text: the HTTP error, never a RecursionError
                with pytest.raises(Exception, match="HTTP 400") as info:
                    call()
                assert not isinstance(info.value, RecursionError), transport
                assert info.value.errors == []  # type: ignore[attr-defined]  # nothing of it kept
    finally:
        server.stop()


def test_an_answer_just_within_the_depth_is_read() -> None:
    server = RawServer(lambda conn: answer(conn, nested(MAX_ANSWER_DEPTH - 2)))
    try:
        hook = ComputeEngineMachineImageHook(api_endpoint=server.url, retry_policy=ONE_ATTEMPT)
        assert hook.get_operation(operation_name="operation-1", project_id=PROJECT)["status"] == "DONE"
    finally:
        server.stop()


async def first_events(triggers: list[Any]) -> list[dict[str, Any]]:
    async def first(trigger: Any) -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("no event")

    return list(await asyncio.gather(*(first(trigger) for trigger in triggers)))


def test_waiters_sharing_a_poller_get_an_error_event_for_a_deep_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """In the triggerer the RecursionError escaped the poller and failed every waiter without a reason."""
    server = RawServer(lambda conn: answer(conn, nested(200_000)))
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", connection_json(server.url))
    with client_settings(ClientSettings()):  # short backoffs: the garbled answer is retried, as any
        events = run_three_waiters(server)
    assert [e["status"] for e in events] == ["error"] * 3
    assert all("nested deeper than" in e["message"] for e in events), events


def run_three_waiters(server: RawServer) -> list[dict[str, Any]]:
    try:
        triggers = [
            MachineImageOperationTrigger(operation_name=f"operation-{n}", project_id=PROJECT, poll_interval=0.05)
            for n in range(3)
        ]
        return asyncio.run(first_events(triggers))
    finally:
        server.stop()


def endless_pages(page_bytes: int) -> tuple[Callable[[socket.socket], None], list[int]]:
    """A ``machineImages.list`` that never ends: every page ``page_bytes`` long, with a new token each time;
    and the list of pages served."""
    served: list[int] = []

    def serve(conn: socket.socket) -> None:
        served.append(len(served) + 1)
        page = {"items": [{"name": f"img-{len(served)}", "status": "READY"}], "nextPageToken": f"t{len(served)}"}
        text = json.dumps(page)[:-1] + ', "pad": "'
        answer(conn, (text + "a" * (page_bytes - len(text) - 2) + '"}').encode())

    return serve, served


@pytest.mark.parametrize("transport", ["requests", "aiohttp"])
def test_one_list_walk_is_bounded_by_its_bytes(transport: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of 30 MiB (each within the answer limit) were followed up to 1,000 times: 30 GB in one walk."""
    serve, served = endless_pages(30 * MiB)
    server = RawServer(serve)
    try:
        if transport == "requests":
            hook = ComputeEngineMachineImageHook(api_endpoint=server.url, retry_policy=ONE_ATTEMPT)
            with pytest.raises(ResponseLimitError) as info:
                hook.list_machine_images(project_id=PROJECT)
            message = str(info.value)
        else:  # the triggerer's walk: the image poller lists, and its waiter gets an error event
            monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", connection_json(server.url))
            trigger = MachineImageStatusTrigger(machine_image="img-x", project_id=PROJECT, poll_interval=0.05)
            (event,) = asyncio.run(first_events([trigger]))
            assert event["status"] == "error"
            message = event["message"]
    finally:
        server.stop()
    assert re.search(r"more than 256 MiB of answers in \d+ pages", message), message
    assert "MAX_WALK_BYTES" in message
    assert len(served) == MAX_WALK_BYTES // (30 * MiB) + 1  # stopped at the cap, not at 1,000 pages
