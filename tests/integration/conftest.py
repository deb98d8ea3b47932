"""Integration fixtures: the emulator over real HTTP, connections pointing at it, a real Airflow DB."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_machine_images.emulator import ComputeEngineEmulator
from airflow_machine_images.testing import harness
from tests.conftest import DAGS_FOLDER, REPO_ROOT

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime

PROJECT = "test-project"
SOURCE = "us-central1-a/web-1"


@pytest.fixture
def emulator() -> Iterator[ComputeEngineEmulator]:
    """A fresh emulator per test, with one instance; operations take half a second."""
    with ComputeEngineEmulator(default_project=PROJECT, operation_seconds=0.5, seed=1) as emu:
        emu.add_instance(SOURCE)
        yield emu


def connection_json(endpoint: str, project: str = PROJECT) -> str:
    """The emulator's ``google_cloud_default`` connection (:func:`harness.connection_json`), ``PROJECT`` by default."""
    return harness.connection_json(endpoint, project)


@pytest.fixture
def gcp_connection(emulator: ComputeEngineEmulator, monkeypatch: pytest.MonkeyPatch) -> ComputeEngineEmulator:
    """Point ``google_cloud_default`` at the emulator (anonymous credentials, its project)."""
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", connection_json(emulator.url))
    return emulator


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A migrated metadata DB and the DAG files (examples + test DAGs) in the DAGs folder."""
    for source in [*(REPO_ROOT / "example_dags").glob("*.py"), *(Path(__file__).parent / "dags").glob("*.py")]:
        shutil.copy(source, DAGS_FOLDER / source.name)
    harness.migrate_metadata_db()


def load_dag(dag_id: str):  # type: ignore[no-untyped-def]
    """Load a DAG from the DAGs folder the way ``airflow dags test`` does."""
    return harness.load_dag(dag_id, DAGS_FOLDER)


def run_dag(dag_id: str, logical_date: datetime | None = None, run_conf: dict[str, Any] | None = None):  # type: ignore[no-untyped-def]
    """``dag.test()`` of a DAG of the DAGs folder, on Airflow 2.11 and 3.x alike (``compat.dag_test``)."""
    from airflow_machine_images.compat import dag_test

    return dag_test(load_dag(dag_id), logical_date=logical_date, run_conf=run_conf)


def xcom_result(dag_run, task_id: str):  # type: ignore[no-untyped-def]
    """The return value (XCom) a task of a finished ``dag.test()`` run pushed (None: none)."""
    return harness.returned_values(dag_run).get(task_id)


def task_states(dag_run) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Each task's state (a list for a mapped task), by task id."""
    return harness.task_states(dag_run)
