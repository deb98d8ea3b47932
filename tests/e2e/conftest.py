"""The e2e harness: one real multi-process Airflow 3 (+ PostgreSQL + the emulator) per test session.

Two configurations, never running at once (each is ~1.1 GB and busy on 2 cores): the local one
(LocalExecutor, one triggerer; session-scoped ``stack``) for every module but ``test_e2e_celery.py``,
and the distributed one (CeleryExecutor, two workers, two triggerers; ``celery_stack``, scoped to
that module). The Celery module always runs last, and its fixture closes the local stack first.

Everything it starts runs in its own process group and is stopped at the end by group id, also when
a test fails, on Ctrl-C, on SIGTERM, and (as a last resort) at interpreter exit. The logs, task logs,
screenshots and ``e2e-summary.json`` stay under ``.artifacts/e2e/<timestamp>/`` (or
``$AMI_E2E_ARTIFACTS``), and the path is printed at the end.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.distributed import CELERY_MODULE, celery_config
from tests.e2e.metrics import Summary
from tests.e2e.observe import wait_for_idle_dag
from tests.e2e.scenarios import BACKUP_DAG
from tests.e2e.stack import REPO_ROOT, Stack, StackConfig

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator
    from types import FrameType

#: DAGs the cases need parsed before they start.
E2E_DAG_IDS = (BACKUP_DAG.dag_id, "e2e_real_failures", "e2e_fleet_backup_operator")

_SUMMARY: Summary | None = None
_STACK: Stack | None = None
_CELERY_STACK: Stack | None = None
_CELERY_SUMMARY: Summary | None = None


def _artifacts_dir() -> Path:
    configured = os.environ.get("AMI_E2E_ARTIFACTS")
    if configured:
        root = Path(configured)
        root.mkdir(parents=True, exist_ok=True)
        return root.resolve()
    base = REPO_ROOT / ".artifacts" / "e2e" / time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 100):  # two sessions started in the same second get their own dirs
        root = base if attempt == 1 else base.with_name(f"{base.name}-{attempt}")
        try:
            root.mkdir(parents=True)
        except FileExistsError:
            continue
        return root.resolve()
    raise RuntimeError(f"cannot create an artifacts dir next to {base}")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where this session's logs, task logs, screenshots and summary go."""
    return Path(summary_for_session().artifacts_dir)


def summary_for_session() -> Summary:
    """The session's summary (created on first use)."""
    global _SUMMARY
    if _SUMMARY is None:
        _SUMMARY = Summary(artifacts_dir=str(_artifacts_dir()))
    return _SUMMARY


@pytest.fixture(scope="session")
def summary() -> Summary:
    """What the session measures and reports."""
    return summary_for_session()


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _close_stack_at_exit() -> None:
    for harness in (_STACK, _CELERY_STACK):
        if harness is not None:
            harness.close()


@contextlib.contextmanager
def _started(harness: Stack, what: str, summary: Summary, summary_path: Path) -> Iterator[Stack]:
    """Start ``harness`` and yield it; close it and write ``summary`` after (also on SIGTERM or exit).

    :param harness: the stack.
    :param what: its name in the message printed, with every process's log tail, if it fails to start.
    :param summary: the measurements to write when it closes.
    :param summary_path: where they go.
    """
    previous_term = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    atexit.register(_close_stack_at_exit)
    try:
        try:
            harness.start()
        except BaseException:
            sys.stderr.write(f"\n{what} failed to start; process logs:\n{harness.failure_report(60)}\n")
            raise
        yield harness
    finally:
        harness.close()
        signal.signal(signal.SIGTERM, previous_term)
        summary.write(summary_path)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the Celery module's cases after every other e2e case (stable otherwise)."""
    items.sort(key=lambda item: item.path.name == CELERY_MODULE)


@pytest.fixture(scope="session")
def stack(summary: Summary, artifacts: Path) -> Iterator[Stack]:
    """PostgreSQL + emulator + api-server, scheduler, dag-processor, triggerer: started, healthy, DAGs parsed."""
    global _STACK
    harness = Stack(StackConfig(dag_ids=E2E_DAG_IDS), artifacts, summary)
    _STACK = harness
    try:
        with _started(harness, "e2e stack", summary, artifacts / "e2e-summary.json"):
            yield harness
    finally:
        _STACK = None


@pytest.fixture(scope="session")
def backup_dag_idle(stack: Stack, summary: Summary) -> str:
    """The backup DAG's id, once the run its unpausing scheduled (if any) has finished.

    The wait is reported on its own (``settle``), not in any case's duration.
    """
    assert stack.api is not None
    started = time.monotonic()
    others = wait_for_idle_dag(stack.api, BACKUP_DAG.dag_id, timeout=300)
    summary.settle = {
        "dag_id": BACKUP_DAG.dag_id,
        "seconds": round(time.monotonic() - started, 1),
        "runs_waited_for": others,
    }
    return BACKUP_DAG.dag_id


@pytest.fixture(scope="module")
def celery_stack(summary: Summary, artifacts: Path) -> Iterator[Stack]:
    """The distributed configuration: CeleryExecutor (private Redis), two workers, two triggerers.

    The local stack, if this session started it, is closed first (its cases all ran: this module is
    sorted last), so the two never share the machine. Logs go to ``<artifacts>/celery/``, the
    measurements to ``<artifacts>/celery/e2e-summary.json``.
    """
    global _CELERY_STACK, _CELERY_SUMMARY
    if _STACK is not None:
        _STACK.close()
    root = artifacts / "celery"
    root.mkdir(parents=True, exist_ok=True)
    celery_summary = Summary(artifacts_dir=str(root))
    _CELERY_SUMMARY = celery_summary
    harness = Stack(celery_config(), root, celery_summary)
    _CELERY_STACK = harness
    try:
        with _started(harness, "e2e Celery stack", celery_summary, root / "e2e-summary.json"):
            yield harness
    finally:
        _CELERY_STACK = None


# ---------------------------------------------------------------------- reporting hooks


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None, Any, None]:
    """On a failed e2e test, attach the tail of every process log (and PostgreSQL's) to the report."""
    outcome = yield
    report = outcome.get_result()
    harness = _CELERY_STACK if item.path.name == CELERY_MODULE else _STACK
    if report.failed and harness is not None:
        report.sections.append(("e2e process logs (tails)", harness.failure_report(40)))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Record each case's duration (the test body; the stack start is reported on its own)."""
    if report.when == "call" and _SUMMARY is not None:
        name = report.nodeid.split("::")[-1]
        _SUMMARY.record_case(name, report.duration, report.outcome)
        if _CELERY_SUMMARY is not None and CELERY_MODULE in report.nodeid:
            _CELERY_SUMMARY.record_case(name, report.duration, report.outcome)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the measurements and where the artifacts are."""
    if _SUMMARY is None:
        return
    terminalreporter.section("e2e summary")
    terminalreporter.write_line(_SUMMARY.render())
    terminalreporter.write_line(f"summary JSON: {Path(_SUMMARY.artifacts_dir) / 'e2e-summary.json'}")
    if _CELERY_SUMMARY is not None:
        terminalreporter.section("e2e summary: Celery configuration")
        terminalreporter.write_line(_CELERY_SUMMARY.render())
        terminalreporter.write_line(f"summary JSON: {Path(_CELERY_SUMMARY.artifacts_dir) / 'e2e-summary.json'}")
