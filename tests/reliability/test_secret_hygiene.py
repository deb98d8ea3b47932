"""Secret hygiene: keys and tokens never leak; credentials never cross plain http; no path injection.

Canary keys (valid base64 of 32 bytes, and an RSA-wrapped key) are planted literally in a DAG
file and through a template (``{{ conn.csek.password }}``, the connection given by
``AIRFLOW_CONN_CSEK``), and the hook's credentials carry a canary access token. The insert operator
runs through real Airflow (``dag.test()``: the task runner renders templates, stores the rendered
fields, pushes XCom, defers and resumes), blocking and deferrable, and against a server that echoes
every request back in its error message (the failing variant). Then every output is scanned:
captured stdout/stderr, task log files under ``AIRFLOW_HOME/logs``, the XCom table, the
rendered-fields table, the trigger table's kwargs, and the failing task's exception (message,
repr and full traceback).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import re
import socket
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_machine_images.api.redaction import iter_key_material
from airflow_machine_images.emulator import Fault
from airflow_machine_images.exceptions import InsecureEndpointError, InvalidRequestError, ResourceNotFoundError
from airflow_machine_images.hooks import ComputeEngineMachineImageAsyncHook, ComputeEngineMachineImageHook
from airflow_machine_images.hooks.transport_security import check_transport_security
from airflow_machine_images.operators import ComputeEngineInsertMachineImageOperator
from airflow_machine_images.sensors import ComputeEngineMachineImageOperationSensor, ComputeEngineMachineImageSensor
from airflow_machine_images.triggers import MachineImageOperationTrigger, MachineImageStatusTrigger
from airflow_machine_images.validation import MachineImageValidationError
from tests import strategies
from tests.reliability.conftest import PROJECT, RELIABILITY_DAGS, SOURCE, connection_json, load_dag
from tests.reliability.harness import FakeTaskInstance, context_of

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_machine_images.emulator import ComputeEngineEmulator

pytestmark = pytest.mark.reliability

RAW_KEY = strategies.CANARY_RAW_KEY  # literal in the DAG file
RSA_KEY = strategies.CANARY_RSA_KEY  # literal in the DAG file
TEMPLATED_KEY = base64.b64encode(b"TEMPLATED-CANARY-KEY-0123456789!").decode()  # from the csek connection
TEXT_KEY = strategies.CANARY_SLASH_KEY  # a Variable holding JSON text (with '+' and '/')
TEXT_DISK_KEY = base64.b64encode(b"TEXT-DISK-CANARY-KEY-0123456789!").decode()  # a JSON Variable, as a dict's repr
TOKEN = "ya29.CANARY-ACCESS-TOKEN-0123456789abcdefghijklmnopqrstuvwxyz"
CANARIES = {
    "raw key": RAW_KEY,
    "RSA-wrapped key": RSA_KEY,
    "templated key": TEMPLATED_KEY,
    "key in JSON text": TEXT_KEY,
    "key in a JSON Variable": TEXT_DISK_KEY,
    "token": TOKEN,
}
#: The keys the blocking and deferrable canary DAGs send.
SENT_KEYS = {"raw key": RAW_KEY, "RSA-wrapped key": RSA_KEY, "templated key": TEMPLATED_KEY}
# Written literally in the reliability_canary_literal DAG (base64 of these 32 bytes).
LITERAL_CANARIES = {
    "literal machine_image_encryption_key": base64.b64encode(b"LITERAL-KEY-IN-THE-DAG-FILE-0001").decode(),
    "literal key in body": base64.b64encode(b"LITERAL-BODY-KEY-IN-DAG-FILE-002").decode(),
}


def leaks(text: str, canaries: dict[str, str] = CANARIES) -> list[str]:
    """Which canaries ``text`` contains: as sent, base64-decoded into ``text``'s bytes, or in any encoding
    a JSON or URL layer produces (``\\/`` and ``\\u003d`` escapes, URL-safe, unpadded, percent-encoded)."""
    found = []
    for what, canary in canaries.items():
        forms = {canary, json.dumps(canary)[1:-1], canary.replace("/", "\\/")}
        if what != "token":
            forms.add(base64.b64decode(canary).decode("latin-1"))
        if any(form in text for form in forms) or strategies.leaked(text, canary):
            found.append(what)
    return found


def quoted_in_every_encoding(keys: dict[str, str]) -> str:
    """What a server quoting the keys back might write: each key in every encoding (spaces for '+' aside)."""
    return " ".join(
        form
        for key in keys.values()
        for name, form in strategies.secret_encodings(key).items()
        if not name.startswith("form-decoded")
    )


def gson_json(payload: Any) -> bytes:
    """JSON as Gson writes it by default: '=' (and <, >, &, ') escaped as \\u00XX."""
    text = json.dumps(payload)
    for char in "=<>&'":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text.encode()


def token_credentials() -> Any:
    """Credentials that add ``Authorization: Bearer <TOKEN>`` to every request."""
    from google.oauth2.credentials import Credentials

    return Credentials(token=TOKEN)


@pytest.fixture
def canary_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(base64.b64decode(RAW_KEY)) == 32 and len(base64.b64decode(TEMPLATED_KEY)) == 32
    monkeypatch.setenv("RELIABILITY_CANARY_RAW_KEY", RAW_KEY)
    monkeypatch.setenv("RELIABILITY_CANARY_RSA_KEY", RSA_KEY)
    monkeypatch.setenv("AIRFLOW_CONN_CSEK", json.dumps({"conn_type": "generic", "password": TEMPLATED_KEY}))
    # JSON text as an escaping encoder writes it ('/' as '\\/'), and a JSON Variable for var.json.
    monkeypatch.setenv("AIRFLOW_VAR_CSEK_JSON", json.dumps({"rawKey": TEXT_KEY}).replace("/", "\\/"))
    disks = [{"sourceDisk": "zones/us-central1-a/disks/web-1", "diskEncryptionKey": {"rawKey": TEXT_DISK_KEY}}]
    monkeypatch.setenv("AIRFLOW_VAR_CSEK_DISKS", json.dumps(disks))
    monkeypatch.setattr(ComputeEngineMachineImageHook, "get_credentials", lambda self: token_credentials())


class EchoServer:
    """Answers every request with HTTP 400 whose message quotes the whole request (the worst server).

    The request body and headers are quoted as received, and each key of the body once more in every
    encoding a JSON or URL layer gives it; the answer is written as Gson writes JSON ('=' as \\u003d).
    """

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _any(self) -> None:
                sent = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8", "replace")
                keys = {}
                with contextlib.suppress(ValueError):
                    keys = {str(n): key for n, key in enumerate(iter_key_material(json.loads(sent or "null")))}
                echo = (
                    f"Invalid value for field 'resource': {sent} (headers: {dict(self.headers)}, url: {self.path}); "
                    f"keys: {quoted_in_every_encoding(keys)}"
                )
                body = gson_json(
                    {"error": {"code": 400, "message": echo, "errors": [{"reason": "invalid", "message": echo}]}}
                )
                self.send_response(400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def run_dag(dag_id: str) -> Any:
    now = datetime.now(timezone.utc)
    return load_dag(dag_id).test(logical_date=now, run_after=now)


def table_texts(dag_runs: list[Any]) -> dict[str, list[str]]:
    """What the metadata DB holds for these runs: XCom values, rendered fields, trigger kwargs."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    run_ids = [r.run_id for r in dag_runs]
    with create_session() as session:
        xcoms = [str(v) for v in session.scalars(select(XComModel.value).where(XComModel.run_id.in_(run_ids)))]
        rendered = [
            json.dumps(row.rendered_fields)
            for row in session.scalars(
                select(RenderedTaskInstanceFields).where(RenderedTaskInstanceFields.run_id.in_(run_ids))
            )
        ]
        triggers = [
            row.encrypted_kwargs + json.dumps(row.kwargs, default=str) for row in session.scalars(select(Trigger))
        ]
        events = [
            json.dumps(kwargs, default=str)
            for kwargs in session.scalars(select(TaskInstance.next_kwargs).where(TaskInstance.run_id.in_(run_ids)))
        ]
    return {
        "xcom": xcoms,
        "rendered fields": rendered,
        "trigger kwargs": triggers,
        "trigger events (next_kwargs)": events,
    }


def emulator_log(emulator: ComputeEngineEmulator) -> list[str]:
    """The emulator's request log, in process and as ``GET /_emulator/requests`` serves it."""
    import requests

    served = requests.get(f"{emulator.url}/_emulator/requests", timeout=10)
    assert served.status_code == 200 and "machineImages.insert" in served.text
    return [json.dumps([r.to_json() for r in emulator.requests]), repr(emulator.requests), served.text]


def key_sha256(key: str) -> str:
    """The ``sha256`` the API shows for a customer-supplied key (base64 of the SHA-256 of its bytes)."""
    return base64.b64encode(hashlib.sha256(base64.b64decode(key)).digest()).decode()


def test_canary_keys_and_token_never_leak(
    reliability_db: None,
    canary_env: None,
    emulator: ComputeEngineEmulator,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failures = tmp_path / "failures.jsonl"
    monkeypatch.setenv("RELIABILITY_FAILURES", str(failures))
    # A failing deferrable run first: the insert operation fails on the server with an error that quotes
    # the keys in every encoding (and in httpErrorMessage); the triggerer, which never saw the keys,
    # yields, persists and logs that event, and the task fails with it.
    quoted = quoted_in_every_encoding(SENT_KEYS)
    emulator.inject(
        Fault(
            kind="operation_error",
            action="machineImages.insert",
            error_code="INVALID_CUSTOMER_KEY",
            error_message=f"Key rejected: {quoted}",
            http_error_message=f"BAD REQUEST {quoted}",
        )
    )
    runs = [run_dag("reliability_canary_deferrable")]
    assert str(runs[0].get_task_instances()[0].state) == "failed"
    recorded = [json.loads(line) for line in failures.read_text().splitlines()]
    assert "INVALID_CUSTOMER_KEY" in recorded[-1]["error"] and "***" in recorded[-1]["error"]

    runs += [
        run_dag("reliability_canary_blocking"),
        run_dag("reliability_canary_deferrable"),
        run_dag("reliability_canary_text"),
    ]
    assert [str(r.get_task_instances()[0].state) for r in runs[1:]] == ["success", "success", "success"]
    # The keys did reach the server, with the token: what we scan would have had them to leak.
    inserts = [r for r in emulator.requests if r.action == "machineImages.insert"]
    assert len(inserts) == 4 and all(r.has_authorization for r in inserts)
    images = {image["name"]: image for image in emulator.machine_images()}
    for name in ("canary-b", "canary-d"):
        assert images[name]["machineImageEncryptionKey"]["sha256"] == key_sha256(TEMPLATED_KEY)
        disk_keys = [k["diskEncryptionKey"]["sha256"] for k in images[name]["sourceDiskEncryptionKeys"]]
        assert disk_keys == [key_sha256(RAW_KEY), key_sha256(RSA_KEY)]
    assert images["canary-t"]["machineImageEncryptionKey"]["sha256"] == key_sha256(TEXT_KEY)
    disk_keys = [k["diskEncryptionKey"]["sha256"] for k in images["canary-t"]["sourceDiskEncryptionKeys"]]
    assert disk_keys == [key_sha256(TEXT_DISK_KEY)]

    # The failing variant: a server that quotes the whole request back in its error, in every encoding.
    echo = EchoServer()
    try:
        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", connection_json(echo.url))
        runs.append(run_dag("reliability_canary_blocking"))
    finally:
        echo.stop()
    assert str(runs[-1].get_task_instances()[0].state) == "failed"
    recorded = [json.loads(line) for line in failures.read_text().splitlines()]
    assert recorded and "HTTP 400" in recorded[-1]["error"]

    captured = capfd.readouterr()
    outputs: dict[str, list[str]] = {
        "stdout": [captured.out],
        "stderr": [captured.err],
        "task log files": [
            p.read_text(errors="replace") for p in Path(os.environ["AIRFLOW_HOME"], "logs").rglob("*") if p.is_file()
        ],
        "exception text": [json.dumps(entry) for entry in recorded],
        "the emulator's request log": emulator_log(emulator),
        **table_texts(runs),
    }
    # The scan must see the places it scans: the task's own log lines, its XCom, its rendered fields,
    # the trigger's kwargs and the failed operation's event.
    assert "Creating machine image canary-b" in captured.out + captured.err
    assert "Deferring until operation" in captured.out + captured.err
    assert "INVALID_CUSTOMER_KEY" in captured.out + captured.err
    assert any("canary-d" in text for text in outputs["xcom"])
    assert any("rawKey" in text for text in outputs["rendered fields"])
    assert any("canary-t" in text and "***" in text for text in outputs["rendered fields"])
    assert outputs["trigger kwargs"], "the deferrable run stored no trigger"
    found = {where: leaks("\n".join(texts)) for where, texts in outputs.items()}
    assert found == {where: [] for where in outputs}


def test_trigger_events_carry_no_key_the_server_quoted(emulator: ComputeEngineEmulator) -> None:
    """The triggerer never saw the keys: its events are redacted by the shape of key material."""
    quoted = quoted_in_every_encoding(SENT_KEYS)
    emulator.inject(
        Fault(
            kind="operation_error",
            action="machineImages.insert",
            error_code="INVALID_CUSTOMER_KEY",
            error_message=f"Key rejected: {quoted}",
            http_error_message=f"BAD REQUEST {quoted}",
        )
    )
    operation = ComputeEngineMachineImageHook().insert_machine_image(
        body={"name": "canary-e", "machineImageEncryptionKey": {"rawKey": RAW_KEY}},
        source_instance=f"projects/{PROJECT}/zones/us-central1-a/instances/web-1",
        request_id=REQUEST_ID,
    )
    trigger = MachineImageOperationTrigger(operation_name=operation["name"], project_id=PROJECT, poll_interval=0.1)
    event = asyncio.run(first_event(trigger))
    assert event["status"] == "error" and event["errors"][0]["code"] == "INVALID_CUSTOMER_KEY"
    assert "BAD REQUEST ***" in event["operation"]["httpErrorMessage"]
    from airflow.sdk.serde import serialize

    assert leaks(json.dumps(event) + json.dumps(serialize(event), default=str)) == []


def test_literal_keys_in_the_dag_file_are_masked(
    reliability_db: None, emulator: ComputeEngineEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    """Keys typed into the DAG (argument and ``body``): only the operator's masking can hide them."""
    dag_file = (RELIABILITY_DAGS / "reliability_dags.py").read_text()
    assert all(key in dag_file for key in LITERAL_CANARIES.values())
    capfd.readouterr()  # scan this run's output only
    dag_run = run_dag("reliability_canary_literal")
    assert str(dag_run.get_task_instances()[0].state) == "success"
    assert emulator.count("machineImages.insert") == 1
    (image,) = emulator.machine_images()  # the keys were sent: the image shows their sha256
    assert image["machineImageEncryptionKey"]["sha256"] == key_sha256(
        LITERAL_CANARIES["literal machine_image_encryption_key"]
    )
    sent = image["sourceDiskEncryptionKeys"][0]["diskEncryptionKey"]["sha256"]
    assert sent == key_sha256(LITERAL_CANARIES["literal key in body"])

    captured = capfd.readouterr()
    outputs: dict[str, list[str]] = {
        "task log (stdout)": [captured.out],
        "stderr": [captured.err],
        "task log files": [
            p.read_text(errors="replace") for p in Path(os.environ["AIRFLOW_HOME"], "logs").rglob("*") if p.is_file()
        ],
        "the emulator's request log": emulator_log(emulator),
        **table_texts([dag_run]),
    }
    # The scan sees what it scans: the task's log lines, its XCom, the key fields among its rendered fields.
    assert "Creating machine image canary-l" in captured.out
    assert any("canary-l" in text for text in outputs["xcom"])
    assert any("rawKey" in text and "sourceDiskEncryptionKeys" in text for text in outputs["rendered fields"])
    found = {where: leaks("\n".join(texts), LITERAL_CANARIES) for where, texts in outputs.items()}
    assert found == {where: [] for where in outputs}


def test_key_material_is_scrubbed_from_errors_of_an_echoing_server(
    canary_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run directly (no Airflow masker in between): the exception itself must not carry the keys."""
    echo = EchoServer()
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", connection_json(echo.url))
    try:
        operator = ComputeEngineInsertMachineImageOperator(
            task_id="create",
            name="canary-x",
            source_instance=SOURCE,
            machine_image_encryption_key={"rawKey": RAW_KEY},
            source_disk_encryption_keys=[
                {"sourceDisk": "zones/us-central1-a/disks/d", "diskEncryptionKey": {"rsaEncryptedKey": RSA_KEY}},
                {"sourceDisk": "zones/us-central1-a/disks/e", "diskEncryptionKey": {"rawKey": TEXT_KEY}},
            ],
        )
        ti = FakeTaskInstance("secrets", "create", "manual__1", -1, 1)
        with pytest.raises(Exception) as info:
            operator.execute(context_of(ti))
    finally:
        echo.stop()
    import traceback

    text = "".join(traceback.format_exception(info.value)) + repr(info.value) + repr(vars(info.value))
    assert "HTTP 400" in str(info.value)
    assert leaks(text) == []


# -------------------------------------------------------------------------------- transport security


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://compute.example.com",
        "http://192.0.2.2:8085",
        "http://10.0.0.1",
        "http://[::ffff:10.0.0.1]:8085",
        "http://localhost.attacker.example",
        "http://127.0.0.1.nip.io:8085",
        "http://0.0.0.0:8085",
    ],
)
def test_credentials_are_refused_over_plain_http_to_a_non_loopback_host(endpoint: str) -> None:
    with pytest.raises(InsecureEndpointError, match="plain http"):
        check_transport_security(endpoint, anonymous=False)
    check_transport_security(endpoint.replace("http://", "https://"), anonymous=False)
    check_transport_security(endpoint, anonymous=True)


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:8085", "http://localhost:1", "http://[::1]:8085"])
def test_credentials_may_go_over_http_to_loopback(endpoint: str) -> None:
    check_transport_security(endpoint, anonymous=False)


class Listener:
    """A TCP listener on every interface: counts connections, answers 404, records Authorization."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("0.0.0.0", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.authorization: list[bool] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            with conn:
                conn.settimeout(2)
                try:
                    head = conn.recv(65536).decode("latin-1")
                except OSError:
                    head = ""
                self.authorization.append("authorization:" in head.lower())
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def non_loopback_address() -> str:
    """This machine's address on a non-loopback interface (the route to a public address)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.254", 9))
        address = probe.getsockname()[0]
    finally:
        probe.close()
    assert not address.startswith("127."), "no non-loopback interface to test with"
    return address


def test_no_request_leaves_with_credentials_over_plain_http(monkeypatch: pytest.MonkeyPatch) -> None:
    listener = Listener()
    endpoint = f"http://{non_loopback_address()}:{listener.port}"
    monkeypatch.setenv("AIRFLOW__MACHINE_IMAGES__ALLOWED_ENDPOINTS", endpoint)  # listed: the http rule is tested here
    try:
        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", connection_json(endpoint, is_anonymous=False))
        monkeypatch.setattr(ComputeEngineMachineImageHook, "get_credentials", lambda self: token_credentials())
        with pytest.raises(InsecureEndpointError):
            ComputeEngineMachineImageHook().get_machine_image(name="img-a")
        with pytest.raises(InsecureEndpointError):
            asyncio.run(ComputeEngineMachineImageAsyncHook().wait_operation(operation_name="operation-1"))
        operator = ComputeEngineInsertMachineImageOperator(task_id="create", name="img-a", source_instance=SOURCE)
        ti = FakeTaskInstance("secrets", "create", "manual__1", -1, 1)
        with pytest.raises(InsecureEndpointError) as info:
            operator.execute(context_of(ti))
        assert TOKEN not in str(info.value)
        event = asyncio.run(first_event(MachineImageOperationTrigger(operation_name="operation-1", project_id=PROJECT)))
        assert event["status"] == "error" and "plain http" in event["message"]
        assert listener.connections == 0

        # Without credentials the same endpoint is reachable: the refusal above was the check, not the network.
        from google.auth.credentials import AnonymousCredentials

        monkeypatch.setattr(ComputeEngineMachineImageHook, "get_credentials", lambda self: AnonymousCredentials())
        with pytest.raises(Exception):  # noqa: B017 - the listener answers 404
            ComputeEngineMachineImageHook().get_machine_image(name="img-a")
        assert listener.connections >= 1 and not any(listener.authorization)
    finally:
        listener.stop()


async def first_event(trigger: Any) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("no event")


# ------------------------------------------------------------------------------------ path injection

REQUEST_ID = "6f1c1f56-5f0e-4c1b-9a57-3c2b8f6f0a11"
INJECTIONS = ["p/../x", "/", "a/b", "x?alt=media", "x#frag", "a%2Fb", "..", ".", "x%2e%2e", "img?", "#"]


@pytest.mark.parametrize("bad", INJECTIONS)
def test_path_injection_is_rejected_before_any_request(emulator: ComputeEngineEmulator, bad: str) -> None:
    hook = ComputeEngineMachineImageHook()
    ti = FakeTaskInstance("secrets", "create", "manual__1", -1, 1)
    context = context_of(ti)
    for arguments in ({"project_id": bad}, {"name": bad}):
        kwargs: dict[str, Any] = {"name": "img-a", "source_instance": SOURCE}
        with pytest.raises(MachineImageValidationError):  # written literally: refused when the DAG is parsed
            ComputeEngineInsertMachineImageOperator(task_id="create", **{**kwargs, **arguments})
        operator = ComputeEngineInsertMachineImageOperator(task_id="create", **kwargs)
        for key, value in arguments.items():
            setattr(operator, key, value)  # as a template renders it
        with pytest.raises(AirflowFailException) as info:
            operator.execute(context)
        assert isinstance(info.value.__cause__, MachineImageValidationError)
    # The hooks resolve (and so check) the project themselves: it may come from the connection.
    for call in (
        lambda: hook.get_machine_image(name="img-a", project_id=bad),
        lambda: hook.insert_machine_image(
            body={"name": "img-a"}, source_instance=SOURCE, request_id=REQUEST_ID, project_id=bad
        ),
        lambda: asyncio.run(ComputeEngineMachineImageAsyncHook().wait_operation(operation_name="op", project_id=bad)),
    ):
        with pytest.raises(MachineImageValidationError):
            call()
    sensors: list[tuple[Any, str]] = [
        (ComputeEngineMachineImageOperationSensor(task_id="wait", operation_name="op", poke_interval=0.1, timeout=5),
         "operation_name"),
        (ComputeEngineMachineImageOperationSensor(
            task_id="wait", operation_name="op", deferrable=True, poke_interval=0.1, timeout=5
        ), "operation_name"),
        (ComputeEngineMachineImageSensor(task_id="wait", machine_image="img-a", poke_interval=0.1, timeout=5),
         "machine_image"),
    ]  # fmt: skip
    for sensor, field in sensors:
        with pytest.raises(MachineImageValidationError):  # written literally: refused when the DAG is parsed
            type(sensor)(task_id="wait", **{field: bad})
        setattr(sensor, field, bad)  # as a template renders it
        with pytest.raises(AirflowFailException):
            sensor.execute(context)
    # Triggers are re-created from stored kwargs: a tampered name must end in an error event, not a request.
    for trigger in (
        MachineImageOperationTrigger(operation_name=bad, project_id=PROJECT),
        MachineImageOperationTrigger(operation_name="operation-1", project_id=bad),
        MachineImageStatusTrigger(machine_image=bad, project_id=PROJECT),
    ):
        event = asyncio.run(first_event(trigger))
        assert event["status"] == "error" and re.search(
            "Invalid (operation_name|project_id|machine_image)", event["message"]
        )
    assert emulator.requests == []


@pytest.mark.parametrize("bad", INJECTIONS)
def test_hooks_send_any_name_as_one_path_segment(emulator: ComputeEngineEmulator, bad: str) -> None:
    """The hooks leave names to their callers' checks: the request builder keeps any name inside its segment.

    ``.`` and ``..`` cannot be kept there (HTTP clients resolve them, even percent-encoded): they are
    refused before any request.
    """
    hook = ComputeEngineMachineImageHook()
    async_hook = ComputeEngineMachineImageAsyncHook()
    calls: dict[str, Callable[[], object]] = {
        "machineImages.get": lambda: hook.get_machine_image(name=bad),
        "machineImages.delete": lambda: hook.delete_machine_image(name=bad, request_id=REQUEST_ID),
        "machineImages.setLabels": lambda: hook.set_labels(name=bad, labels={}, label_fingerprint="x"),
        "globalOperations.get": lambda: hook.get_operation(operation_name=bad),
        "globalOperations.wait": lambda: hook.wait_for_operation(operation_name=bad),
        "globalOperations.wait (async)": lambda: asyncio.run(async_hook.wait_operation(operation_name=bad)),
    }
    for action, call in calls.items():
        emulator.clear_requests()
        if bad in (".", ".."):
            with pytest.raises(MachineImageValidationError, match="URL path segment"):
                call()
            assert emulator.requests == []
            continue
        with pytest.raises((InvalidRequestError, ResourceNotFoundError)):  # the server refuses the name, whole
            call()
        (request,) = emulator.requests
        assert request.action == action.removesuffix(" (async)")
        assert bad in [unquote(segment) for segment in request.path.split("/")]  # whole, in one segment
