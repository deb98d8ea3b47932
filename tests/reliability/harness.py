"""Drive the insert operator the way Airflow does, many times, against a faulty emulator; then audit.

Nothing here replaces package code. A task instance is run try after try, as Airflow's retries
would: same ``dag_id``/``task_id``/``run_id``/``map_index``, a new operator object and a new try
number each time. ``execute`` either returns, fails, or raises ``TaskDeferred``; a deferred task's
trigger is serialized, its kwargs stored the way the metadata DB stores them
(``Trigger.encrypt_kwargs``), re-created from them in a separate "triggerer" event loop that every
deferred task shares (so the coalescing pollers and shared HTTP clients are exercised as in a real
triggerer), and its event serialized with serde and handed to ``resume_execution`` on a fresh
operator object, exactly the entry point the task runner uses.

The audit reads the emulator's own books (machine images, operations, request log) and compares
them with what the tasks reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from airflow_machine_images.api.retry import Budget, RetryPolicy
from airflow_machine_images.hooks import ComputeEngineMachineImageAsyncHook, ComputeEngineMachineImageHook
from airflow_machine_images.operators import ComputeEngineInsertMachineImageOperator

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from airflow.sdk import BaseOperator, Context
    from airflow.triggers.base import BaseTrigger

REPO_ROOT = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------------------------------
# Client settings: short timeouts and backoffs for every hook made while a campaign runs
# --------------------------------------------------------------------------------------------------


#: The emulator's rate-quota window in the campaign (the real one is a minute).
CAMPAIGN_RATE_WINDOW_SECONDS = 2.0


@dataclass(frozen=True)
class ClientSettings:
    """Timeouts and retry policy the campaign's hooks (sync and async) are built with.

    The operator builds its hook, and the trigger its async hook, from their constructors'
    defaults; :func:`client_settings` swaps those defaults (``__init__.__kwdefaults__``) for the
    duration of a campaign, so the operator, the trigger and ``dag.test()`` all use them without any
    change to package code or a test-only subclass.
    """

    connect_timeout: float = 2.0
    read_timeout: float = 1.0
    long_poll_timeout: float = 2.5
    retry_policy: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(
            max_attempts=6,
            initial_backoff=0.05,
            multiplier=2.0,
            max_backoff=0.4,
            max_retry_after=1.0,
            # The campaign's emulator refills its rate quota every CAMPAIGN_RATE_WINDOW_SECONDS and
            # its concurrent operations last fractions of a second: the same budgets, scaled down.
            rate_limit=Budget(0.05, 2.0, 0.4, max_attempts=None, min_total=CAMPAIGN_RATE_WINDOW_SECONDS + 0.5),
            concurrent_operations=Budget(0.1, 2.0, 0.5, max_attempts=None, min_total=10.0, floor_share=0.5),
            not_ready=Budget(0.05, 2.0, 0.2, max_attempts=5),
        )
    )

    def as_kwargs(self) -> dict[str, Any]:
        return {
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            "long_poll_timeout": self.long_poll_timeout,
            "retry_policy": self.retry_policy,
        }


@contextlib.contextmanager
def client_settings(settings: ClientSettings) -> Iterator[None]:
    """Make every hook built inside the block use ``settings`` unless told otherwise."""
    patched = settings.as_kwargs()
    saved: list[tuple[dict[str, Any], dict[str, Any]]] = []
    # The two hooks may share one constructor: save and patch each constructor's defaults once, or the
    # second save would record the patched defaults and the restore would keep them for good.
    constructors = {
        id(cls.__init__): cls for cls in (ComputeEngineMachineImageHook, ComputeEngineMachineImageAsyncHook)
    }
    for cls in constructors.values():
        defaults = cls.__init__.__kwdefaults__
        assert defaults is not None and patched.keys() <= defaults.keys(), (
            f"{cls.__name__}.__init__ no longer takes {sorted(patched.keys() - (defaults or {}).keys())}"
        )
        saved.append((defaults, dict(defaults)))
        defaults.update(patched)
    try:
        probe = ComputeEngineMachineImageHook()
        assert probe.read_timeout == settings.read_timeout and probe.retry_policy is settings.retry_policy
        yield
    finally:
        for defaults, original in saved:
            defaults.clear()
            defaults.update(original)


# --------------------------------------------------------------------------------------------------
# The emulator as a separate process, driven through its CLI and /_emulator control endpoints
# --------------------------------------------------------------------------------------------------


class EmulatorProcess:
    """``python -m airflow_machine_images.emulator`` in its own process group (its own CPU core).

    :param project: the default project.
    :param instances: source instances to create (``ZONE/NAME``).
    :param operation_seconds: how long inserts take.
    :param wait_deadline: the longest ``globalOperations.wait`` long-poll.
    :param seed: the emulator's seed.
    """

    def __init__(
        self,
        *,
        project: str,
        instances: Sequence[str],
        operation_seconds: float,
        wait_deadline: float,
        seed: int,
    ) -> None:
        self._workdir = Path(tempfile.mkdtemp(prefix="ami-emulator-"))
        ready = self._workdir / "url"
        command = [
            sys.executable,
            "-m",
            "airflow_machine_images.emulator",
            "--project",
            project,
            "--operation-seconds",
            str(operation_seconds),
            "--wait-deadline",
            str(wait_deadline),
            "--seed",
            str(seed),
            "--ready-file",
            str(ready),
            "--quiet",
        ]
        for instance in instances:
            command += ["--instance", instance]
        self._stderr = (self._workdir / "stderr").open("wb")
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=self._stderr, start_new_session=True
        )
        deadline = time.monotonic() + 30
        while not ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the emulator did not start: {(self._workdir / 'stderr').read_text()}")
            time.sleep(0.05)
        self.url = ready.read_text().strip()
        self.project = project

    def control(self, method: str, path: str, body: Any = None) -> Any:
        """Call a ``/_emulator/...`` endpoint; return its JSON."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}/_emulator/{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def random_faults(self, **settings: Any) -> None:
        self.control("POST", "faults", {"random": settings})

    def inject(self, **fault: Any) -> None:
        """Queue a scripted fault (``Fault`` fields), used before any random one."""
        self.control("POST", "faults", fault)

    def clear_faults(self) -> None:
        self.control("DELETE", "faults")

    def set_options(self, **options: Any) -> dict[str, Any]:
        """Change the emulator's standing options (quotas, requestId memory, partial lists)."""
        return dict(self.control("PUT", "options", options))

    def forget_request_ids(self) -> None:
        self.control("POST", "forget-request-ids")

    def requests(self) -> list[dict[str, Any]]:
        return list(self.control("GET", "requests"))

    def clear_requests(self) -> None:
        self.control("DELETE", "requests")

    def machine_images(self) -> list[dict[str, Any]]:
        return list(self.control("GET", f"machineImages?project={self.project}"))

    def operations(self) -> list[dict[str, Any]]:
        return list(self.control("GET", f"operations?project={self.project}"))

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._stderr.close()


