"""``instances.getSerialPortOutput``: a scripted boot log per instance, served as the real API serves a console.

What the real API does, and where it is written (discovery documents ``compute.v1.json``/``compute.beta.json``,
``instances.getSerialPortOutput`` and ``SerialPortOutput``):

- It "returns the last 1 MB of serial port output". Output beyond the buffer is discarded; a ``start`` that
  refers to discarded output "is adjusted to the oldest output still available, and the adjusted start
  position is returned as the ``start`` property". A negative ``start`` means the last that many bytes,
  "bounded by the retained buffer size". ``next`` is "the position of the next byte of content, regardless of
  whether the content exists", sent as the next ``start``. ``start`` and ``next`` are int64, which JSON
  carries as strings. ``port`` is 1 to 4, default 1.
- An answer may end before the output does: gcloud's ``--start`` exists "to continue getting the output from
  a previous request that was too long to return in one attempt" (gcloud reference,
  ``compute instances get-serial-port-output``). ``answer_bytes`` cuts answers so (default: no cut).
- A ``start`` past the end answers nothing from there (``start`` = ``next`` = the one asked); no source says
  what the service does there (unverified; the reading that loses nothing).
- Output while the instance is PROVISIONING or STAGING: none (the guest has not started). Ports 2 to 4
  carry nothing here (what an image writes there is its own).

The log: every instance gets the :data:`BOOT_LOGS` entry ``default_log`` (``linux``), its lines appearing
over ``boot_seconds`` from the instance's creation, each ending ``\\r\\n`` as a serial console's do (the
login prompt has none). ``set_boot_log`` plans another log for an instance name, before or after it
exists: ``panic`` (a kernel panic that never reaches a boot line), ``hang`` (a start job that never
ends), ``silent`` (no output at all), ``windows``, or given ``lines``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_machine_images.emulator import errors
from airflow_machine_images.emulator.routing import RoutePattern

if TYPE_CHECKING:
    from airflow_machine_images.emulator.context import ApiContext
    from airflow_machine_images.emulator.instance_store import InstanceStore
    from airflow_machine_images.emulator.resources import Instance
    from airflow_machine_images.emulator.routing import Call, Handler

__all__ = ["BOOT_LOGS", "SerialConsoles", "SerialPortHandlers"]

#: The real service's buffer: "the last 1 MB" (discovery document).
REAL_BUFFER_BYTES = 1024 * 1024
_OK = "[\x1b[0;32m  OK  \x1b[0m]"
_KERNEL = "[    0.000000] Linux version 6.1.0-28-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP Debian 6.1.119-1"
_START = ["SeaBIOS (version 1.8.2-google)", "Booting from Hard Disk 0...", _KERNEL]
#: Each log as (share of ``boot_seconds`` at which it appears, text with its line ending); ``{name}`` is the
#: instance's name.
BOOT_LOGS: dict[str, list[tuple[float, str]]] = {
    "linux": [
        *((0.1 * i, line + "\r\n") for i, line in enumerate(_START)),
        (0.4, "[    1.102345] Run /sbin/init as init process\r\n"),
        (0.5, f"{_OK} Started google-guest-agent.service - Google Compute Engine Guest Agent.\r\n"),
        (0.8, f"{_OK} Reached target multi-user.target - Multi-User System.\r\n"),
        (0.9, "Cloud-init v. 22.4.2 finished at Sun, 06 Dec 2026 02:00:00 +0000. Datasource DataSourceGCELocal.\r\n"),
        (1.0, "\r\nDebian GNU/Linux 12 {name} ttyS0\r\n\r\n{name} login: "),
    ],
    "panic": [
        *((0.1 * i, line + "\r\n") for i, line in enumerate(_START)),
        (0.5, '[    1.100000] VFS: Cannot open root device "sda1" or unknown-block(0,0): error -6\r\n'),
        (0.6, "[    1.100200] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\r\n"),
        (0.7, "[    1.100300] CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.1.0-28-cloud-amd64 #1\x07\r\n"),
        (0.8, "[    1.100400] Call Trace:\r\n[    1.100500]  <TASK>\r\n"),
        (1.0, "[    1.100900] ---[ end Kernel panic - not syncing: VFS: Unable to mount root fs ]---\r\n"),
    ],
    "hang": [
        *((0.1 * i, line + "\r\n") for i, line in enumerate(_START)),
        (0.5, "[    1.102345] Run /sbin/init as init process\r\n"),
        (1.0, "[ *** ] A start job is running for /dev/disk/by-uuid/3f1c (1min 30s / no limit)\r\n"),
    ],
    "windows": [
        (0.2, "GCEGuestAgent: GCE Agent Started (version 20231004.02)\r\n"),
        (0.8, "GCEInstanceSetup: ------------------------------------------------------------\r\n"),
        (1.0, "GCEInstanceSetup: Instance setup finished. {name} is ready to use.\r\n"),
    ],
    "silent": [],
}


@dataclass(frozen=True)
class BootLog:
    """One instance's scripted console: its pieces and when each appears.

    :param pieces: (seconds after creation, text) in order.
    """

    pieces: tuple[tuple[float, str], ...]

    @classmethod
    def of(cls, log: str, lines: list[str] | None, boot_seconds: float, name: str) -> BootLog:
        """:param log: a :data:`BOOT_LOGS` name (ignored with ``lines``). :param lines: given lines, spread
        evenly. :param boot_seconds: over how long the log appears. :param name: the instance's name."""
        if lines is not None:
            count = max(1, len(lines))
            return cls(tuple((boot_seconds * (i + 1) / count, f"{line}\r\n") for i, line in enumerate(lines)))
        return cls(tuple((boot_seconds * share, text.replace("{name}", name)) for share, text in BOOT_LOGS[log]))

    def written(self, elapsed: float) -> bytes:
        """:param elapsed: seconds since the instance's creation. :return: every byte written by then."""
        return "".join(text for at, text in self.pieces if at <= elapsed).encode("utf-8")


