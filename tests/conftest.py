"""Test-session environment: a private, throw-away Airflow home set before anything imports Airflow."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="ami-tests-airflow-"))
_DAGS_FOLDER = _AIRFLOW_HOME / "dags"
_DAGS_FOLDER.mkdir()

os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_DAGS_FOLDER)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}"
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")
# No test may reach Google: the default connection is anonymous and has no endpoint, so a test that
# forgets to point at the emulator fails instead of calling compute.googleapis.com with real credentials.
os.environ["AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"] = (
    '{"conn_type": "google_cloud_platform", "extra": {"project": "test-project", "is_anonymous": true}}'
)
os.environ.pop("GOOGLE_APPLICATION_CREDENTIALS", None)

REPO_ROOT = Path(__file__).resolve().parent.parent
DAGS_FOLDER = _DAGS_FOLDER