# --------------------------------------------------------------------------------------------------
# Task instances, tries, the triggerer
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskSpec:
    """One task instance of the campaign and the image it must make."""

    dag_id: str
    task_id: str
    run_id: str
    map_index: int
    name: str
    source_instance: str
    deferrable: bool


@dataclass
class FakeTaskInstance:
    """What the operator reads from ``context["ti"]``: the identity, the try, XCom pushes."""

    dag_id: str
    task_id: str
    run_id: str
    map_index: int
    try_number: int
    xcom: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        json.dumps(value)  # XCom values must be JSON-serialisable
        self.xcom[key] = value


def context_of(ti: FakeTaskInstance) -> Context:
    """The part of a task's context the operator reads (its task instance), typed as a ``Context``."""
    return cast("Context", {"ti": ti, "task_instance": ti, "run_id": ti.run_id, "try_number": ti.try_number})


@dataclass
class TryRecord:
    """One try of a task instance: how it ended, and how many times it deferred."""

    try_number: int
    outcome: str  # "success" | "failed" | "failed-no-retry"
    error_type: str | None = None
    error: str | None = None
    deferrals: int = 0


@dataclass
class TaskOutcome:
    """Everything a task instance did, try by try."""

    spec: TaskSpec
    tries: list[TryRecord] = field(default_factory=list)
    result: dict[str, Any] | None = None
    xcom: dict[str, Any] = field(default_factory=dict)
    trigger_kwargs: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.result is not None

    @property
    def final_error(self) -> str | None:
        return None if self.succeeded or not self.tries else self.tries[-1].error


