"""The Compute Engine emulator in its own process (``python -m airflow_machine_images.emulator``).

Running it apart keeps its CPU out of the measured process (event-loop lag, detection latency);
it is seeded and inspected through its ``/_emulator/*`` control endpoints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.environment import DEFAULT_PROJECT, REPO_ROOT


class EmulatorProcess:
    """Start, seed, inspect and stop an emulator subprocess.

    :param operation_seconds: default insert/delete duration.
    :param wait_deadline: longest ``globalOperations.wait`` long-poll, in seconds.
    :param project: default project.
    """

    def __init__(
        self, *, operation_seconds: float = 2.0, wait_deadline: float = 120.0, project: str = DEFAULT_PROJECT
    ) -> None:
        self.operation_seconds = operation_seconds
        self.wait_deadline = wait_deadline
        self.project = project
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> EmulatorProcess:
        """Launch the emulator and wait until it listens.

        :param timeout: seconds to wait for it.
        """
        ready = Path(tempfile.mkdtemp(prefix="ami-bench-emu-")) / "url"
        command = [
            sys.executable,
            "-m",
            "airflow_machine_images.emulator",
            "--quiet",
            "--project",
            self.project,
            "--operation-seconds",
            str(self.operation_seconds),
            "--wait-deadline",
            str(self.wait_deadline),
            "--seed",
            "7",
            "--ready-file",
            str(ready),
        ]
        self._process = subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self._process.poll() is not None:
                raise RuntimeError(f"the emulator exited with status {self._process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("the emulator did not start")
            time.sleep(0.05)
        self.url = ready.read_text(encoding="utf-8").strip()
        return self

    @property
    def pid(self) -> int:
        """The emulator's process id."""
        assert self._process is not None
        return self._process.pid

    def stop(self) -> None:
        """Terminate the emulator (SIGTERM, then SIGKILL after 10 s)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    # ------------------------------------------------------------------ control endpoints

    def control(self, method: str, path: str, body: Any = None, timeout: float = 120.0) -> Any:
        """Call ``/_emulator/<path>`` and return its JSON answer.

        :param method: HTTP method.
        :param path: the part after ``/_emulator/``.
        :param body: JSON body, if any.
        :param timeout: seconds.
        """
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/_emulator/{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")

    def add_instance(self, instance: str, project: str, operation_seconds: float | None = None) -> None:
        """Create a source instance whose image inserts take ``operation_seconds``.

        :param instance: ``ZONE/NAME``.
        :param project: its project.
        :param operation_seconds: insert duration (None = the emulator's default).
        """
        body: dict[str, Any] = {"instance": instance, "project": project}
        if operation_seconds is not None:
            body["operation_seconds"] = operation_seconds
        self.control("POST", "instances", body)

    def requests(self) -> list[dict[str, Any]]:
        """Every recorded API request: ``action``, ``path``, ``query``, ``status``, ``started``, ``finished``.

        The times are the emulator's ``time.monotonic()`` (CLOCK_MONOTONIC, the same in every process).
        """
        return list(self.control("GET", "requests"))

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        self.control("DELETE", "requests")

    def operations(self, project: str) -> list[dict[str, Any]]:
        """The project's operations as the API shows them now.

        :param project: the project.
        """
        return list(self.control("GET", f"operations?project={project}"))

    def machine_images(self, project: str) -> list[dict[str, Any]]:
        """The project's machine images.

        :param project: the project.
        """
        return list(self.control("GET", f"machineImages?project={project}"))


def project_of(record: dict[str, Any]) -> str:
    """The project a recorded request addressed (``/compute/beta/projects/P/...``).

    :param record: a recorded request.
    """
    parts = record["path"].split("/")
    return parts[4] if len(parts) > 4 and parts[3] == "projects" else ""


def epoch(timestamp: str) -> float:
    """Epoch seconds of an RFC 3339 timestamp as the API writes it (milliseconds, offset).

    :param timestamp: e.g. ``2026-11-28T04:14:42.708-08:00``.
    """
    return datetime.fromisoformat(timestamp).timestamp()
