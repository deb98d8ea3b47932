"""Every path a key takes into an operator is masked: a canary per path, through real Airflow at DEBUG.

Issue 23 found the restore operator storing a literal ``sourceMachineImageEncryptionKey.rawKey`` of its
``body`` unmasked in the rendered-fields table and printing it in debug logs, a Variable's text body
stored whole, and a malformed text body of the insert operator shown (head and tail) in its exception.
Each path runs here through ``dag.test()`` with the task log at DEBUG: a restore with a literal key (in
the DAG file), one with a templated key (``{{ conn.csek_restore.password }}``, deferrable), one whose
whole ``body`` is a Variable's JSON text, and an insert whose text ``body`` cannot be read. The images
restored from are protected by the canary keys, so each restore succeeds only if its key reached the
API (the emulator refuses an image's restore without its key, as the API refuses a protected disk).
Then every sink is scanned for each key: the task log (stdout/stderr and log files), XCom, the
rendered-fields table, the trigger table, the persisted trigger events, the failed task's exception and
the emulator's request log.
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from airflow_machine_images.hooks import ComputeEngineMachineImageHook
from tests.reliability.conftest import RELIABILITY_DAGS
from tests.reliability.test_secret_hygiene import (
    TOKEN,
    emulator_log,
    key_sha256,
    leaks,
    run_dag,
    table_texts,
    token_credentials,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_machine_images.emulator import ComputeEngineEmulator

pytestmark = pytest.mark.reliability

#: Written literally in the reliability_restore_literal DAG.
LITERAL_KEY = base64.b64encode(b"RESTORE-LITERAL-KEY-IN-DAG-0003!").decode()
#: The csek_restore connection's password, rendered by ``{{ conn.csek_restore.password }}``.
TEMPLATED_KEY = base64.b64encode(b"RESTORE-TEMPLATED-KEY-CONN-0004!").decode()
#: Inside the restore_body Variable (JSON text, '/' escaped as an escaping encoder writes it).
VARIABLE_KEY = base64.b64encode(b"\xfb\xef\xbe-RESTORE-VARIABLE-BODY-KEY-05").decode()
#: Inside the malformed_body Variable, whose text is not JSON.
MALFORMED_KEY = base64.b64encode(b"MALFORMED-TEXT-BODY-KEY-00006!!!").decode()
CANARIES = {
    "literal restore key": LITERAL_KEY,
    "templated restore key": TEMPLATED_KEY,
    "restore key in a Variable body": VARIABLE_KEY,
    "key in a malformed text body": MALFORMED_KEY,
    "token": TOKEN,
}
#: The image each restore reads, and the key protecting it.
SOURCES = {"canary-src-l": LITERAL_KEY, "canary-src-t": TEMPLATED_KEY, "canary-src-v": VARIABLE_KEY}
#: dag.test()'s in-process supervisor logs every message of the task at DEBUG, the key handed to the
#: secrets masker included ("Sending request ... MaskSecret(value=...)"): upstream behaviour of Airflow
#: 3.3's test runner, which the real supervisor does not have (/work/shared/AIRFLOW_NOTES.md). These
#: lines are counted, and left out of the scan; every other line is scanned.
MASK_SECRET_LINE = re.compile(r"^.*MaskSecret\(.*$", re.MULTILINE)
#: A shown piece of a key this long counts as a leak (a message that cut a key short still showed most of it).
FRAGMENT = 12


def fragments(text: str) -> list[str]:
    """Which canary keys ``text`` shows a piece of (:data:`FRAGMENT` characters or more, as sent)."""
    return [
        what
        for what, key in CANARIES.items()
        if what != "token" and any(key[i : i + FRAGMENT] in text for i in range(len(key) - FRAGMENT + 1))
    ]


@pytest.fixture
def debug_logging() -> Iterator[None]:
    """Airflow's logging at DEBUG for this test (configured once per process: reset, then set again)."""
    from airflow.sdk import log as sdk_log

    def configure(level: str) -> None:
        sdk_log.reset_logging()
        sdk_log.configure_logging.cache_clear()
        sdk_log.configure_logging(log_level=level)

    configure("DEBUG")
    try:
        yield
    finally:
        configure(os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO"))


@pytest.fixture
def key_paths_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The connection and Variables the canary DAGs read, DEBUG logs, credentials with a canary token."""
    failures = tmp_path / "failures.jsonl"
    monkeypatch.setenv("RELIABILITY_FAILURES", str(failures))
    monkeypatch.setenv("AIRFLOW_CONN_CSEK_RESTORE", json.dumps({"conn_type": "generic", "password": TEMPLATED_KEY}))
    body = {"sourceMachineImageEncryptionKey": {"rawKey": VARIABLE_KEY}, "description": "from a Variable"}
    monkeypatch.setenv("AIRFLOW_VAR_RESTORE_BODY", json.dumps(body).replace("/", "\\/"))
    disks = [{"sourceDisk": "zones/us-central1-a/disks/web-1", "diskEncryptionKey": {"rawKey": MALFORMED_KEY}}]
    malformed = json.dumps({"sourceDiskEncryptionKeys": disks})[:-1]  # one closing brace short
    monkeypatch.setenv("AIRFLOW_VAR_MALFORMED_BODY", malformed)
    monkeypatch.setattr(ComputeEngineMachineImageHook, "get_credentials", lambda self: token_credentials())
    return failures


def protected_images(emulator: ComputeEngineEmulator) -> None:
    """The images the restores read, each protected by its canary key (made through the API, READY)."""
    hook = ComputeEngineMachineImageHook()
    for n, (name, key) in enumerate(SOURCES.items()):
        operation = hook.insert_machine_image(
            body={"name": name, "machineImageEncryptionKey": {"rawKey": key}},
            source_instance="projects/rel-project/zones/us-central1-a/instances/web-1",
            request_id=f"6f1c1f56-5f0e-4c1b-9a57-3c2b8f6f0a2{n}",
        )
        hook.wait_for_operation(operation_name=operation["name"], timeout=30)
    for name, key in SOURCES.items():
        assert emulator.get_machine_image(name)["machineImageEncryptionKey"]["sha256"] == key_sha256(key)  # type: ignore[index]


def test_every_key_path_is_masked_in_every_sink(
    reliability_db: None,
    debug_logging: None,
    key_paths_env: Path,
    emulator: ComputeEngineEmulator,
    capfd: pytest.CaptureFixture[str],
) -> None:
    assert LITERAL_KEY in (RELIABILITY_DAGS / "reliability_key_canaries.py").read_text()
    protected_images(emulator)
    capfd.readouterr()  # scan the runs' output only
    runs = {
        dag_id: run_dag(dag_id)
        for dag_id in (
            "reliability_restore_literal",
            "reliability_restore_templated",
            "reliability_restore_variable",
            "reliability_insert_malformed",
        )
    }
    states = {dag_id: str(run.get_task_instances()[0].state) for dag_id, run in runs.items()}
    assert states == {
        "reliability_restore_literal": "success",
        "reliability_restore_templated": "success",
        "reliability_restore_variable": "success",
        "reliability_insert_malformed": "failed",
    }
    # The keys reached the API: each image is restored only with its own key, and the request log
    # saw the key field (its value redacted there).
    restores = [r for r in emulator.requests if r.action == "instances.insert"]
    assert [r.status for r in restores] == [200, 200, 200] and all(r.has_authorization for r in restores)
    assert all(r.body["sourceMachineImageEncryptionKey"] == {"rawKey": "[redacted]"} for r in restores)  # type: ignore[index]
    hook = ComputeEngineMachineImageHook()
    assert [hook.get_instance(name=f"drill-{x}", zone="us-central1-a")["status"] for x in "ltv"] == ["RUNNING"] * 3
    assert emulator.count("machineImages.insert") == len(SOURCES)  # the malformed body sent nothing
    failures = [json.loads(line) for line in key_paths_env.read_text().splitlines()]
    assert [f["error_type"] for f in failures] == ["AirflowFailException"]
    assert "Invalid body" in failures[0]["error"] and "not shown" in failures[0]["error"]

    captured = capfd.readouterr()
    log = captured.out + captured.err
    upstream = MASK_SECRET_LINE.findall(log)
    outputs: dict[str, list[str]] = {
        "task log (stdout/stderr)": [MASK_SECRET_LINE.sub("", log)],
        "task log files": [
            p.read_text(errors="replace") for p in Path(os.environ["AIRFLOW_HOME"], "logs").rglob("*") if p.is_file()
        ],
        "exception text": [json.dumps(entry) for entry in failures],
        "the emulator's request log": emulator_log(emulator),
        **table_texts(list(runs.values())),
    }
    # The scan sees what it scans: DEBUG lines, each restore's log line, XCom, the key fields among the
    # rendered fields, the deferred restore's trigger.
    assert " DEBUG " in log or "[debug" in log.lower(), "the task log is not at DEBUG"
    assert all(f"drill-{x}" in log for x in "ltv")
    assert all(any(f"drill-{x}" in text for text in outputs["xcom"]) for x in "ltv")
    rendered = "\n".join(outputs["rendered fields"])
    assert rendered.count("sourceMachineImageEncryptionKey") == 3 and "***" in rendered
    assert outputs["trigger kwargs"], "the deferrable restore stored no trigger"
    found = {where: leaks("\n".join(texts), CANARIES) for where, texts in outputs.items()}
    assert found == {where: [] for where in outputs}
    pieces = {where: fragments("\n".join(texts)) for where, texts in outputs.items()}
    assert pieces == {where: [] for where in outputs}
    assert upstream, "expected dag.test()'s DEBUG echo of the masker's secrets (if gone upstream, drop the filter)"
