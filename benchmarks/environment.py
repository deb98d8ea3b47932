"""Process setup shared by the benchmarks: a throw-away Airflow home and a connection to the emulator.

Call :func:`prepare_airflow` before anything imports Airflow; it mirrors ``tests/conftest.py``.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO_ROOT / ".artifacts" / "benchmarks"
DEFAULT_PROJECT = "bench-project"


def prepare_airflow(home: Path | None = None, *, log_level: str = "INFO") -> Path:
    """Point Airflow at a private home (SQLite DB, empty DAGs folder, no examples).

    :param home: the directory to use (a new temporary one if None).
    :param log_level: Airflow's logging level (INFO, as deployed; run_all sends it to per-step logs).
    :return: the Airflow home.
    """
    home = home or Path(tempfile.mkdtemp(prefix="ami-bench-airflow-"))
    dags = home / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home / 'airflow.db'}"
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = log_level
    os.environ.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    return home


def connection_json(endpoint: str, project: str = DEFAULT_PROJECT) -> str:
    """An anonymous ``google_cloud_platform`` connection pointing at ``endpoint``.

    :param endpoint: the emulator's URL.
    :param project: the connection's default project.
    """
    return json.dumps(
        {
            "conn_type": "google_cloud_platform",
            "extra": {"project": project, "is_anonymous": True, "compute_api_endpoint": endpoint},
        }
    )


def use_emulator(endpoint: str, project: str = DEFAULT_PROJECT) -> None:
    """Make ``google_cloud_default`` point at the emulator (anonymous credentials).

    :param endpoint: the emulator's URL.
    :param project: the connection's default project.
    """
    os.environ["AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"] = connection_json(endpoint, project)


def monotonic_to_epoch_offset() -> float:
    """``time.time() - time.monotonic()`` now: adds to a CLOCK_MONOTONIC reading to get epoch seconds.

    On Linux ``time.monotonic()`` is CLOCK_MONOTONIC, shared by every process, so the emulator's
    request timestamps (taken in another process) convert with this offset.
    """
    samples = []
    for _ in range(5):
        before = time.monotonic()
        wall = time.time()
        after = time.monotonic()
        samples.append((after - before, wall - (before + after) / 2))
    return min(samples)[1]


def write_json(path: Path, payload: object) -> None:
    """Write ``payload`` as indented JSON, creating parent folders.

    :param path: the file.
    :param payload: JSON-ready data.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
