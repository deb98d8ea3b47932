"""Watching DAG runs through the REST API, and the checks every e2e case shares."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tests.e2e.metrics import RetryRecord
from tests.e2e.processes import tail

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

    from tests.e2e.rest import AirflowApi, EmulatorControl

#: DAG run states after which nothing changes any more.
FINISHED_RUN_STATES = frozenset({"success", "failed"})
#: The audit-log event the scheduler writes when it hits apache/airflow#67287: the executor's "success"
#: for a deferred task's exit arrives after the trigger fired and the TI was queued (or already running)
#: again: "finished with state success, but the task instance's state attribute is queued|running".
#: The scheduler then fails that try; ``retries=1`` gives the task its second try.
RACE_EVENT = "state mismatch"

TiKey = tuple[str, int]


def ti_key(ti: dict[str, Any]) -> TiKey:
    """``(task_id, map_index)`` of a task instance JSON."""
    return str(ti["task_id"]), int(ti["map_index"])


def ti_label(key: TiKey) -> str:
    """``task`` or ``task[map_index]``."""
    return key[0] if key[1] < 0 else f"{key[0]}[{key[1]}]"


@dataclass
class Sample:
    """One poll of a running DAG run: the TI states and the default pool's slot counts at that moment."""

    at: float
    states: dict[TiKey, str | None]
    triggerer_ids: dict[TiKey, int | None]
    pool: dict[str, Any]
    #: running / queued / deferred task instances of every DAG run (not only this one) at that poll.
    everywhere: dict[str, int] = field(default_factory=dict)


@dataclass
class RunObservation:
    """A DAG run watched from trigger to end."""

    dag_id: str
    run_id: str
    started: float
    samples: list[Sample] = field(default_factory=list)
    seen_states: dict[TiKey, list[str]] = field(default_factory=dict)
    final_state: str | None = None
    final_tis: list[dict[str, Any]] = field(default_factory=list)
    finished: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def record(self, sample: Sample) -> None:
        """Keep a sample and the distinct states each TI went through, in order."""
        self.samples.append(sample)
        for key, state in sample.states.items():
            history = self.seen_states.setdefault(key, [])
            if state is not None and (not history or history[-1] != state):
                history.append(state)

    def ever_seen(self, key: TiKey, state: str) -> bool:
        """Whether a TI was seen in ``state`` at some poll."""
        return state in self.seen_states.get(key, [])

    @property
    def seconds(self) -> float:
        """Trigger to end of the run."""
        return (self.finished or time.monotonic()) - self.started

    def state_history(self) -> str:
        """Each TI's observed states, one line each (for failure messages)."""
        return "\n".join(f"  {ti_label(k)}: {' -> '.join(v)}" for k, v in sorted(self.seen_states.items()))


def trigger_run(api: AirflowApi, dag_id: str, conf: dict[str, Any]) -> RunObservation:
    """Trigger a run now and start an observation of it."""
    run = api.trigger(dag_id, conf)
    return RunObservation(dag_id=dag_id, run_id=run["dag_run_id"], started=time.monotonic())