class TriggerFailed(Exception):
    """The trigger raised instead of yielding an event (the triggerer would fail the task)."""


class Triggerer:
    """One event loop in one thread that runs every deferred task's trigger, like a triggerer."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="triggerer", daemon=True)
        self._thread.start()
        self.ran = 0

    def run(self, classpath: str, stored_kwargs: str, timeout: float | None) -> dict[str, Any]:
        """Re-create a trigger from its stored kwargs, run it to the end; return its first event's payload."""
        future = asyncio.run_coroutine_threadsafe(self._run(classpath, stored_kwargs, timeout), self.loop)
        return future.result()

    async def _run(self, classpath: str, stored_kwargs: str, timeout: float | None) -> dict[str, Any]:
        from airflow.models.trigger import Trigger
        from airflow.sdk._shared.module_loading import import_string

        self.ran += 1
        trigger: BaseTrigger = import_string(classpath)(**Trigger._decrypt_kwargs(stored_kwargs))
        events: list[Any] = []

        async def consume() -> None:
            try:
                async for event in trigger.run():
                    events.append(event)
            finally:
                with contextlib.suppress(Exception):
                    await trigger.cleanup()

        try:
            await asyncio.wait_for(consume(), timeout)
        except asyncio.TimeoutError:
            raise TriggerFailed("trigger_timeout") from None
        except Exception as error:
            raise TriggerFailed(f"{type(error).__name__}: {error}\n{traceback.format_exc()}") from error
        if not events:
            raise TriggerFailed("the trigger ended without an event")
        return dict(events[0].payload)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


def run_task_instance(
    spec: TaskSpec,
    make_operator: Callable[[TaskSpec], BaseOperator],
    triggerer: Triggerer,
    *,
    retries: int,
    first_try: int = 1,
) -> TaskOutcome:
    """Run one task instance try after try, until it succeeds, fails for good, or runs out of tries.

    ``first_try`` > 1 continues a task instance that already ran (a retry, or a cleared task).
    """
    from airflow.models.trigger import Trigger
    from airflow.sdk.exceptions import AirflowFailException, TaskDeferred
    from airflow.sdk.serde import deserialize, serialize

    outcome = TaskOutcome(spec)
    for try_number in range(first_try, first_try + retries + 1):
        ti = FakeTaskInstance(spec.dag_id, spec.task_id, spec.run_id, spec.map_index, try_number)
        context = context_of(ti)
        record = TryRecord(try_number, "success")
        outcome.tries.append(record)
        operator = make_operator(spec)
        try:
            try:
                result = operator.execute(context)
            except TaskDeferred as deferred:
                result = None
                while True:
                    record.deferrals += 1
                    classpath, kwargs = deferred.trigger.serialize()
                    stored = Trigger.encrypt_kwargs(kwargs)
                    outcome.trigger_kwargs.append(json.dumps(Trigger._decrypt_kwargs(stored)))
                    timeout = deferred.timeout.total_seconds() if isinstance(deferred.timeout, timedelta) else None
                    operator = make_operator(spec)  # the task resumes on a (possibly other) worker
                    next_kwargs: dict[str, Any]
                    try:
                        payload = triggerer.run(classpath, stored, timeout)
                    except TriggerFailed as failure:
                        next_method, next_kwargs = "__fail__", {"error": str(failure)}
                    else:
                        next_method = deferred.method_name
                        next_kwargs = cast(
                            "dict[str, Any]", deserialize(serialize({**(deferred.kwargs or {}), "event": payload}))
                        )
                    try:
                        result = operator.resume_execution(next_method, next_kwargs, context)
                        break
                    except TaskDeferred as again:
                        deferred = again
        except AirflowFailException as error:
            record.outcome, record.error_type, record.error = "failed-no-retry", type(error).__name__, str(error)
            break
        except Exception as error:
            record.outcome, record.error_type, record.error = "failed", type(error).__name__, str(error)
            continue
        finally:
            outcome.xcom.update(ti.xcom)
        json.dumps(result)
        outcome.result = result
        if result is not None:
            outcome.xcom["return_value"] = result
        break
    return outcome


