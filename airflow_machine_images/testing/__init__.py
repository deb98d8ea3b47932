"""A pytest plugin for testing your own DAGs against the bundled Compute Engine emulator.

Installed with the package and loaded by pytest through the ``pytest11`` entry point
``airflow_machine_images`` (turn it off with ``-p no:airflow_machine_images``). Loading it costs only
this module and the standard library: Airflow and the emulator are imported inside the fixtures, so
unrelated tests pay nothing. Fixtures:

- ``compute_engine_emulator``: a started :class:`~airflow_machine_images.emulator.ComputeEngineEmulator`
  on 127.0.0.1 (its seeding and fault helpers: ``add_instance``, ``add_machine_image``, ``inject``,
  ``machine_images``, ``count``, ...) with ``google_cloud_default`` pointed at it; one per test.
- ``airflow_home``: a temporary, migrated Airflow home whose DAGs folder is ``airflow_dags_folder``;
  one per session. Its ``run_dag(dag_id)`` runs a DAG with ``dag.test()`` and returns a
  :class:`~airflow_machine_images.testing.harness.DagRunResult` (run state, task states, XComs).

Override ``airflow_dags_folder`` (session scope) to use your DAGs folder, and
``compute_engine_emulator_options`` to change the emulator's arguments.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_machine_images.testing import harness

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime

    from airflow_machine_images.emulator import ComputeEngineEmulator

__all__ = ["AirflowHome"]

#: The emulator's arguments unless ``compute_engine_emulator_options`` is overridden.
DEFAULT_EMULATOR_OPTIONS: dict[str, Any] = {"default_project": "demo-project", "operation_seconds": 0.5}


@dataclass(frozen=True)
class AirflowHome:
    """A migrated, private Airflow home of this test session.

    :param path: ``AIRFLOW_HOME``; the SQLite metadata DB is ``airflow.db`` in it.
    :param dags_folder: the DAGs folder ``run_dag`` loads DAG files from.
    """

    path: Path
    dags_folder: Path

    def run_dag(
        self, dag_id: str, *, logical_date: datetime | None = None, run_conf: dict[str, Any] | None = None
    ) -> harness.DagRunResult:
        """Run a DAG of the DAGs folder with ``dag.test()``; see :func:`harness.run_dag`.

        :param dag_id: the DAG's id.
        :param logical_date: the run's logical date; None: now (a new run).
        :param run_conf: the run's ``conf``.
        """
        return harness.run_dag(dag_id, dags_folder=self.dags_folder, logical_date=logical_date, run_conf=run_conf)


@pytest.fixture(scope="session")
def airflow_dags_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The DAGs folder of ``airflow_home``: an empty temporary folder unless you override this fixture.

    :param tmp_path_factory: pytest's temporary directories.
    """
    return tmp_path_factory.mktemp("dags")


@pytest.fixture(scope="session")
def airflow_home(airflow_dags_folder: Path) -> AirflowHome:
    """A temporary Airflow home with a migrated SQLite metadata DB, its DAGs folder set (Airflow 2.11 and 3.x).

    :param airflow_dags_folder: the DAGs folder to use.
    """
    home = AirflowHome(Path(tempfile.mkdtemp(prefix="airflow-home-")), Path(airflow_dags_folder))
    harness.configure_airflow(home.path, home.dags_folder)
    harness.migrate_metadata_db()
    return home


@pytest.fixture
def compute_engine_emulator_options() -> dict[str, Any]:
    """The keyword arguments of the ``compute_engine_emulator`` fixture's emulator (override to change)."""
    return dict(DEFAULT_EMULATOR_OPTIONS)


@pytest.fixture
def compute_engine_emulator(
    compute_engine_emulator_options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> Iterator[ComputeEngineEmulator]:
    """A started Compute Engine emulator on 127.0.0.1, ``google_cloud_default`` pointed at it (anonymous).

    :param compute_engine_emulator_options: its arguments (default project, operation time, ...).
    :param monkeypatch: sets the connection for this test only.
    """
    from airflow_machine_images.emulator import ComputeEngineEmulator

    with ComputeEngineEmulator(**compute_engine_emulator_options) as emulator:
        monkeypatch.setenv(harness.CONNECTION_ENV, harness.connection_json(emulator.url, emulator.default_project))
        yield emulator