def watch_run(
    api: AirflowApi,
    observation: RunObservation,
    *,
    timeout: float,
    interval: float = 1.0,
    on_sample: Callable[[RunObservation, Sample], None] | None = None,
    describe: Callable[[], str] | None = None,
) -> RunObservation:
    """Poll the run's task instances and the default pool until the run ends.

    :param api: the REST client.
    :param observation: from :func:`trigger_run`.
    :param timeout: seconds before giving up (with every TI's state history in the message).
    :param interval: seconds between polls.
    :param on_sample: called after each poll (e.g. to kill the triggerer at the right moment).
    :param describe: extra diagnostics (process log tails) for a timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        tis = api.task_instances(observation.dag_id, observation.run_id)
        sample = Sample(
            at=time.monotonic(),
            states={ti_key(ti): ti["state"] for ti in tis},
            triggerer_ids={ti_key(ti): (ti.get("trigger") or {}).get("triggerer_id") for ti in tis},
            everywhere=api.slot_states(),
            pool=api.pool("default_pool"),
        )
        observation.record(sample)
        if on_sample is not None:
            on_sample(observation, sample)
        run = api.dag_run(observation.dag_id, observation.run_id)
        if run["state"] in FINISHED_RUN_STATES:
            observation.final_state = run["state"]
            observation.finished = time.monotonic()
            observation.final_tis = api.task_instances(observation.dag_id, observation.run_id)
            for ti in observation.final_tis:
                observation.record(
                    Sample(at=observation.finished, states={ti_key(ti): ti["state"]}, triggerer_ids={}, pool={})
                )
            return observation
        if time.monotonic() > deadline:
            extra = f"\n{describe()}" if describe else ""
            raise AssertionError(
                f"DAG run {observation.dag_id}/{observation.run_id} still {run['state']} after {timeout:.0f} s; "
                f"task instance states seen:\n{observation.state_history()}{extra}"
            )
        time.sleep(interval)


def wait_for_idle_dag(api: AirflowApi, dag_id: str, timeout: float) -> dict[str, str]:
    """Wait until a DAG has no queued/running run and no scheduled run that is due but not created yet.

    Unpausing a scheduled DAG makes the scheduler create its latest run within seconds; with
    ``max_active_runs=1`` a manual run would queue behind it.

    :return: the runs that were waited for -> their final state.
    """
    deadline = time.monotonic() + timeout

    def due_run_pending() -> bool:
        run_after = api.get(f"/dags/{dag_id}")["next_dagrun_run_after"]
        return run_after is not None and datetime.fromisoformat(run_after) <= datetime.now(timezone.utc)

    def active() -> list[str]:
        runs = api.get(f"/dags/{dag_id}/dagRuns", state=["queued", "running"], limit=100)["dag_runs"]
        return [run["dag_run_id"] for run in runs]

    seen: set[str] = set()
    while due_run_pending() or active():
        seen.update(active())
        if time.monotonic() > deadline:
            raise AssertionError(f"runs of {dag_id} still due or active after {timeout:.0f} s: {sorted(seen)}")
        time.sleep(1)
    return {run_id: api.dag_run(dag_id, run_id)["state"] for run_id in sorted(seen)}


# ---------------------------------------------------------------------- retries and failures


class RunProblems(AssertionError):
    """A run failed, a task failed, or a task needed a retry the known race does not explain."""

    def __init__(self, problems: list[str], retries: list[RetryRecord]) -> None:
        """:param problems: one message each. :param retries: every retried TI (explained or not)."""
        super().__init__("\n".join(problems))
        self.problems = problems
        self.retries = retries


def mismatch_state(event: dict[str, Any]) -> str | None:
    """The TI state a ``state mismatch`` audit entry names ("... the task instance's state attribute is X")."""
    match = re.search(r"state attribute is (\w+)", str(event.get("extra") or ""))
    return match.group(1) if match else None


def task_log_tail(task_logs: Path, observation: RunObservation, key: TiKey, try_number: int, lines: int = 25) -> str:
    """The end of one try's task log from the artifacts dir (empty if not found)."""
    run_dir = task_logs / f"dag_id={observation.dag_id}" / f"run_id={observation.run_id}" / f"task_id={key[0]}"
    if key[1] >= 0:
        run_dir = run_dir / f"map_index={key[1]}"
    path = run_dir / f"attempt={try_number}.log"
    return f"    task log {path}:\n{tail(path, lines)}" if path.exists() else f"    (no task log at {path})"


def check_run(api: AirflowApi, observation: RunObservation, case: str, task_logs: Path) -> list[RetryRecord]:
    """Fail unless the run and every TI succeeded, and every retry is explained by apache/airflow#67287.

    A TI that needed a second try is accepted only if the scheduler's audit log has a ``state mismatch``
    event for its earlier try (what #67287 leaves behind); anything else is a real failure that the
    suite's ``retries=1`` would otherwise hide.

    :return: the retried TIs (to report how often the race struck).
    :raises RunProblems: listing every problem, with task log tails.
    """
    problems: list[str] = []
    retries: list[RetryRecord] = []
    if observation.final_state != "success":
        problems.append(f"DAG run {observation.dag_id}/{observation.run_id} ended {observation.final_state!r}")
    mismatches = api.event_logs(dag_id=observation.dag_id, run_id=observation.run_id, event=RACE_EVENT)
    for ti in sorted(observation.final_tis, key=ti_key):
        key = ti_key(ti)
        if ti["state"] != "success":
            problems.append(
                f"{ti_label(key)} ended {ti['state']!r} after {ti['try_number']} tries\n"
                + task_log_tail(task_logs, observation, key, ti["try_number"])
            )
        if ti["try_number"] <= 1:
            continue
        tries = {t["try_number"]: t for t in api.tries(observation.dag_id, observation.run_id, key[0], key[1])}
        earlier = range(1, int(ti["try_number"]))
        ours = [m for m in mismatches if m.get("task_id") == key[0] and m.get("map_index", -1) == key[1]]
        unexplained = [n for n in earlier if not any(m.get("try_number") in (n, None) for m in ours)]
        first_state = (tries.get(1) or {}).get("state")
        retries.append(
            RetryRecord(
                case=case,
                dag_id=observation.dag_id,
                run_id=observation.run_id,
                task_id=key[0],
                map_index=key[1],
                tries=int(ti["try_number"]),
                first_try_state=first_state,
                explained_by_67287=not unexplained,
                mismatch_state=next((mismatch_state(m) for m in ours), None),
            )
        )
        for n in unexplained:
            problems.append(
                f"{ti_label(key)} needed a retry: try {n} ended {(tries.get(n) or {}).get('state')!r} and the "
                f"scheduler logged no {RACE_EVENT!r} event for it (not apache/airflow#67287: a real failure)\n"
                + task_log_tail(task_logs, observation, key, n)
            )
    if problems:
        problems.append(f"task instance states seen while polling:\n{observation.state_history()}")
        raise RunProblems(problems, retries)
    return retries


