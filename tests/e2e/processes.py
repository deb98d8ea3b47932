"""Child processes of the e2e harness: one process group each, a log file each, stopped by group id."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

#: Seconds a process group gets between SIGTERM and SIGKILL.
GRACE_SECONDS = 15.0


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a text file (empty if it does not exist).

    :param path: the file.
    :param lines: how many lines.
    """
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 200 * lines))
            data = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def group_alive(pgid: int) -> bool:
    """Whether any process of a process group is still alive (zombies of our own children excluded)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(
    pgid: int, grace: float = GRACE_SECONDS, *, leader: subprocess.Popen[bytes] | None = None, signalled: bool = False
) -> str:
    """Stop a process group: SIGTERM, then SIGKILL if any member outlives ``grace`` seconds.

    :param pgid: the process group id.
    :param grace: seconds to wait after SIGTERM.
    :param leader: the group leader, if it is our child (reaped while waiting, so its zombie does not count).
    :param signalled: SIGTERM was already sent (by a caller stopping several groups at once).
    :return: how it ended: ``gone``, ``terminated`` or ``killed``.
    """
    if not signalled:
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            return "gone"
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if leader is not None:
            leader.poll()
        if not group_alive(pgid):
            return "terminated"
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    if leader is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            leader.wait(timeout=10)
    return "killed"


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, grandchildren, ...), read from ``/proc``.

    :param pid: the ancestor.
    """
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


@dataclass
class ManagedProcess:
    """A process the harness started, in its own process group (== its pid), logging to one file."""

    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes]
    started: float
    stop_outcome: str | None = None

    @property
    def pid(self) -> int:
        """The process id (also its process group id)."""
        return self.popen.pid

    def running(self) -> bool:
        """Whether the group leader has not exited."""
        return self.popen.poll() is None

    def describe(self, lines: int = 40) -> str:
        """A failure report: name, pid, exit code and the log tail."""
        code = self.popen.poll()
        status = "running" if code is None else f"exited with {code}"
        return f"--- {self.name} (pid {self.pid}, {status}), log {self.log_path}:\n{tail(self.log_path, lines)}"


@dataclass
class ProcessRegistry:
    """Every process group the harness started, so that all of them can be stopped, also on failure."""

    processes: list[ManagedProcess] = field(default_factory=list)
    extra_groups: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        cwd: Path | None = None,
        stdout: int | None = None,
    ) -> ManagedProcess:
        """Start ``argv`` in a new session (its own process group), stderr (and stdout) to ``log_path``.

        :param name: a short name for reports.
        :param argv: the command.
        :param env: the complete environment.
        :param log_path: the log file (appended to).
        :param cwd: the working directory.
        :param stdout: ``subprocess.PIPE`` to read stdout (e.g. a "listening on" line); default: the log.
        """
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = log_path.open("ab")
        try:
            popen = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log if stdout is None else stdout,
                stderr=log,
                start_new_session=True,
            )
        finally:
            log.close()
        process = ManagedProcess(name=name, argv=list(argv), log_path=log_path, popen=popen, started=time.time())
        with self._lock:
            self.processes.append(process)
        return process

    def adopt_group(self, name: str, pgid: int) -> None:
        """Track a process group started indirectly (e.g. the postmaster that ``pg_ctl`` spawns), for metrics."""
        with self._lock:
            self.extra_groups[name] = pgid

    def groups(self) -> dict[int, str]:
        """Process group id -> component name, for every group that may still be alive."""
        with self._lock:
            mapping = {p.pid: p.name for p in self.processes if p.stop_outcome is None}
            mapping.update({pgid: name for name, pgid in self.extra_groups.items()})
        return mapping

    def kill_hard(self, process: ManagedProcess) -> None:
        """SIGKILL a whole process group at once (a crash, not a shutdown) and reap the leader."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.popen.wait(timeout=30)
        deadline = time.monotonic() + 10
        while group_alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        process.stop_outcome = "sigkilled"

    def kill_tree(self, process: ManagedProcess) -> list[int]:
        """SIGKILL a process's group and every process below it, in whatever group (a machine lost).

        Airflow's task supervisor puts each task runner in a process group of its own, so killing
        the worker's group alone would leave the task runner alive, which a lost machine does not.

        :return: the process group ids killed (the process's own first).
        """
        members = [process.pid, *descendants(process.pid)]
        groups: list[int] = []
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                pgid = os.getpgid(pid)
                if pgid not in groups:
                    groups.append(pgid)
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.popen.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(group_alive(pgid) for pgid in groups) and time.monotonic() < deadline:
            time.sleep(0.1)
        process.stop_outcome = "sigkilled"
        return groups

    def stop(self, process: ManagedProcess, grace: float = GRACE_SECONDS) -> str:
        """Stop one process group gracefully (SIGTERM, then SIGKILL after ``grace``)."""
        process.stop_outcome = stop_group(process.pid, grace, leader=process.popen)
        return process.stop_outcome

    def stop_all(self) -> list[str]:
        """Stop every process group still running, newest first (SIGTERM, grace, SIGKILL).

        :return: one line per process: name, pid and outcome.
        """
        with self._lock:
            pending = [p for p in reversed(self.processes) if p.stop_outcome is None]
        # Ask them all first, so their grace periods overlap, then wait for each.
        for process in pending:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        report = []
        for process in pending:
            process.stop_outcome = stop_group(process.pid, leader=process.popen, signalled=True)
            report.append(f"{process.name} (pgid {process.pid}): {process.stop_outcome}")
        with self._lock:
            self.extra_groups.clear()
        return report

    def failure_report(self, lines: int = 40) -> str:
        """The log tail of every process the harness started."""
        with self._lock:
            processes = list(self.processes)
        return "\n".join(p.describe(lines) for p in processes)