def run_campaign(
    specs: Sequence[TaskSpec],
    make_operator: Callable[[TaskSpec], BaseOperator],
    *,
    retries: int,
    workers: int,
    first_try: int = 1,
) -> tuple[list[TaskOutcome], float]:
    """Run every task instance (``workers`` at a time); return their outcomes and the wall time."""
    triggerer = Triggerer()
    started = time.monotonic()

    def one(spec: TaskSpec) -> TaskOutcome:
        return run_task_instance(spec, make_operator, triggerer, retries=retries, first_try=first_try)

    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="worker") as pool:
            outcomes = list(pool.map(one, specs))
    finally:
        triggerer.close()
    return outcomes, time.monotonic() - started


# --------------------------------------------------------------------------------------------------
# The audit
# --------------------------------------------------------------------------------------------------

#: What a failure message must say for the failure to count as explained, and the faults behind it.
CAUSES: tuple[tuple[str, re.Pattern[str], frozenset[str]], ...] = (
    (
        "operation failed on the server",
        re.compile(r"Operation \S+ (?:on [\w ./-]+ )?failed"),
        frozenset({"operation_error"}),
    ),
    ("HTTP 429/5xx after every retry", re.compile(r"HTTP (429|500|502|503|504)\b"), frozenset({"status"})),
    (
        "rate or concurrent-operations quota after every retry",
        re.compile(r"HTTP 403 rateLimitExceeded"),
        frozenset({"rate_limit", "concurrent_operations", "rate_quota", "concurrent_operations_limit"}),
    ),
    (
        "connection dropped after every retry",
        re.compile(r"RemoteDisconnected|ServerDisconnected|Server disconnected|Connection aborted|ConnectionReset"),
        frozenset({"drop", "accept_then_drop"}),
    ),
    (
        "no answer within the client timeout after every retry",
        re.compile(r"ReadTimeout|TimeoutError|timed out|Timeout"),
        frozenset({"slow"}),
    ),
)
#: A failure message must also name the call or the resource it concerns.
NAMES_THE_CALL = re.compile(r"machineImages\.\w+|globalOperations\.\w+|Operation operation-|[Mm]achine image ")


def classify(message: str | None) -> str | None:
    """The cause a failure message names, or None if it names none we know."""
    if not message or not NAMES_THE_CALL.search(message):
        return None
    for cause, pattern, _ in CAUSES:
        if pattern.search(message):
            return cause
    return None


