"""What the e2e run measures: stack start time, case durations, peak memory, #67287 retries."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import psutil

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


@dataclass
class MemorySample:
    """Memory of the harness's processes at one moment, per component (bytes)."""

    rss: dict[str, int] = field(default_factory=dict)
    pss: dict[str, int] = field(default_factory=dict)
    processes: int = 0


def sample_memory(groups: dict[int, str]) -> MemorySample:
    """RSS and PSS of every live process in the given process groups or descended from them.

    RSS counts pages shared between forked processes (the scheduler's workers, the API server's)
    once per process; PSS divides them among their sharers, so its sum is the stack's real footprint.

    :param groups: process group id -> component name.
    """
    parents: dict[int, int] = {}
    members: dict[int, str] = {}
    for process in psutil.process_iter(["pid", "ppid"]):
        pid = process.info["pid"]
        parents[pid] = process.info["ppid"] or 0
        pgid = _pgid(pid)
        if pgid in groups:
            members[pid] = groups[pgid]
    # Children that moved to a process group of their own (e.g. a browser's helpers) still count.
    for pid in list(parents):
        ancestor, hops = parents.get(pid, 0), 0
        while pid not in members and ancestor > 1 and hops < 20:
            if ancestor in members:
                members[pid] = members[ancestor]
            ancestor, hops = parents.get(ancestor, 0), hops + 1
    result = MemorySample()
    for pid, name in members.items():
        try:
            info = psutil.Process(pid).memory_full_info()
        except (psutil.Error, OSError):
            continue
        result.rss[name] = result.rss.get(name, 0) + int(info.rss)
        result.pss[name] = result.pss.get(name, 0) + int(getattr(info, "pss", info.rss))
        result.processes += 1
    return result


#: Components that are not the Airflow stack (the browser of case (c) runs for a few seconds only).
NOT_THE_STACK = frozenset({"chromium"})


@dataclass
class Peak:
    """The highest sum seen for one view of the processes, and what made it up."""

    total: int = 0
    breakdown: dict[str, int] = field(default_factory=dict)

    def offer(self, values: dict[str, int]) -> None:
        """Keep ``values`` if their sum beats the peak."""
        if sum(values.values()) > self.total:
            self.total, self.breakdown = sum(values.values()), dict(values)

    def to_mb(self) -> dict[str, Any]:
        """``{"total_mb": ..., "by_component_mb": {...}}``."""
        return {
            "total_mb": round(self.total / 2**20, 1),
            "by_component_mb": {k: round(v / 2**20, 1) for k, v in sorted(self.breakdown.items())},
        }


class MemorySampler(threading.Thread):
    """Samples RSS and PSS of all harness processes every ``interval`` seconds; keeps the peaks.

    Two views: ``all`` (every process the harness started) and ``stack`` (without the browser).
    """

    def __init__(self, groups: Callable[[], dict[int, str]], interval: float = 1.0) -> None:
        """:param groups: returns the current process groups to measure. :param interval: seconds."""
        super().__init__(name="e2e-memory-sampler", daemon=True)
        self._groups = groups
        self._interval = interval
        self._stop_event = threading.Event()
        self.samples = 0
        self.max_processes = 0
        self.peaks: dict[str, Peak] = {f"{view}_{kind}": Peak() for view in ("all", "stack") for kind in ("rss", "pss")}

    def run(self) -> None:
        """Sample until stopped (a failed sample is skipped: processes come and go)."""
        while not self._stop_event.is_set():
            try:
                sample = sample_memory(self._groups())
            except (psutil.Error, OSError):
                sample = MemorySample()
            self.samples += 1
            self.max_processes = max(self.max_processes, sample.processes)
            for kind, values in (("rss", sample.rss), ("pss", sample.pss)):
                self.peaks[f"all_{kind}"].offer(values)
                self.peaks[f"stack_{kind}"].offer({k: v for k, v in values.items() if k not in NOT_THE_STACK})
            self._stop_event.wait(self._interval)

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self._stop_event.set()
        self.join(timeout=10)


@dataclass
class RetryRecord:
    """One task instance that needed more than one try."""

    case: str
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    tries: int
    first_try_state: str | None
    explained_by_67287: bool
    #: What the scheduler's "state mismatch" audit entry said the TI's state was (queued, running, ...).
    mismatch_state: str | None = None


