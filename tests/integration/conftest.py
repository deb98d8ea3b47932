"""Integration fixtures: the emulator over real HTTP, connections pointing at it, a real Airflow DB."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_machine_images.emulator import ComputeEngineEmulator
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
    return json.dumps(
        {
            "conn_type": "google_cloud_platform",
            "extra": {"project": project, "is_anonymous": True, "compute_api_endpoint": endpoint},
        }
    )


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
    from airflow.utils.db import resetdb

    resetdb()


def load_dag(dag_id: str):  # type: ignore[no-untyped-def]
    """Load a DAG from the DAGs folder the way ``airflow dags test`` does."""
    from airflow_machine_images.compat import DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag(dag_id)
    assert dag is not None, f"no DAG {dag_id}"
    return dag


def run_dag(dag_id: str, logical_date: datetime | None = None, run_conf: dict[str, Any] | None = None):  # type: ignore[no-untyped-def]
    """``dag.test()`` of a DAG of the DAGs folder, on Airflow 2.11 and 3.x alike (``compat.dag_test``)."""
    from airflow_machine_images.compat import dag_test

    return dag_test(load_dag(dag_id), logical_date=logical_date, run_conf=run_conf)


def xcom_result(dag_run, task_id: str):  # type: ignore[no-untyped-def]
    """The return value (XCom) a task of a finished ``dag.test()`` run pushed.

    A plain ``select`` of the XCom table, whose model is ``XComModel`` on 3.x and ``XCom`` on 2.x.
    """
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow_machine_images.compat import XComModel

    with create_session() as session:
        row = session.execute(
            select(XComModel.value).where(
                XComModel.key == "return_value",
                XComModel.dag_id == dag_run.dag_id,
                XComModel.run_id == dag_run.run_id,
                XComModel.task_id == task_id,
                XComModel.map_index == -1,
            )
        ).first()
    return None if row is None else XComModel.deserialize_value(row)


def task_states(dag_run) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
