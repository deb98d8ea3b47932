"""Integration fixtures: the emulator over real HTTP, connections pointing at it, a real Airflow DB."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from airflow_machine_images.emulator import ComputeEngineEmulator
from tests.conftest import DAGS_FOLDER, REPO_ROOT

if TYPE_CHECKING:
    from collections.abc import Iterator

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
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag(dag_id)
    assert dag is not None, f"no DAG {dag_id}"
    return dag


def xcom_result(dag_run, task_id: str):  # type: ignore[no-untyped-def]
    """The return value (XCom) a task of a finished ``dag.test()`` run pushed."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.execute(
            XComModel.get_many(
                key="return_value", run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id
            ).with_only_columns(XComModel.value)
        ).first()
    return None if row is None else XComModel.deserialize_value(row)


def task_states(dag_run) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