class SerialConsoles:
    """Which log each instance has, the buffer, and reads of it (its own lock: seeding may come any time)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plans: dict[tuple[str, str, str], tuple[str, list[str] | None, float | None]] = {}
        self.default_log = "linux"
        self.boot_seconds = 1.0
        self.buffer_bytes = REAL_BUFFER_BYTES
        self.answer_bytes: int | None = None

    def set_boot_log(
        self,
        instance: str,
        log: str = "linux",
        *,
        project: str,
        lines: list[str] | None = None,
        boot_seconds: float | None = None,
    ) -> dict[str, Any]:
        """Plan the console of the instance ``ZONE/NAME`` (existing or still to be restored).

        :param instance: ``ZONE/NAME``.
        :param log: one of :data:`BOOT_LOGS` (``panic``: never boots; ``silent``: no output).
        :param project: its project.
        :param lines: the log's lines instead (each gets ``\\r\\n``).
        :param boot_seconds: over how long it appears (None: the default).
        :raises ValueError: an unknown log, a bad instance or bad lines.
        """
        zone, _, name = instance.partition("/")
        if not zone or not name or "/" in name:
            raise ValueError(f"instance must be 'ZONE/NAME'; got {instance!r}")
        if log not in BOOT_LOGS:
            raise ValueError(f"log must be one of {', '.join(BOOT_LOGS)}; got {log!r}")
        if lines is not None and (not isinstance(lines, list) or not all(isinstance(x, str) for x in lines)):
            raise ValueError("lines must be a list of strings")
        _check_seconds(boot_seconds, "boot_seconds")
        with self._lock:
            self._plans[(project, zone, name)] = (log, lines, boot_seconds)
        return {"instance": f"projects/{project}/zones/{zone}/instances/{name}", "log": log}

    def configure(
        self,
        *,
        default_log: str | None = None,
        boot_seconds: float | None = None,
        buffer_bytes: int | None = None,
        answer_bytes: int | None = None,
    ) -> dict[str, Any]:
        """Set the defaults: the log of unplanned instances, how long logs take, the buffer, the answer cut.

        :param default_log: one of :data:`BOOT_LOGS`.
        :param boot_seconds: over how long a log appears.
        :param buffer_bytes: the bytes kept (the real service: 1 MB).
        :param answer_bytes: the most bytes one answer carries (0: no cut).
        """
        if default_log is not None and default_log not in BOOT_LOGS:
            raise ValueError(f"default_log must be one of {', '.join(BOOT_LOGS)}; got {default_log!r}")
        _check_seconds(boot_seconds, "boot_seconds")
        for field_name, value in (("buffer_bytes", buffer_bytes), ("answer_bytes", answer_bytes)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{field_name} must be a whole number >= 0; got {value!r}")
        with self._lock:
            self.default_log = default_log or self.default_log
            self.boot_seconds = self.boot_seconds if boot_seconds is None else float(boot_seconds)
            self.buffer_bytes = buffer_bytes or self.buffer_bytes
            self.answer_bytes = self.answer_bytes if answer_bytes is None else (answer_bytes or None)
            return self.settings()

    def settings(self) -> dict[str, Any]:
        """:return: the defaults, as ``GET /_emulator/serial-console`` shows them."""
        return {
            "default_log": self.default_log,
            "boot_seconds": self.boot_seconds,
            "buffer_bytes": self.buffer_bytes,
            "answer_bytes": self.answer_bytes,
        }

    def read(self, instance: Instance, elapsed: float, start: int) -> tuple[bytes, int, int]:
        """What an answer carries from ``start``: ``(contents, start, next)``, as the module text says.

        :param instance: the instance.
        :param elapsed: seconds since its boot began (negative: not started).
        :param start: the ``start`` asked for (negative: the last that many bytes).
        """
        with self._lock:
            log, lines, seconds = self._plans.get(
                (instance.project, instance.zone, instance.name), (self.default_log, None, None)
            )
            written = BootLog.of(log, lines, self.boot_seconds if seconds is None else seconds, instance.name)
            buffer, cut = self.buffer_bytes, self.answer_bytes
        output = written.written(elapsed) if elapsed >= 0 else b""
        total, oldest = len(output), max(0, len(output) - buffer)
        begin = max(oldest, total + start) if start < 0 else max(start, oldest)
        if begin >= total:
            return b"", begin, begin
        end = total if cut is None else min(total, begin + cut)
        return output[begin:end], begin, end


def _check_seconds(value: object, name: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
        raise ValueError(f"{name} must be a number of seconds >= 0; got {value!r}")


class SerialPortHandlers:
    """``instances.getSerialPortOutput``.

    :param context: the state and links.
    :param instances: the instances.
    :param consoles: their consoles.
    """

    ROUTES: ClassVar[tuple[RoutePattern, ...]] = (
        RoutePattern("zones/{zone}/instances/{instance}/serialPort", {"GET": "instances.getSerialPortOutput"}),
    )

    def __init__(self, context: ApiContext, instances: InstanceStore, consoles: SerialConsoles) -> None:
        self._context = context
        self._state = context.state
        self._instances = instances
        self._consoles = consoles

    def actions(self) -> dict[str, Handler]:
        """:return: the handler of each action of :attr:`ROUTES`."""
        return {"instances.getSerialPortOutput": self.get_serial_port_output}

    def get_serial_port_output(self, call: Call) -> dict[str, Any]:
        """``instances.getSerialPortOutput`` (by name or numeric id). :param call: the request."""
        port, start = _int_query(call, "port", "1"), _int_query(call, "start", "0")
        if not 1 <= port <= 4:
            raise errors.invalid_field("port", port, "Must be between 1 and 4.")
        zone, name = call.route.args["zone"], call.route.args["instance"]
        with self._state.session() as now:
            instance = self._instances.get(call.project, zone, name)
            if instance is None:
                raise errors.not_found(f"projects/{call.project}/zones/{zone}/instances/{name}")
            started = instance.status_at(now) not in ("PROVISIONING", "STAGING")
            elapsed = (self._state.clock.wall(now) - instance.created).total_seconds() if started else -1.0
            path = instance.path
        contents, begin, end = self._consoles.read(instance, elapsed if port == 1 else -1.0, start)
        return {
            "kind": "compute#serialPortOutput",
            "contents": contents.decode("utf-8", "replace"),
            "start": str(begin),
            "next": str(end),
            "selfLink": self._context.links.url(call.version, f"{path}/serialPort"),
        }


def _int_query(call: Call, name: str, default: str) -> int:
    """An int64 query parameter. :raises ApiError: 400 when it is not a whole number."""
    value = call.query.get(name, default)
    try:
        return int(value)
    except ValueError:
        raise errors.invalid_field(name, value, "Must be an integer.") from None
