"""Fixtures of the reliability campaigns: short client timeouts, a faulty emulator, an Airflow DB."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from airflow_machine_images.emulator import ComputeEngineEmulator
from tests.conftest import DAGS_FOLDER
from tests.reliability.harness import ClientSettings, client_settings

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow.sdk import DAG

PROJECT = "rel-project"
SOURCE = "us-central1-a/web-1"
RELIABILITY_DAGS = Path(__file__).parent / "dags"


def connection_json(endpoint: str, project: str = PROJECT, **extra: object) -> str:
    """A ``google_cloud_platform`` connection to ``endpoint`` (anonymous unless told otherwise)."""
    return json.dumps(
        {
            "conn_type": "google_cloud_platform",
            "extra": {"project": project, "is_anonymous": True, "compute_api_endpoint": endpoint, **extra},
        }
    )


@pytest.fixture
def fast_clients() -> Iterator[ClientSettings]:
    """Every hook made during the test uses short timeouts and backoffs (see ``ClientSettings``)."""
    settings = ClientSettings()
    with client_settings(settings):
        yield settings


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[ComputeEngineEmulator]:
    """An in-process emulator with one instance, and ``google_cloud_default`` pointing at it."""
    with ComputeEngineEmulator(default_project=PROJECT, operation_seconds=0.3, seed=5) as emu:
        emu.add_instance(SOURCE)
        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", connection_json(emu.url))
        yield emu


@pytest.fixture(scope="session")
def reliability_db() -> None:
    """A migrated metadata DB, with the reliability DAGs in the DAGs folder."""
    for source in RELIABILITY_DAGS.glob("*.py"):
        shutil.copy(source, DAGS_FOLDER / source.name)
    from airflow.utils.db import resetdb

    resetdb()


def load_dag(dag_id: str) -> DAG:
    """A DAG from the DAGs folder, loaded the way ``airflow dags test`` loads it."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag(dag_id)
    assert dag is not None, f"no DAG {dag_id}"
    return dag