@dataclass
class Summary:
    """Everything the e2e session reports (printed, and written to ``e2e-summary.json``)."""

    artifacts_dir: str
    stack_start_seconds: float | None = None
    stack_start_breakdown: dict[str, float] = field(default_factory=dict)
    settle: dict[str, Any] = field(default_factory=dict)
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    peak_memory: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_processes: int = 0
    memory_samples: int = 0
    task_instances_checked: int = 0
    retries: list[RetryRecord] = field(default_factory=list)
    screenshots: list[str] = field(default_factory=list)
    shutdown: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def record_case(self, name: str, seconds: float, outcome: str, **extra: Any) -> None:
        """Keep one case's duration and outcome (plus case-specific facts)."""
        self.cases[name] = {"seconds": round(seconds, 1), "outcome": outcome, **self.cases.get(name, {}), **extra}

    def add_case_facts(self, name: str, **facts: Any) -> None:
        """Attach facts (counts, ids) to a case."""
        self.cases.setdefault(name, {}).update(facts)

    def take_memory(self, sampler: MemorySampler) -> None:
        """Copy the sampler's peaks."""
        self.memory_samples = sampler.samples
        self.max_processes = sampler.max_processes
        self.peak_memory = {name: peak.to_mb() for name, peak in sampler.peaks.items()}

    @property
    def race_retries(self) -> int:
        """Task instances whose retry is explained by apache/airflow#67287."""
        return sum(1 for r in self.retries if r.explained_by_67287)

    def to_json(self) -> dict[str, Any]:
        """The JSON document."""
        data = asdict(self)
        data["retries_needed"] = len(self.retries)
        data["retries_explained_by_67287"] = self.race_retries
        return data

    def write(self, path: Path) -> None:
        """Write ``e2e-summary.json``."""
        path.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")

    def render(self) -> str:
        """A human summary for the terminal."""
        lines = [f"e2e artifacts (logs, screenshots, summary): {self.artifacts_dir}"]
        if self.stack_start_seconds is not None:
            parts = ", ".join(f"{k} {v:.1f} s" for k, v in self.stack_start_breakdown.items())
            lines.append(
                f"stack start (first process -> healthy + DAGs parsed): {self.stack_start_seconds:.1f} s ({parts})"
            )
        if self.settle:
            lines.append(
                f"before the cases: waited {self.settle.get('seconds')} s for the runs unpausing "
                f"{self.settle.get('dag_id')} scheduled: {self.settle.get('runs_waited_for') or 'none'}"
            )
        for name, case in self.cases.items():
            seconds = case.get("seconds")
            duration = f"{seconds:.1f} s" if isinstance(seconds, (int, float)) else "n/a"
            lines.append(f"case {name}: {case.get('outcome', '?')} in {duration}")
        if self.peak_memory:
            lines.append(
                f"peak memory ({self.memory_samples} samples 1 s apart, up to {self.max_processes} processes; "
                "RSS counts pages shared by forked processes once per process, PSS splits them):"
            )
            for view, label in (("stack", "Airflow stack (no browser)"), ("all", "everything incl. Chromium")):
                for kind in ("rss", "pss"):
                    peak = self.peak_memory.get(f"{view}_{kind}") or {}
                    parts = ", ".join(f"{k} {v:.0f}" for k, v in (peak.get("by_component_mb") or {}).items())
                    lines.append(f"  {label}, {kind.upper()}: {peak.get('total_mb', 0):.0f} MB ({parts})")
        lines.append(
            f"task instances checked: {self.task_instances_checked}; needed a second try: {len(self.retries)} "
            f"({self.race_retries} explained by the known race apache/airflow#67287)"
        )
        lines.extend(
            f"  retried: {r.dag_id}/{r.task_id}[{r.map_index}] run {r.run_id} ({r.case}): first try "
            f"{r.first_try_state}, #67287: {r.explained_by_67287} (TI state in the mismatch: {r.mismatch_state})"
            for r in self.retries
        )
        lines.extend(f"screenshot: {path}" for path in self.screenshots)
        lines.extend(f"note: {note}" for note in self.notes)
        if self.shutdown:
            lines.append("stopped: " + "; ".join(self.shutdown))
        return "\n".join(lines)
