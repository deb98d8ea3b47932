"""The e2e stack: PostgreSQL, the Compute Engine emulator and a multi-process Airflow 3, all on loopback."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.e2e.broker import start_redis
from tests.e2e.identity import HOSTNAME_VARIABLE
from tests.e2e.metrics import MemorySampler, Summary
from tests.e2e.net import free_port, wait_for
from tests.e2e.postgres import PostgresCluster
from tests.e2e.processes import ManagedProcess, ProcessRegistry, tail
from tests.e2e.rest import AirflowApi, EmulatorControl

if TYPE_CHECKING:
    from collections.abc import Iterable

REPO_ROOT = Path(__file__).resolve().parents[2]
E2E_DIR = Path(__file__).resolve().parent
PROJECT = "demo-project"
#: The nightly-backup example's default fleet: its scheduled run (made when the DAG is unpaused) backs these up.
EXAMPLE_FLEET = ("us-central1-a/web-1", "us-central1-a/web-2", "us-east1-b/db-1")
#: Each case backs up its own three instances, so its images are told apart from every other run's
#: (the example names images INSTANCE-YYYYMMDD: two runs of one day over one fleet would share them).
CASE_INSTANCES = {
    case: (f"us-central1-a/web-{case}", f"us-central1-b/app-{case}", f"us-east1-b/db-{case}") for case in "abc"
}
#: Case (b)'s instances are added at run time with slower images (see test_b), not at start.
SLOW_CASES = frozenset({"b"})
#: Source instances the emulator starts with.
INSTANCES = EXAMPLE_FLEET + tuple(
    i for case in sorted(CASE_INSTANCES) if case not in SLOW_CASES for i in CASE_INSTANCES[case]
)
#: How long the emulator takes to make an image: long enough that tasks are visibly DEFERRED.
OPERATION_SECONDS = 25.0
#: Airflow components started as separate processes, in start order (then the triggerers, then any
#: Celery workers).
COMPONENTS = ("api-server", "scheduler", "dag-processor")
CELERY_EXECUTOR = "CeleryExecutor"
#: Seconds to wait for health (2 cores, cold start: ~20-40 s measured).
HEALTH_TIMEOUT = 240.0


@dataclass
class StackConfig:
    """Knobs of the stack (defaults: what the e2e suite uses)."""

    dag_ids: tuple[str, ...]
    instances: tuple[str, ...] = INSTANCES
    operation_seconds: float = OPERATION_SECONDS
    parallelism: int = 4
    extra_airflow_env: dict[str, str] = field(default_factory=dict)
    #: ``LocalExecutor`` (tasks run under the scheduler) or ``CeleryExecutor`` (a private Redis as
    #: the broker, the metadata DB as the result backend, ``celery_workers`` workers).
    executor: str = "LocalExecutor"
    #: Triggerer processes; ``[machine_images] triggerers`` is set to this number.
    triggerers: int = 1
    #: Celery workers (CeleryExecutor only), each with its own AIRFLOW_HOME, working directory, task
    #: log folder and host name (``worker-N``, what its task instances record as ``hostname``).
    celery_workers: int = 0
    #: Task slots per Celery worker (``airflow celery worker --concurrency``).
    celery_concurrency: int = 2
    #: More DAG files copied into the DAGs folder before anything starts (e.g. the benchmarks' own).
    extra_dags: tuple[Path, ...] = ()

    @property
    def celery(self) -> bool:
        """Whether the stack runs the CeleryExecutor."""
        return self.executor == CELERY_EXECUTOR

    @property
    def triggerer_names(self) -> tuple[str, ...]:
        """The triggerers' component names: ``triggerer`` alone, else ``triggerer-1`` ... ``triggerer-N``."""
        if self.triggerers == 1:
            return ("triggerer",)
        return tuple(f"triggerer-{n}" for n in range(1, self.triggerers + 1))

    @property
    def worker_names(self) -> tuple[str, ...]:
        """The Celery workers' names (also their host names): ``worker-1`` ... ``worker-N``."""
        return tuple(f"worker-{n}" for n in range(1, self.celery_workers + 1)) if self.celery else ()


