"""``ComputeEngineEmulator``: the public face, a thin composition of the emulator's collaborators.

Each job lives in its own module; this class builds the collaborators, runs the server thread, and
offers their public methods as its own (forwarded: one signature and docstring each):

* :mod:`.seeding` (:class:`~.seeding.Seeder`): projects, instances, machine images, unreachable
  zones, and reading them back;
* :mod:`.behaviour` (:class:`~.behaviour.Behaviour`): faults and standing options;
* :mod:`.dispatch` (:class:`~.dispatch.Dispatcher`): each HTTP request, routed, answered and
  recorded (:mod:`.recording`), by the API (:mod:`.api`: handler modules over resource stores);
* :mod:`.control` (:class:`~.control.ControlEndpoints`): the ``/_emulator/*`` endpoints;
* :mod:`.server`: the HTTP server thread, started and stopped here.
"""

from __future__ import annotations

import functools
import math
import threading
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from airflow_machine_images.emulator.api import EmulatedApi
from airflow_machine_images.emulator.behaviour import Behaviour
from airflow_machine_images.emulator.context import ApiContext
from airflow_machine_images.emulator.control import ControlEndpoints
from airflow_machine_images.emulator.disk_store import DiskStore
from airflow_machine_images.emulator.dispatch import Dispatcher
from airflow_machine_images.emulator.instance_store import InstanceStore
from airflow_machine_images.emulator.machine_image_store import MachineImageStore
from airflow_machine_images.emulator.options import EmulatorOptions
from airflow_machine_images.emulator.recording import DEFAULT_MAX_LOG_BYTES, DEFAULT_MAX_LOG_ENTRIES, RequestLog
from airflow_machine_images.emulator.resources import Links
from airflow_machine_images.emulator.schema import PROJECT_RE
from airflow_machine_images.emulator.seeding import IMAGE_STATUSES, INSTANCE_STATUSES, Seeder
from airflow_machine_images.emulator.serial_console import SerialConsoles
from airflow_machine_images.emulator.server import DEFAULT_MAX_BODY_BYTES, EmulatorHTTPServer, is_loopback_host
from airflow_machine_images.emulator.state import ComputeState
from airflow_machine_images.emulator.timefmt import Clock

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from airflow_machine_images.emulator.recording import RecordedRequest

