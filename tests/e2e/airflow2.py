"""A real Airflow 2 on loopback: PostgreSQL, the emulator, ``airflow scheduler`` (LocalExecutor) and the
classic ``airflow triggerer``, each in its own process group, watched through the metadata DB.

Airflow 2 has no api-server, dag-processor or task SDK: the scheduler parses the DAGs and runs the tasks
(LocalExecutor), the triggerer runs the triggers. The test process does not import Airflow (its
configuration would be read before the stack exists): runs are triggered by one short Python process
with the stack's environment, and everything is watched with plain SQL on the metadata DB.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy

from tests.e2e.net import free_port, wait_for
from tests.e2e.postgres import PostgresCluster
from tests.e2e.processes import ManagedProcess, ProcessRegistry, tail
from tests.e2e.rest import EmulatorControl
from tests.e2e.stack import REPO_ROOT, airflow_executable, base_env

PROJECT = "demo-project"
#: The DAG files the stack loads: the two deferrable examples and the deadline DAG.
DAG_FILES = (
    REPO_ROOT / "example_dags" / "example_machine_image.py",
    REPO_ROOT / "example_dags" / "example_machine_image_sensor.py",
    Path(__file__).resolve().parent / "dags_airflow2" / "e2e_deadline.py",
)
#: Triggers ``dag_id -> (run_id, conf)`` in one process with the stack's environment.
#: Each run gets its own logical date (a second apart), as runs triggered one after the other would.
TRIGGER_SCRIPT = """
import json, sys
from datetime import timedelta
from airflow.api.common.trigger_dag import trigger_dag
from airflow.utils import timezone
now = timezone.utcnow().replace(microsecond=0)
for n, (dag_id, (run_id, conf)) in enumerate(json.loads(sys.argv[1]).items()):
    trigger_dag(dag_id, run_id=run_id, conf=conf, execution_date=now + timedelta(seconds=n))
    print("triggered", dag_id, run_id, flush=True)
"""


@dataclass
class Airflow2Stack:
    """Start with :meth:`start`, stop with :meth:`close` (always).

    :param artifacts: where the logs go (kept).
    :param instances: source instances the emulator starts with.
    :param operation_seconds: how long an image takes.
    """

    artifacts: Path
    instances: tuple[str, ...]
    operation_seconds: float
    registry: ProcessRegistry = field(default_factory=ProcessRegistry)
    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ami-e2e-af2-")))
    postgres: PostgresCluster | None = None
    emulator: EmulatorControl | None = None
    emulator_url: str = ""
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    engine: Any = None  # a sqlalchemy Engine (1.4 on Airflow 2.11)

    @property
    def dags_folder(self) -> Path:
        """The stack's DAGs folder."""
        return self.work / "dags"

    @property
    def task_logs(self) -> Path:
        """Where task (and trigger) logs go."""
        return self.artifacts / "task-logs"

    def start(self) -> None:
        """PostgreSQL, the emulator, ``airflow db migrate``, the scheduler and the triggerer."""
        self.dags_folder.mkdir(parents=True)
        for source in DAG_FILES:
            shutil.copy(source, self.dags_folder / source.name)
        self.postgres = PostgresCluster.create(self.artifacts / "postgres.log")
        self.engine = sqlalchemy.create_engine(self.postgres.sqlalchemy_url, pool_pre_ping=True)
        self._start_emulator()
        self._run_airflow("db-migrate", [airflow_executable(), "db", "migrate"], timeout=300)
        for component in ("scheduler", "triggerer"):
            self.processes[component] = self.registry.start(
                component,
                [airflow_executable(), component],
                env=self.env(),
                log_path=self.artifacts / f"{component}.log",
                cwd=self.work,
            )

    def env(self) -> dict[str, str]:
        """Every Airflow process's environment."""
        assert self.postgres is not None
        connection = {
            "conn_type": "google_cloud_platform",
            "extra": {"project": PROJECT, "is_anonymous": True, "compute_api_endpoint": self.emulator_url},
        }
        return base_env() | {
            "AIRFLOW_HOME": str(self.work / "airflow-home"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.postgres.sqlalchemy_url,
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.task_logs),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "5",
            # The operators defer with Airflow's own timeout at the task's deadline too, as a backstop; the
            # scheduler's check of it (every 15 s by default) would race the trigger's own timeout event,
            # which the deadline case watches for: checked rarely here, the trigger's event comes first.
            "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "300",
            # The operators defer by default (the insert of example_machine_image among them).
            "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
            "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": json.dumps(connection),
        }

    def _start_emulator(self) -> None:
        ready = self.work / "emulator.url"
        argv = [sys.executable, "-m", "airflow_machine_images.emulator", "--port", "0", "--project", PROJECT]
        for instance in self.instances:
            argv += ["--instance", instance]
        argv += ["--operation-seconds", str(self.operation_seconds), "--ready-file", str(ready)]
        process = self.registry.start("emulator", argv, env=base_env(), log_path=self.artifacts / "emulator.log")
        self.processes["emulator"] = process

        def probe() -> str | None:
            if not process.running():
                raise RuntimeError(f"the emulator exited at start:\n{process.describe()}")
            return ready.read_text().strip() if ready.exists() else None

        self.emulator_url = wait_for("the emulator's ready file", probe, timeout=60, interval=0.2)
        self.emulator = EmulatorControl(self.emulator_url, PROJECT)
        wait_for("the emulator's health endpoint", self.emulator.health, timeout=30, interval=0.2)

    def _run_airflow(self, name: str, argv: list[str], timeout: float) -> str:
        """Run one Airflow command with the stack's environment; raise with its log on failure."""
        log = self.artifacts / f"{name}.log"
        with log.open("wb") as handle:
            result = subprocess.run(
                argv, env=self.env(), stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                timeout=timeout, check=False, cwd=self.work,
            )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:3])} exited with {result.returncode}:\n{tail(log, 60)}")
        return log.read_text(encoding="utf-8", errors="replace")

    def query(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        """Rows of a query on the metadata DB, as dicts."""
        assert self.engine is not None
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(sqlalchemy.text(sql), params)]

    def wait_dags_parsed(self, dag_ids: tuple[str, ...], timeout: float = 180) -> None:
        """Until the scheduler has serialized every one of ``dag_ids``."""

        def parsed() -> bool:
            rows = self.query("SELECT dag_id FROM serialized_dag WHERE dag_id = ANY(:ids)", ids=list(dag_ids))
            return len(rows) == len(dag_ids)

        wait_for(f"the scheduler to parse {dag_ids}", parsed, timeout=timeout, interval=1.0)

    def trigger(self, runs: dict[str, tuple[str, dict[str, Any]]]) -> None:
        """Create the DAG runs ``dag_id -> (run_id, conf)`` (Airflow's own ``trigger_dag``)."""
        self._run_airflow("trigger", [sys.executable, "-c", TRIGGER_SCRIPT, json.dumps(runs)], timeout=120)

    def failure_report(self, lines: int = 40) -> str:
        """Every process's log tail."""
        return self.registry.failure_report(lines)

    def close(self) -> list[str]:
        """Stop every process group, then PostgreSQL; remove the work dir."""
        report = self.registry.stop_all()
        if self.engine is not None:
            self.engine.dispose()
        if self.postgres is not None:
            report.append(self.postgres.stop_and_remove())
        shutil.rmtree(self.work, ignore_errors=True)
        return report