def python() -> str:
    """The interpreter running the tests (the project's venv)."""
    return sys.executable


def airflow_executable() -> str:
    """The ``airflow`` entry point next to the interpreter."""
    candidate = Path(sys.executable).with_name("airflow")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("airflow")
    if not found:
        raise RuntimeError(f"no `airflow` executable next to {sys.executable} or on PATH")
    return found


def base_env() -> dict[str, str]:
    """The test process's environment minus anything Airflow or Google (the unit-test conftest sets some)."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "GOOGLE_", "PYTEST_"))
        and key not in {"_AIRFLOW_PARSING_CONTEXT_DAG_ID", "_AIRFLOW_PARSING_CONTEXT_TASK_ID"}
    }


class Stack:
    """Starts, watches and stops everything. Use :meth:`start` then :meth:`close` (always)."""

    def __init__(self, config: StackConfig, artifacts: Path, summary: Summary) -> None:
        """:param config: the knobs. :param artifacts: where logs go. :param summary: what we report."""
        self.config = config
        self.artifacts = artifacts
        self.summary = summary
        self.registry = ProcessRegistry()
        self.work = Path(tempfile.mkdtemp(prefix="ami-e2e-"))
        self.airflow_home = self.work / "airflow-home"
        self.dags_folder = self.work / "dags"
        self.postgres: PostgresCluster | None = None
        self.emulator_process: ManagedProcess | None = None
        self.emulator_url = ""
        self.api_port = 0
        self.api: AirflowApi | None = None
        self.emulator: EmulatorControl | None = None
        self.airflow: dict[str, ManagedProcess] = {}
        self.sampler = MemorySampler(self._groups)
        self._closed = False
        self._triggerer_generation = 1
        self.log_ports = (free_port(), free_port())
        self.redis_port = 0
        #: Each triggerer's own trigger log server port (two on one host cannot share one).
        self.triggerer_log_ports = {
            name: self.log_ports[1] if n == 0 else free_port() for n, name in enumerate(config.triggerer_names)
        }

    # ------------------------------------------------------------------ start

    def start(self) -> None:
        """Bring everything up; raise with every log tail if anything fails to become healthy."""
        started = time.monotonic()
        marks: dict[str, float] = {}
        self.sampler.start()
        self._prepare_dirs()
        self.postgres = PostgresCluster.create(self.artifacts / "postgres.log")
        marks["postgres"] = time.monotonic() - started
        if self.config.celery:
            _, self.redis_port = start_redis(
                self.registry, self.work / "redis", self.artifacts / "redis.log", base_env()
            )
            marks["redis"] = time.monotonic() - started - sum(marks.values())
        self._start_emulator()
        self.api_port = free_port()
        self.api = AirflowApi(f"http://127.0.0.1:{self.api_port}")
        self._migrate()
        marks["emulator + db migrate"] = time.monotonic() - started - sum(marks.values())
        for component in COMPONENTS:
            self._start_component(component)
        for name in self.config.triggerer_names:
            self._start_triggerer(name)
        for name in self.config.worker_names:
            self._start_worker(name)
        self._wait_healthy()
        if self.config.triggerers > 1:
            self._wait_triggerers_alive()
        for name in self.config.worker_names:
            self._wait_worker_ready(name)
        marks["airflow healthy"] = time.monotonic() - started - sum(marks.values())
        self._wait_dags_parsed(self.config.dag_ids)
        for dag_id in self.config.dag_ids:
            self.api.patch(f"/dags/{dag_id}", {"is_paused": False})
        marks["DAGs parsed"] = time.monotonic() - started - sum(marks.values())
        self.summary.stack_start_seconds = round(time.monotonic() - started, 1)
        self.summary.stack_start_breakdown = {k: round(v, 1) for k, v in marks.items()}

    def _prepare_dirs(self) -> None:
        """AIRFLOW_HOME, the DAGs folder (example DAGs + e2e DAGs copied in) and the task log folder."""
        self.airflow_home.mkdir(parents=True)
        self.dags_folder.mkdir()
        (self.artifacts / "task-logs").mkdir(parents=True, exist_ok=True)
        for source in [
            *sorted((REPO_ROOT / "example_dags").glob("*.py")),
            *sorted((E2E_DIR / "dags").glob("*.py")),
            *self.config.extra_dags,
        ]:
            shutil.copy(source, self.dags_folder / source.name)

    def _start_emulator(self) -> None:
        """Start the emulator process; read its URL from the ready file (or its first stdout line)."""
        ready = self.work / "emulator.url"
        argv = [python(), "-m", "airflow_machine_images.emulator", "--port", "0", "--project", PROJECT]
        for instance in self.config.instances:
            argv += ["--instance", instance]
        argv += ["--operation-seconds", str(self.config.operation_seconds), "--ready-file", str(ready)]
        env = base_env() | {"PYTHONPATH": str(REPO_ROOT)}
        process = self.registry.start(
            "emulator", argv, env=env, log_path=self.artifacts / "emulator.log", cwd=REPO_ROOT
        )
        self.emulator_process = process

        def probe() -> str | None:
            if not process.running():
                raise RuntimeError(f"the emulator exited at start:\n{process.describe()}")
            return ready.read_text().strip() if ready.exists() else None

        self.emulator_url = wait_for("the emulator's ready file", probe, timeout=60, interval=0.2)
        self.emulator = EmulatorControl(self.emulator_url, PROJECT)
        wait_for("the emulator's health endpoint", self.emulator.health, timeout=30, interval=0.2)

    def airflow_env(self) -> dict[str, str]:
        """The environment of every Airflow process (see shared/AIRFLOW_NOTES.md)."""
        assert self.postgres is not None
        connection = {
            "conn_type": "google_cloud_platform",
            "extra": {"project": PROJECT, "is_anonymous": True, "compute_api_endpoint": self.emulator_url},
        }
        env = base_env() | {
            "AIRFLOW_HOME": str(self.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": self.config.executor,
            "AIRFLOW__CORE__PARALLELISM": str(self.config.parallelism),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
            # Paused at creation, then the DAGs the cases use are unpaused through the API: the other
            # example DAGs (scheduled, asset-triggered) must not make images while the cases count them.
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.postgres.sqlalchemy_url,
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.artifacts / "task-logs"),
            # The log servers default to fixed ports (8793, 8794): free ones let two stacks run side by side.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.log_ports[0]),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.log_ports[1]),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.api_port}",
            "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": json.dumps(connection),
            # The package under test is imported from the checkout (it is also installed in the venv).
            "PYTHONPATH": str(REPO_ROOT),
            # Every triggerer takes total // triggerers of each project's request budget.
            "AIRFLOW__MACHINE_IMAGES__TRIGGERERS": str(self.config.triggerers),
        }
        if self.config.celery:
            env |= {
                "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.postgres.sqlalchemy_url.replace("+psycopg2", ""),
            }
        return env | self.config.extra_airflow_env

    def _migrate(self) -> None:
        """``airflow db migrate`` (also writes the shared JWT secret into AIRFLOW_HOME/airflow.cfg)."""
        log = self.artifacts / "db-migrate.log"
        with log.open("wb") as handle:
            result = subprocess.run(
                [airflow_executable(), "db", "migrate"],
                env=self.airflow_env(),
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=300,
                check=False,
            )
        if result.returncode != 0:
            raise RuntimeError(f"`airflow db migrate` exited with {result.returncode}:\n{tail(log, 60)}")

    def _start_component(
        self,
        component: str,
        log_name: str | None = None,
        *,
        key: str | None = None,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> ManagedProcess:
        """Start ``airflow <component> [args]`` in its own process group.

        :param component: the CLI command (``scheduler``, ``triggerer``, ``celery`` ...).
        :param log_name: its log file's name (default: ``key``).
        :param key: its name in :attr:`airflow` (default: ``component``).
        :param args: more CLI arguments.
        :param env: its environment (default: :meth:`airflow_env`).
        :param cwd: its working directory (default: the stack's).
        """
        argv = [airflow_executable(), component, *args]
        if component == "api-server":
            argv += ["--port", str(self.api_port), "--host", "127.0.0.1"]
        key = key or component
        name = log_name or key
        process = self.registry.start(
            name,
            argv,
            env=env if env is not None else self.airflow_env(),
            log_path=self.artifacts / f"{name}.log",
            cwd=cwd or self.work,
        )
        self.airflow[key] = process
        return process

    def _start_triggerer(self, name: str, log_name: str | None = None) -> ManagedProcess:
        """Start triggerer ``name`` (``triggerer`` or ``triggerer-N``), with its own trigger log server port."""
        env = self.airflow_env() | {"AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.triggerer_log_ports[name])}
        if self.config.triggerers > 1:  # its TriggererJob's hostname tells it apart from the others
            env |= {"AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.e2e.identity.hostname", HOSTNAME_VARIABLE: name}
        return self._start_component("triggerer", log_name, key=name, env=env)

    def worker_dir(self, name: str) -> Path:
        """A Celery worker's working directory (its AIRFLOW_HOME is ``home`` inside)."""
        return self.work / name

    def worker_task_logs(self, name: str) -> Path:
        """Where a Celery worker writes its task logs (kept with the artifacts)."""
        return self.artifacts / name / "task-logs"

    def _start_worker(self, name: str) -> ManagedProcess:
        """Start ``airflow celery worker`` ``name``: own AIRFLOW_HOME (a copy of the migrated airflow.cfg,
        with the shared JWT secret), working directory, task log folder, and host name ``name``.
        """
        home = self.worker_dir(name) / "home"
        home.mkdir(parents=True)
        shutil.copy(self.airflow_home / "airflow.cfg", home / "airflow.cfg")
        self.worker_task_logs(name).mkdir(parents=True, exist_ok=True)
        env = self.airflow_env() | {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.worker_task_logs(name)),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.e2e.identity.hostname",
            HOSTNAME_VARIABLE: name,
        }
        args = (
            "worker",
            "--concurrency", str(self.config.celery_concurrency),
            "--celery-hostname", f"{name}@%h",
            "--skip-serve-logs",
            "--without-gossip",
            "--without-mingle",
        )  # fmt: skip
        return self._start_component("celery", key=name, args=args, env=env, cwd=self.worker_dir(name))

    def _check_alive(self) -> None:
        """Raise with the log tail of any Airflow component that has exited."""
        dead = [p for p in self.airflow.values() if not p.running() and p.stop_outcome is None]
        if dead:
            raise RuntimeError("Airflow component(s) exited:\n" + "\n".join(p.describe(60) for p in dead))

    def _wait_healthy(self) -> None:
        """Wait for ``/api/v2/monitor/health``: metadatabase, scheduler, triggerer, dag_processor healthy."""
        assert self.api is not None
        api = self.api

        def probe() -> dict[str, Any] | None:
            self._check_alive()
            health = api.health()
            statuses = {name: (health.get(name) or {}).get("status") for name in _HEALTH_PARTS}
            return health if all(status == "healthy" for status in statuses.values()) else None

        wait_for(
            "Airflow health (scheduler, triggerer, dag_processor)",
            probe,
            timeout=HEALTH_TIMEOUT,
            interval=1.0,
            on_timeout=self.registry.failure_report,
        )

    def alive_triggerer_jobs(self) -> list[dict[str, Any]]:
        """The TriggererJobs in state ``running`` (a SIGKILLed one stays ``running`` until it is found dead)."""
        assert self.api is not None
        return [job for job in self.api.triggerer_jobs() if job.get("state") == "running"]

    def _wait_triggerers_alive(self) -> None:
        """Wait until every triggerer has registered its job."""

        def probe() -> bool:
            self._check_alive()
            return len(self.alive_triggerer_jobs()) >= self.config.triggerers

        wait_for(
            f"{self.config.triggerers} triggerer jobs",
            probe,
            timeout=HEALTH_TIMEOUT,
            interval=1.0,
            on_timeout=self.registry.failure_report,
        )

    def _wait_worker_ready(self, name: str) -> None:
        """Wait until Celery worker ``name`` logs that it is ready (connected to the broker, consuming)."""
        process = self.airflow[name]

        def probe() -> bool:
            self._check_alive()
            return f"{name}@" in (text := tail(process.log_path, 200)) and " ready." in text

        wait_for(f"Celery {name} ready", probe, timeout=HEALTH_TIMEOUT, interval=1.0, on_timeout=process.describe)

    def _wait_dags_parsed(self, dag_ids: Iterable[str]) -> None:
        """Wait until every needed DAG is serialized (visible in the REST API).

        An import error in one of the suite's own DAG files fails at once. One in an example DAG the
        cases do not need (another issue's work in progress) is kept as a note in the summary; if a
        needed DAG never appears, the timeout message lists every import error.
        """
        assert self.api is not None
        api = self.api
        wanted = set(dag_ids)
        suite_files = {p.name for p in (E2E_DIR / "dags").glob("*.py")}
        errors: list[dict[str, Any]] = []

        def describe_errors(found: list[dict[str, Any]]) -> str:
            return "\n\n".join(f"{e.get('filename')}:\n{e.get('stack_trace')}" for e in found)

        def probe() -> bool:
            self._check_alive()
            errors[:] = api.get("/importErrors", limit=100)["import_errors"]
            ours = [e for e in errors if Path(str(e.get("filename", ""))).name in suite_files]
            if ours:
                raise AssertionError("import errors in the e2e DAGs:\n" + describe_errors(ours))
            found = {d["dag_id"] for d in api.get("/dags", limit=1000)["dags"]}
            return wanted <= found

        wait_for(
            f"DAGs {sorted(wanted)} to be parsed",
            probe,
            timeout=180,
            interval=1.0,
            on_timeout=lambda: f"import errors: {describe_errors(errors) or 'none'}\n{self.registry.failure_report()}",
        )
        self.summary.notes.extend(
            f"import error in {Path(str(e.get('filename'))).name} (not needed by the cases): "
            f"{str(e.get('stack_trace', '')).strip().splitlines()[-1:]}"
            for e in errors
        )

    # ------------------------------------------------------------------ during the cases

    @property
    def triggerer(self) -> ManagedProcess:
        """The current triggerer process."""
        return self.airflow["triggerer"]

    def kill_triggerer(self, name: str = "triggerer") -> int:
        """SIGKILL a triggerer's whole process group (a crash: no clean shutdown). :return: its pid."""
        process = self.airflow[name]
        self.registry.kill_hard(process)
        return process.pid

    def kill_worker(self, name: str) -> list[int]:
        """SIGKILL Celery worker ``name`` with every process below it (a lost machine).

        :return: the process groups killed (the worker's, then each task runner's own).
        """
        return self.registry.kill_tree(self.airflow[name])

    def start_new_triggerer(self) -> ManagedProcess:
        """Start a replacement triggerer (log ``triggerer-N.log``)."""
        self._triggerer_generation += 1
        return self._start_component("triggerer", log_name=f"triggerer-{self._triggerer_generation}")

    # ------------------------------------------------------------------ stop

    def _groups(self) -> dict[int, str]:
        groups = self.registry.groups()
        if self.postgres is not None:
            pgid = self.postgres.postmaster_pgid()
            if pgid is not None:
                groups[pgid] = "postgres"
        return groups

    def failure_report(self, lines: int = 40) -> str:
        """Every process's log tail (and the PostgreSQL log), for a failing test."""
        report = self.registry.failure_report(lines)
        if self.postgres is not None:
            report += f"\n--- postgres, log {self.postgres.log_path}:\n{self.postgres.log_tail(lines // 2)}"
        return report

    def close(self) -> None:
        """Stop everything the harness started (idempotent), remove temp dirs, record memory."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self.sampler.stop()
        self.summary.take_memory(self.sampler)
        self.summary.shutdown.extend(self.registry.stop_all())
        if self.postgres is not None:
            try:
                self.summary.shutdown.append(self.postgres.stop_and_remove())
            except Exception as exc:
                self.summary.shutdown.append(f"postgres: stop failed: {exc!r}")
        shutil.rmtree(self.work, ignore_errors=True)


_HEALTH_PARTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