@dataclass
class CampaignReport:
    """The campaign's figures."""

    label: str
    creations: int
    blocking: int
    deferrable: int
    succeeded: int
    failed: int
    duplicates: list[str]
    lost: list[str]
    unexplained: list[str]
    failures_by_cause: dict[str, int]
    requests: int
    faulted_requests: int
    faults_by_kind: dict[str, int]
    faults_by_action: dict[str, int]
    tries_histogram: dict[int, int]
    successes_by_path: dict[str, int]
    insert_operations: int
    request_id_forgotten: int
    seconds: float

    @property
    def fault_rate(self) -> float:
        return self.faulted_requests / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["fault_rate"] = round(self.fault_rate, 4)
        return data

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.faults_by_kind.items()))
        causes = ", ".join(f"{k}: {v}" for k, v in sorted(self.failures_by_cause.items())) or "none"
        paths = ", ".join(f"{k} {v}" for k, v in sorted(self.successes_by_path.items()))
        tries = ", ".join(f"{k}: {v}" for k, v in sorted(self.tries_histogram.items()))
        return (
            f"[{self.label}] {self.creations} creations ({self.blocking} blocking, {self.deferrable} deferrable) "
            f"in {self.seconds:.1f} s: {self.succeeded} succeeded, {self.failed} failed; "
            f"duplicates {len(self.duplicates)}, lost {len(self.lost)}, unexplained {len(self.unexplained)}\n"
            f"  API requests {self.requests}, faulted {self.faulted_requests} ({self.fault_rate:.1%}): {kinds}\n"
            f"  failures by cause: {causes}\n"
            f"  successes by path: {paths}; tries per task: {tries}; insert operations {self.insert_operations}; "
            f"requestId memory wiped {self.request_id_forgotten} times"
        )


def insert_operator(
    spec: TaskSpec, *, timeout: float, retries: int, poll_interval: float = 0.2
) -> ComputeEngineInsertMachineImageOperator:
    """The insert operator a campaign task runs: the spec's name, source and mode, no retry delay.

    :param spec: the task.
    :param timeout: the operator's wait timeout (seconds).
    :param retries: Airflow retries of the task.
    :param poll_interval: the operator's poll interval (seconds).
    """
    return ComputeEngineInsertMachineImageOperator(
        task_id=spec.task_id,
        name=spec.name,
        source_instance=spec.source_instance,
        deferrable=spec.deferrable,
        poll_interval=poll_interval,
        timeout=timeout,
        retries=retries,
        retry_delay=timedelta(0),
    )


def audit(
    label: str,
    outcomes: Sequence[TaskOutcome],
    *,
    images: Sequence[Mapping[str, Any]],
    operations: Sequence[Mapping[str, Any]],
    requests: Sequence[Mapping[str, Any]],
    seconds: float,
    request_id_forgotten: int = 0,
) -> CampaignReport:
    """Compare the tasks' reports with the server's books.

    * duplicates: an image nobody asked for, a second image for a task (by name or by a second
      successful insert operation targeting it), or a requestId behind more than one successful insert;
    * lost: an image on the server whose task reports failure;
    * unexplained: a failed task whose message names no known cause and call, or names a cause
      whose fault was never injected, or a successful task whose result disagrees with the server.
    """
    by_name = {o.spec.name: o for o in outcomes}
    image_names = Counter(str(i["name"]) for i in images)
    images_by_name = {str(i["name"]): i for i in images}
    inserts = [op for op in operations if op.get("operationType") == "insert"]
    good_inserts = [op for op in inserts if op.get("status") == "DONE" and not op.get("error")]
    duplicates: list[str] = []
    duplicates += [f"image {n} was made by no task" for n in image_names if n not in by_name]
    duplicates += [f"{n}: {c} images" for n, c in image_names.items() if c > 1]
    per_target = Counter(str(op.get("targetLink", "")).rsplit("/", 1)[-1] for op in good_inserts)
    duplicates += [f"{n}: {c} successful insert operations" for n, c in per_target.items() if c > 1]
    per_request_id = Counter(str(op.get("clientOperationId")) for op in good_inserts)
    duplicates += [f"requestId {r}: {c} successful inserts" for r, c in per_request_id.items() if c > 1]
    unfinished = [op["name"] for op in operations if op.get("status") != "DONE"]
    assert not unfinished, f"audit before every operation finished: {unfinished[:3]}"

    lost = [name for name, o in by_name.items() if not o.succeeded and name in images_by_name]
    kinds_seen = Counter(str(r["fault"]) for r in requests if r.get("fault"))
    unexplained: list[str] = []
    failures_by_cause: Counter[str] = Counter()
    successes_by_path: Counter[str] = Counter()
    for name, o in by_name.items():
        if o.succeeded:
            assert o.result is not None
            image = images_by_name.get(name)
            problems = []
            if image is None or image.get("status") != "READY":
                problems.append(f"server has {image and image.get('status')}")
            if o.result.get("status") != "READY" or o.result.get("name") != name:
                problems.append(f"result says {o.result.get('name')} {o.result.get('status')}")
            if image is not None and o.result.get("self_link") != image.get("selfLink"):
                problems.append("self link differs")
            if problems:
                unexplained.append(f"{name} succeeded but {', '.join(problems)}")
            successes_by_path["name-based reuse (409)" if o.result.get("reused") else "own requestId"] += 1
            continue
        cause = classify(o.final_error)
        kinds = next((k for c, _, k in CAUSES if c == cause), frozenset())
        if cause is None or not kinds & kinds_seen.keys():
            unexplained.append(f"{name}: {o.tries[-1].error_type}: {o.final_error}")
            failures_by_cause["unexplained"] += 1
        else:
            failures_by_cause[cause] += 1
    faulted = [r for r in requests if r.get("fault")]
    return CampaignReport(
        label=label,
        creations=len(outcomes),
        blocking=sum(1 for o in outcomes if not o.spec.deferrable),
        deferrable=sum(1 for o in outcomes if o.spec.deferrable),
        succeeded=sum(1 for o in outcomes if o.succeeded),
        failed=sum(1 for o in outcomes if not o.succeeded),
        duplicates=duplicates,
        lost=lost,
        unexplained=unexplained,
        failures_by_cause=dict(failures_by_cause),
        requests=len(requests),
        faulted_requests=len(faulted),
        faults_by_kind=dict(kinds_seen),
        faults_by_action=dict(Counter(str(r["action"]) for r in faulted)),
        tries_histogram=dict(sorted(Counter(len(o.tries) for o in outcomes).items())),
        successes_by_path=dict(successes_by_path),
        insert_operations=len(inserts),
        request_id_forgotten=request_id_forgotten,
        seconds=seconds,
    )


