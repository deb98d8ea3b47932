"""Test-session environment: a private, throw-away Airflow home set before anything imports Airflow."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_machine_images.testing.harness import CONNECTION_ENV, airflow_environment, connection_json

if TYPE_CHECKING:
    from _pytest.terminal import TerminalReporter

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="ami-tests-airflow-"))
_DAGS_FOLDER = _AIRFLOW_HOME / "dags"
_DAGS_FOLDER.mkdir()

# The same private home the pytest plugin's ``airflow_home`` fixture makes (one definition, in the package).
os.environ.update(airflow_environment(_AIRFLOW_HOME, _DAGS_FOLDER))
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")
# No test may reach Google: the default connection is anonymous and has no endpoint, so a test that
# forgets to point at the emulator fails instead of calling compute.googleapis.com with real credentials.
os.environ[CONNECTION_ENV] = connection_json(None, "test-project")
os.environ.pop("GOOGLE_APPLICATION_CREDENTIALS", None)

REPO_ROOT = Path(__file__).resolve().parent.parent
DAGS_FOLDER = _DAGS_FOLDER


# -- the reliability campaigns' figures, printed after the results (also under pytest-xdist) ----------

_WORKER_SUMMARIES: list[str] = []


def _own_summaries() -> list[str]:
    harness = sys.modules.get("tests.reliability.harness")  # loaded only when a campaign ran here
    return list(harness.SUMMARIES) if harness is not None else []


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On an xdist worker, hand this process's campaign figures to the controller."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["reliability_summaries"] = _own_summaries()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """On the xdist controller, collect a finished worker's campaign figures."""
    _WORKER_SUMMARIES.extend(getattr(node, "workeroutput", {}).get("reliability_summaries", []))


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    """Print the campaigns' figures after the test results (also without ``-s``)."""
    summaries = _WORKER_SUMMARIES + _own_summaries()
    if summaries:
        terminalreporter.section("reliability campaigns")
        for summary in summaries:
            terminalreporter.write_line(summary)