# ---------------------------------------------------------------------- images


def instance_of(source: str) -> str:
    """``ZONE/NAME`` of a source instance given as a URL, a partial URL or ``ZONE/NAME``."""
    parts = source.rstrip("/").split("/")
    if "instances" in parts and "zones" in parts:
        return f"{parts[parts.index('zones') + 1]}/{parts[parts.index('instances') + 1]}"
    return "/".join(parts[-2:])


@dataclass
class ImageCheck:
    """The images a run made, as the emulator has them."""

    new_images: dict[str, dict[str, Any]]
    per_instance: dict[str, list[str]]
    insert_requests: dict[str, list[str]]


def check_images(
    before: Iterable[dict[str, Any]],
    emulator: EmulatorControl,
    expected: dict[str, str],
    instances: Iterable[str],
) -> ImageCheck:
    """Exactly one new READY image per source instance, named as the tasks reported, one requestId each.

    :param before: the emulator's images before the run.
    :param emulator: the emulator's control client.
    :param expected: image name (from each task's XCom) -> source instance ``ZONE/NAME``.
    :param instances: the run's source instances (``ZONE/NAME``): every new image made from one of
        them counts, whatever its name, so a duplicate under another name is caught too.
    :raises AssertionError: naming the missing, duplicate or unexpected images.
    """
    old = {image["name"] for image in before}
    ours = set(instances) | set(expected.values())
    after = emulator.machine_images()
    new = {
        image["name"]: image
        for image in after
        if image["name"] not in old
        and (image["name"] in expected or instance_of(str(image.get("sourceInstance", ""))) in ours)
    }
    per_instance: dict[str, list[str]] = {}
    for name, image in new.items():
        per_instance.setdefault(instance_of(str(image.get("sourceInstance", ""))), []).append(name)
    inserts: dict[str, list[str]] = {}
    for request in emulator.requests():
        if request.get("action") == "machineImages.insert" and request.get("body"):
            name = str((request.get("body") or {}).get("name"))
            if name in expected:
                inserts.setdefault(name, []).append(str((request.get("query") or {}).get("requestId")))
    problems = []
    if set(new) != set(expected):
        problems.append(f"new images {sorted(new)} != the {len(expected)} the tasks reported {sorted(expected)}")
    for instance in sorted(ours):
        names = per_instance.get(instance, [])
        if len(names) != 1:
            problems.append(f"instance {instance}: {len(names)} new images {names}, expected exactly one")
    for name, image in new.items():
        if image.get("status") != "READY":
            problems.append(f"image {name} is {image.get('status')}, not READY")
        if name in expected and instance_of(str(image.get("sourceInstance", ""))) != expected[name]:
            problems.append(f"image {name} was made from {image.get('sourceInstance')}, expected {expected[name]}")
    for name, request_ids in inserts.items():
        if len(set(request_ids)) != 1:
            problems.append(f"image {name}: inserts with {len(set(request_ids))} different requestIds {request_ids}")
    if problems:
        raise AssertionError("machine images in the emulator are wrong:\n  " + "\n  ".join(problems))
    return ImageCheck(new_images=new, per_instance=per_instance, insert_requests=inserts)