def wait_until_settled(emulator: EmulatorProcess, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Wait until every operation is DONE (failed inserts have removed their images); return them."""
    deadline = time.monotonic() + timeout
    while True:
        operations = emulator.operations()
        if all(op.get("status") == "DONE" for op in operations) or time.monotonic() > deadline:
            return operations
        time.sleep(0.2)


def settle_and_audit(
    emulator: EmulatorProcess,
    label: str,
    outcomes: Sequence[TaskOutcome],
    *,
    seconds: float,
    request_id_forgotten: int = 0,
) -> tuple[CampaignReport, list[dict[str, Any]]]:
    """Stop the faults, let every operation finish, audit the outcomes against the server and keep the report.

    :param emulator: the campaign's emulator.
    :param label: names the campaign in the summary.
    :param outcomes: what the tasks reported.
    :param seconds: how long the campaign ran.
    :param request_id_forgotten: how often the server's requestId memory was wiped.
    :return: the report and the settled operations.
    """
    emulator.clear_faults()
    emulator.set_options(**OPTIONS_OFF)
    operations = wait_until_settled(emulator)
    report = audit(
        label,
        outcomes,
        images=emulator.machine_images(),
        operations=operations,
        requests=emulator.requests(),
        seconds=seconds,
        request_id_forgotten=request_id_forgotten,
    )
    write_report(report)
    return report, operations


#: The emulator's standing options with every quota and partial listing off.
OPTIONS_OFF: dict[str, Any] = {
    "rate_quota_per_minute": None,
    "concurrent_operations_limit": None,
    "partial_list_fraction": 0.0,
}

#: Summaries of the campaigns run in this session (printed at the end by ``conftest.py``).
SUMMARIES: list[str] = []


def write_report(report: CampaignReport) -> None:
    """Keep the figures for the end-of-session summary; also append them as JSON to ``$RELIABILITY_REPORT``."""
    SUMMARIES.append(report.summary())
    target = os.environ.get("RELIABILITY_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(report.as_dict(), sort_keys=True) + "\n")