__all__ = ["IMAGE_STATUSES", "INSTANCE_STATUSES", "ComputeEngineEmulator", "is_loopback"]


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _forwarded(collaborator: str, method: Callable[Concatenate[Any, _P], _R]) -> Callable[Concatenate[Any, _P], _R]:
    """A method of the emulator that is a collaborator's: same signature and docstring, written once.

    :param collaborator: the emulator's attribute holding the collaborator.
    :param method: the collaborator's method.
    :return: the emulator's method.
    """

    @functools.wraps(method)
    def forward(self: Any, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        return method(getattr(self, collaborator), *args, **kwargs)

    return forward


def is_loopback(host: str) -> bool:
    """:param host: a host name or address. :return: whether it only listens on this machine."""
    return is_loopback_host(host)


def _check_arguments(
    host: str,
    *,
    allow_remote: bool,
    default_project: str,
    operation_seconds: float,
    wait_deadline_seconds: float,
    early_wait_probability: float,
    max_request_bytes: int,
) -> None:
    """:raises ValueError: a constructor argument the emulator cannot work with (the first, in this order)."""
    if not allow_remote and not is_loopback(host):
        raise ValueError(f"Refusing to bind {host!r}: not a loopback address (pass allow_remote=True)")
    if not PROJECT_RE.fullmatch(default_project):
        raise ValueError(f"default_project {default_project!r} is not a valid project id")
    if operation_seconds < 0 or wait_deadline_seconds < 0:
        raise ValueError("operation_seconds and wait_deadline_seconds must not be negative")
    if not 0.0 <= early_wait_probability <= 1.0:
        raise ValueError("early_wait_probability must be between 0 and 1")
    if max_request_bytes < 1:
        raise ValueError("max_request_bytes must be at least 1")


class ComputeEngineEmulator:
    """A local Compute Engine API (machine images, instances, disks, their operations) over real HTTP.

    :param host: address to bind (loopback only unless ``allow_remote``).
    :param port: port to bind (0 = pick a free one).
    :param default_project: project used when a seeding/inspection call names none.
    :param operation_seconds: how long insert and delete operations take (PENDING -> RUNNING -> DONE).
    :param wait_deadline_seconds: how long ``globalOperations.wait`` long-polls at most.
    :param early_wait_probability: chance that a wait returns at once with a not-DONE operation.
    :param request_id_ttl_seconds: how long requestIds are remembered (None = forever).
    :param seed: seed for every random choice (ids, faults, early waits).
    :param self_link_base: where selfLinks point (like the real API, not at the emulator).
    :param allow_remote: allow binding a non-loopback address and serve requests whatever their Host
        header (by default only ``localhost`` and loopback addresses are served: DNS-rebinding protection).
    :param on_request: called with each finished API request (e.g. for logging).
    :param max_request_bytes: the largest request body read (413 beyond).
    :param rate_quota_per_minute: requests per project per window before 403 ``rateLimitExceeded``
        (None = no quota); see :mod:`~airflow_machine_images.emulator.options` for this and the next three.
    :param rate_quota_window_seconds: the window the rate quota refills after (60: a minute).
    :param concurrent_operations_limit: unfinished operations per project before 403
        ``CONCURRENT_OPERATIONS_QUOTA_EXCEEDED`` (None = no limit).
    :param partial_list_fraction: the share of each list page's items left out (0 = none).
    :param partial_list_warning: the ``warning.code`` those lists carry (None = none).
    :param clock_offset_seconds: how far the emulated server's clock runs ahead of this machine's
        (negative: behind), in every timestamp and ``Date`` header; see :class:`~.timefmt.Clock`.
    :param source_image_limit_scale: the per-source-instance machine-image limit (one image per 10 minutes,
        6 per 60 minutes), its windows multiplied by this (1: as documented); None (default): no limit.
    :param request_log_max_entries: the most requests the request log keeps (the oldest go first).
    :param request_log_max_bytes: about the most bytes the request log keeps.

    The request log (:attr:`requests`, ``GET /_emulator/requests``) keeps bodies with every
    ``rawKey``/``rsaEncryptedKey`` value replaced by ``[redacted]`` (a refused request's only as a
    summary), within its limits of entries and bytes; images show the keys' ``sha256``, as the API does.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        default_project: str = "demo-project",
        operation_seconds: float = 2.0,
        wait_deadline_seconds: float = 120.0,
        early_wait_probability: float = 0.0,
        request_id_ttl_seconds: float | None = None,
        seed: int | None = None,
        self_link_base: str = "https://www.googleapis.com",
        allow_remote: bool = False,
        on_request: Callable[[RecordedRequest], None] | None = None,
        max_request_bytes: int = DEFAULT_MAX_BODY_BYTES,
        rate_quota_per_minute: int | None = None,
        rate_quota_window_seconds: float = 60.0,
        concurrent_operations_limit: int | None = None,
        partial_list_fraction: float = 0.0,
        partial_list_warning: str | None = "UNREACHABLE",
        clock_offset_seconds: float = 0.0,
        source_image_limit_scale: float | None = None,
        request_log_max_entries: int = DEFAULT_MAX_LOG_ENTRIES,
        request_log_max_bytes: int = DEFAULT_MAX_LOG_BYTES,
    ) -> None:
        _check_arguments(
            host,
            allow_remote=allow_remote,
            default_project=default_project,
            operation_seconds=operation_seconds,
            wait_deadline_seconds=wait_deadline_seconds,
            early_wait_probability=early_wait_probability,
            max_request_bytes=max_request_bytes,
        )
        options = EmulatorOptions(
            rate_quota_per_minute=rate_quota_per_minute,
            rate_quota_window_seconds=rate_quota_window_seconds,
            concurrent_operations_limit=concurrent_operations_limit,
            request_id_ttl_seconds=request_id_ttl_seconds,
            partial_list_fraction=partial_list_fraction,
            partial_list_warning=partial_list_warning,
            source_image_limit_scale=source_image_limit_scale,
        )
        self.host = host
        self.allow_remote = allow_remote
        self.max_request_bytes = max_request_bytes
        self._requested_port = port
        self.stopping = threading.Event()
        if not math.isfinite(clock_offset_seconds):
            raise ValueError("clock_offset_seconds must be a finite number of seconds")
        self.clock = Clock(clock_offset_seconds)
        self.links = Links(self_link_base.rstrip("/"))
        self._state = ComputeState(
            self.clock, operation_seconds=operation_seconds, request_id_ttl_seconds=request_id_ttl_seconds, seed=seed
        )
        disks = DiskStore(self._state)
        images, instances = MachineImageStore(self._state), InstanceStore(self._state, disks)
        self._behaviour = Behaviour(self._state, options, seed)
        self._consoles = SerialConsoles()
        self._seeder = Seeder(
            self._state, images, instances, self.links, default_project, disks=disks, consoles=self._consoles
        )
        self._log = RequestLog(request_log_max_entries, request_log_max_bytes)
        behaviour = self._behaviour
        api = EmulatedApi(
            ApiContext(self._state, self.links, behaviour.faults.give_back, lambda: behaviour.options),
            images,
            instances,
            disks,
            self._consoles,
            wait_deadline_seconds=wait_deadline_seconds,
            early_wait_probability=early_wait_probability,
            seed=None if seed is None else seed + 1,
        )
        control = ControlEndpoints(self._seeder, self._behaviour, self._log, lambda: self.url, self._consoles)
        self._dispatcher = Dispatcher(api, self._behaviour, self._log, control, on_request)
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()

    # -- settings read after construction ----------------------------------------------------------

    @property
    def default_project(self) -> str:
        """:return: the project used when a seeding/inspection call names none (may be set)."""
        return self._seeder.default_project

    @default_project.setter
    def default_project(self, project: str) -> None:
        self._seeder.default_project = project

    @property
    def seed(self) -> int | None:
        """:return: the seed random faults derive theirs from (may be set)."""
        return self._behaviour.seed

    @seed.setter
    def seed(self, seed: int | None) -> None:
        self._behaviour.seed = seed

    @property
    def on_request(self) -> Callable[[RecordedRequest], None] | None:
        """:return: what is called with each finished API request (may be set, e.g. for logging)."""
        return self._dispatcher.on_request

    @on_request.setter
    def on_request(self, callback: Callable[[RecordedRequest], None] | None) -> None:
        self._dispatcher.on_request = callback

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> ComputeEngineEmulator:
        """Bind and serve in a daemon thread (a restart reuses the previous port).

        :return: self.
        """
        with self._lifecycle:
            if self._server is not None:
                return self
            self.stopping.clear()
            self._state.set_stopping(False)
            server = EmulatorHTTPServer(
                (self.host, self._requested_port),
                self,
                allow_any_host=self.allow_remote,
                max_body_bytes=self.max_request_bytes,
                wall_time=self.clock.wall_seconds,
            )
            self._requested_port = server.server_address[1]
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"compute-emulator-{self._requested_port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: long-polls and slow answers are released and every connection is closed."""
        with self._lifecycle:
            server, thread = self._server, self._thread
            if server is None:
                return
            self.stopping.set()
            self._state.set_stopping(True)
            server.shutdown()
            server.close_connections()
            server.server_close()
            if thread is not None:
                thread.join(timeout=5)
            self._server = None
            self._thread = None

    def __enter__(self) -> ComputeEngineEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """:return: whether the server is serving."""
        return self._server is not None

    @property
    def port(self) -> int:
        """:return: the bound port (the last one, after a stop)."""
        if self._requested_port == 0:
            raise RuntimeError("The emulator has not been started")
        return self._requested_port

    @property
    def url(self) -> str:
        """:return: e.g. ``http://127.0.0.1:8085`` (no trailing slash)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- the collaborators' public methods ---------------------------------------------------------

    # Seeding and reading back (seeding.py).
    add_project = _forwarded("_seeder", Seeder.add_project)
    project_number = _forwarded("_seeder", Seeder.project_number)
    add_instance = _forwarded("_seeder", Seeder.add_instance)
    add_disk = _forwarded("_seeder", Seeder.add_disk)
    disks = _forwarded("_seeder", Seeder.disks)
    instances = _forwarded("_seeder", Seeder.instances)
    set_unreachable_zones = _forwarded("_seeder", Seeder.set_unreachable_zones)
    add_machine_image = _forwarded("_seeder", Seeder.add_machine_image)
    machine_images = _forwarded("_seeder", Seeder.machine_images)
    get_machine_image = _forwarded("_seeder", Seeder.get_machine_image)
    operations = _forwarded("_seeder", Seeder.operations)
    set_boot_log = _forwarded("_seeder", Seeder.set_boot_log)

    # Serial consoles (serial_console.py): the default log, how long logs take, the buffer, the answer cut.
    configure_serial_console = _forwarded("_consoles", SerialConsoles.configure)

    # Faults and standing options (behaviour.py).
    inject = _forwarded("_behaviour", Behaviour.inject)
    inject_random = _forwarded("_behaviour", Behaviour.inject_random)
    clear_faults = _forwarded("_behaviour", Behaviour.clear_faults)
    pending_faults = _forwarded("_behaviour", Behaviour.pending_faults)
    forget_request_ids = _forwarded("_behaviour", Behaviour.forget_request_ids)
    set_options = _forwarded("_behaviour", Behaviour.set_options)

    # Every HTTP request (dispatch.py), called by the server thread.
    handle = _forwarded("_dispatcher", Dispatcher.handle)

    @property
    def options(self) -> EmulatorOptions:
        """:return: the standing options (quotas, requestId memory, partial lists); a copy."""
        return self._behaviour.options

    # -- the request log ---------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """:return: the recorded API requests, in arrival order (a snapshot)."""
        return self._log.snapshot()

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        self._log.clear()

    def request_log_usage(self) -> dict[str, int]:
        """:return: the request log's kept ``entries``, about how many ``bytes`` they take, and how many
        requests were ``forgotten`` to keep within its limits (since the last clear)."""
        return {"entries": len(self._log.snapshot()), "bytes": self._log.kept_bytes(), "forgotten": self._log.forgotten}

    def count(self, action: str | None = None, *, status: int | None = None) -> int:
        """:param action: only this action. :param status: only this answered status.
        :return: how many recorded requests match."""
        return self._log.count(action, status)
