"""Run DAGs with real Airflow against the bundled emulator: the set-up ``make demo``, the test suite and
the pytest plugin (:mod:`airflow_machine_images.testing`) share.

Importing this module loads the standard library only; Airflow is imported inside the functions, after
:func:`configure_airflow` has pointed it at a throw-away home (Airflow reads its configuration when it is
first imported). It works on Airflow 2.11 and 3.x (``dag.test()`` through :func:`compat.dag_test`).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

#: The connection every operator, sensor and hook of the package uses unless told otherwise.
CONNECTION_ENV = "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"


def connection_json(endpoint: str | None, project: str) -> str:
    """The ``google_cloud_default`` connection (JSON form) for the emulator: anonymous credentials, no key.

    :param endpoint: the emulator's URL (``ComputeEngineEmulator.url``), read by the hooks as the
        ``compute_api_endpoint`` extra; None: no endpoint, so a test that forgets the emulator fails
        (anonymous credentials get nothing from Google) instead of reaching it with real ones.
    :param project: the default project of the connection.
    """
    extra: dict[str, Any] = {"project": project, "is_anonymous": True}
    if endpoint is not None:
        extra["compute_api_endpoint"] = endpoint
    return json.dumps({"conn_type": "google_cloud_platform", "extra": extra})


def airflow_environment(home: Path, dags_folder: Path) -> dict[str, str]:
    """The environment of a private Airflow home: its SQLite metadata DB, its DAGs folder, no examples.

    :param home: the ``AIRFLOW_HOME`` directory (the SQLite file ``airflow.db`` goes there).
    :param dags_folder: the folder ``dag.test()`` reads DAG files from.
    """
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        # Airflow 2's unit-test mode configures the LocalExecutor, which it refuses next to SQLite unless
        # told (its own tests set this); dag.test() never starts the executor, but sensors ask for its class.
        "_AIRFLOW__SKIP_DATABASE_EXECUTOR_COMPATIBILITY_CHECK": "1",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
    }


def configure_airflow(home: Path, dags_folder: Path) -> None:
    """Point this process's Airflow at ``home`` and ``dags_folder`` (:func:`airflow_environment`).

    Before Airflow is imported this only sets environment variables. If it was imported already (a
    test module imported an operator at the top), its settings are read again and its database engine
    rebuilt, so the new home is used all the same.

    :param home: the ``AIRFLOW_HOME`` directory.
    :param dags_folder: the DAGs folder.
    """
    home.mkdir(parents=True, exist_ok=True)
    dags_folder.mkdir(parents=True, exist_ok=True)
    os.environ.update(airflow_environment(home, dags_folder))
    settings = sys.modules.get("airflow.settings")
    if settings is not None and getattr(settings, "engine", None) is not None:
        settings.configure_vars()
        settings.reconfigure_orm()


def migrate_metadata_db() -> None:
    """Create the metadata DB's tables afresh (``airflow db reset``): what ``dag.test()`` needs."""
    from airflow_machine_images.compat import resetdb

    resetdb()


def load_dag(dag_id: str, dags_folder: Path | None = None) -> Any:
    """Load a DAG from the DAGs folder the way ``airflow dags test`` does.

    :param dag_id: the DAG's id.
    :param dags_folder: the folder (or the one DAG file) to load; None: Airflow's configured DAGs folder.
    :raises AssertionError: a DAG file of the folder fails to import, or no DAG has that id.
    """
    from airflow_machine_images.compat import DagBag

    folder = dags_folder or Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    bag = DagBag(dag_folder=str(folder))
    assert not bag.import_errors, f"DAG files failed to import: {bag.import_errors}"
    dag = bag.get_dag(dag_id)
    assert dag is not None, f"no DAG {dag_id!r} in {folder} (found: {sorted(bag.dag_ids)})"
    return dag


def task_states(dag_run: Any) -> dict[str, Any]:
    """Each task's state by task id: a string, or for a mapped task the list of its instances' states.

    :param dag_run: a finished run (what ``dag.test()`` returns).
    """
    states: dict[str, Any] = {}
    for ti in sorted(dag_run.get_task_instances(), key=lambda ti: (ti.task_id, ti.map_index)):
        if ti.map_index < 0:
            states[ti.task_id] = str(ti.state)
        else:
            states.setdefault(ti.task_id, []).append(str(ti.state))
    return states


def returned_values(dag_run: Any) -> dict[str, Any]:
    """Each task's return value (its ``return_value`` XCom) by task id; a mapped task's as a list.

    A plain ``select`` of the XCom table (``XComModel`` on 3.x, ``XCom`` on 2.x), as it works on every
    supported Airflow; tasks that returned nothing are absent.

    :param dag_run: a finished run (what ``dag.test()`` returns).
    """
    from sqlalchemy import select

    from airflow_machine_images.compat import XComModel, create_session

    query = (
        select(XComModel.task_id, XComModel.map_index, XComModel.value)
        .where(
            XComModel.key == "return_value",
            XComModel.dag_id == dag_run.dag_id,
            XComModel.run_id == dag_run.run_id,
        )
        .order_by(XComModel.task_id, XComModel.map_index)
    )
    values: dict[str, Any] = {}
    with create_session() as session:
        for task_id, map_index, value in session.execute(query).all():
            decoded = XComModel.deserialize_value(_Row(value))
            if map_index < 0:
                values[task_id] = decoded
            else:
                values.setdefault(task_id, []).append(decoded)
    return values


@dataclass
class _Row:
    """What ``XComModel.deserialize_value`` reads: an object with the stored ``value``."""

    value: Any


@dataclass(frozen=True)
class DagRunResult:
    """What a :func:`run_dag` run left behind.

    :param dag_run: Airflow's finished ``DagRun``.
    :param state: the run's state (``"success"``, ``"failed"``).
    :param task_states: :func:`task_states`.
    :param xcoms: :func:`returned_values`.
    """

    dag_run: Any
    state: str
    task_states: dict[str, Any] = field(default_factory=dict)
    xcoms: dict[str, Any] = field(default_factory=dict)


def run_dag(
    dag_id: str,
    *,
    dags_folder: Path | None = None,
    logical_date: datetime | None = None,
    run_conf: dict[str, Any] | None = None,
) -> DagRunResult:
    """Run a DAG of the DAGs folder with ``dag.test()`` (Airflow 2.11 and 3.x) and read what it left.

    Deferred tasks run their triggers in this process; the run is over when this returns.

    :param dag_id: the DAG's id.
    :param dags_folder: the folder (or the one DAG file) to load it from; None: Airflow's DAGs folder.
    :param logical_date: the run's logical date; None: now (a new run).
    :param run_conf: the run's ``conf``.
    """
    from airflow_machine_images.compat import dag_test

    dag_run = dag_test(load_dag(dag_id, dags_folder), logical_date=logical_date, run_conf=run_conf)
    return DagRunResult(dag_run, str(dag_run.state), task_states(dag_run), returned_values(dag_run))
