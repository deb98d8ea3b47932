"""``ComputeEngineEmulator``: the public face that ties state, API, faults, recording and HTTP together."""

from __future__ import annotations

import json
import random
import re
import threading
import time
import traceback
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from airflow_machine_images.emulator import control, errors
from airflow_machine_images.emulator.api import EmulatedApi, route
from airflow_machine_images.emulator.errors import ApiError
from airflow_machine_images.emulator.faults import (
    DEFAULT_RANDOM_KINDS,
    LIST_ACTIONS,
    MUTATING_ACTIONS,
    Fault,
    FaultBook,
    RandomFaults,
)
from airflow_machine_images.emulator.instance_store import InstanceStore
from airflow_machine_images.emulator.machine_image_store import MachineImageStore
from airflow_machine_images.emulator.options import EmulatorOptions, RateQuota, thin_list
from airflow_machine_images.emulator.recording import RecordedRequest, RequestLog
from airflow_machine_images.emulator.references import parse_source_instance
from airflow_machine_images.emulator.resources import Links
from airflow_machine_images.emulator.routing import Call
from airflow_machine_images.emulator.schema import LABEL_KEY_RE, LABEL_VALUE_RE, NAME_RE, PROJECT_RE
from airflow_machine_images.emulator.server import (
    DEFAULT_MAX_BODY_BYTES,
    EmulatorHTTPServer,
    Response,
    is_loopback_host,
)
from airflow_machine_images.emulator.state import ComputeState, Origin
from airflow_machine_images.emulator.timefmt import Clock, parse_rfc3339

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from email.message import Message
    from types import TracebackType

    from airflow_machine_images.emulator.resources import Instance

__all__ = ["ComputeEngineEmulator", "is_loopback"]

IMAGE_STATUSES = ("READY", "CREATING", "DELETING", "INVALID", "UPLOADING")
#: The Instance ``status`` enum of the compute.v1/beta discovery documents.
INSTANCE_STATUSES = (
    "DEPROVISIONING", "PENDING", "PENDING_STOP", "PROVISIONING", "REPAIRING", "RUNNING", "STAGING", "STOPPED",
    "STOPPING", "SUSPENDED", "SUSPENDING", "TERMINATED",
)  # fmt: skip
_ZONE_INSTANCE = re.compile(r"(?P<zone>[a-z][-a-z0-9]*)/(?P<instance>[a-z][-a-z0-9]*)")


def is_loopback(host: str) -> bool:
    """:param host: a host name or address. :return: whether it only listens on this machine."""
    return is_loopback_host(host)


def _json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


#: The deepest JSON nesting a body may have (protobuf's default recursion limit is 100).
MAX_JSON_DEPTH = 100
#: Fields whose values are secret: the request log keeps them as ``[redacted]``.
SECRET_FIELDS = frozenset({"rawKey", "rsaEncryptedKey"})
REDACTED = "[redacted]"


def _too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` (parsed JSON) nests lists and objects deeper than ``limit`` (no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, (dict, list)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (current.values() if isinstance(current, dict) else current))
    return False


def parse_json_body(body: bytes) -> Any:
    """A request body as JSON (None when empty).

    :param body: the raw body.
    :raises ApiError: 400 when it is not JSON, or nests deeper than :data:`MAX_JSON_DEPTH`.
    """
    if not body.strip():
        return None
    try:
        parsed = json.loads(body)
    except RecursionError:
        raise errors.parse_error(f"the JSON is nested too deeply (more than {MAX_JSON_DEPTH} levels)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.parse_error(str(exc)) from None
    if _too_deep(parsed):
        raise errors.parse_error(f"the JSON is nested too deeply (more than {MAX_JSON_DEPTH} levels)")
    return parsed


def redact_secrets(value: Any) -> Any:
    """A copy of parsed JSON with every ``rawKey``/``rsaEncryptedKey`` value replaced by ``[redacted]``.

    :param value: a parsed body (at most :data:`MAX_JSON_DEPTH` deep).
    """
    if isinstance(value, dict):
        return {key: REDACTED if key in SECRET_FIELDS else redact_secrets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_secrets(item) for item in value]
    return value


def _require(value: object, types: type | tuple[type, ...], name: str) -> None:
    """:raises TypeError: ``value`` (a seeding argument, perhaps from control JSON) has another type."""
    allowed = types if isinstance(types, tuple) else (types,)
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        raise TypeError(f"{name} has the wrong type ({type(value).__name__})")


class ComputeEngineEmulator:
    """A local Compute Engine API (machine images, global operations, instances) over real HTTP.

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

    The request log (:attr:`requests`, ``GET /_emulator/requests``) keeps bodies with every
    ``rawKey``/``rsaEncryptedKey`` value replaced by ``[redacted]``; images show the keys' ``sha256``,
    as the API does.
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
    ) -> None:
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
        self._options = EmulatorOptions(
            rate_quota_per_minute=rate_quota_per_minute,
            rate_quota_window_seconds=rate_quota_window_seconds,
            concurrent_operations_limit=concurrent_operations_limit,
            request_id_ttl_seconds=request_id_ttl_seconds,
            partial_list_fraction=partial_list_fraction,
            partial_list_warning=partial_list_warning,
        )
        self._rate_quota = RateQuota()
        self._list_rng = random.Random(None if seed is None else seed + 2)
        self._list_rng_lock = threading.Lock()
        self.host = host
        self.allow_remote = allow_remote
        self.max_request_bytes = max_request_bytes
        self._requested_port = port
        self.default_project = default_project
        self.seed = seed
        self.on_request = on_request
        self.stopping = threading.Event()
        self.clock = Clock()
        self.links = Links(self_link_base.rstrip("/"))
        self._state = ComputeState(
            self.clock,
            operation_seconds=operation_seconds,
            request_id_ttl_seconds=request_id_ttl_seconds,
            seed=seed,
        )
        self._images = MachineImageStore(self._state)
        self._instances = InstanceStore(self._state)
        self._faults = FaultBook()
        self._api = EmulatedApi(
            self._state,
            self._images,
            self._instances,
            self.links,
            wait_deadline_seconds=wait_deadline_seconds,
            early_wait_probability=early_wait_probability,
            seed=None if seed is None else seed + 1,
            give_back=self._faults.give_back,
        )
        self._log = RequestLog()
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()
        self._random_faults_seeded = 0

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

    # -- seeding -----------------------------------------------------------------------------------

    def _project(self, project: str | None) -> str:
        return project or self.default_project

    def _instance_key(self, instance: str, project: str | None) -> tuple[str, str, str]:
        """:param instance: ``ZONE/NAME``, a path or a URL. :param project: its project, if known.
        :return: project, zone, name. :raises ValueError: if unreadable."""
        short = _ZONE_INSTANCE.fullmatch(instance)
        if short is not None:
            return self._project(project), short.group("zone"), short.group("instance")
        try:
            found = parse_source_instance(instance, self._project(project))
        except ApiError:
            raise ValueError(
                f"Instance {instance!r} is not 'ZONE/NAME', 'projects/P/zones/Z/instances/I' or a URL"
            ) from None
        if project is not None and found[0] != project:
            raise ValueError(f"Instance {instance!r} is not in project {project!r}")
        return found

    def add_project(self, project: str | None = None, number: str | int | None = None) -> dict[str, str]:
        """Make a project known, with its number (projects are otherwise known on first use).

        Every project has a number, derived from its id unless chosen here; the API accepts it wherever
        the project id goes (paths, ``sourceInstance``) and answers with the id.

        :param project: the project id (default ``default_project``).
        :param number: its number (None: keep or derive it).
        :return: ``{"name": project id, "id": number}``, the fields the Project resource has for them.
        """
        _require(project, (str, type(None)), "project")
        _require(number, (str, int, type(None)), "number")
        project_id = self._project(project)
        if not PROJECT_RE.fullmatch(project_id) or project_id.isdigit():
            raise ValueError(f"Invalid project id {project_id!r}")
        text = None if number is None else str(number)
        if text is not None and (not text.isdigit() or not 1 <= len(text) <= 19 or text.startswith("0")):
            raise ValueError("number must be 1 to 19 digits, without a leading zero")
        with self._state.session():
            if text is not None:
                self._state.set_project_number(project_id, text)
            return {"name": project_id, "id": self._state.project_number(project_id)}

    def project_number(self, project: str | None = None) -> str:
        """:param project: a project id (default ``default_project``). :return: its number."""
        return self.add_project(project)["id"]

    def add_instance(
        self,
        instance: str,
        project: str | None = None,
        disk_size_gb: int = 10,
        operation_seconds: float | None = None,
        labels: dict[str, str] | None = None,
        status: str = "RUNNING",
    ) -> dict[str, Any]:
        """Create a source instance, in any project (the emulator serves every project).

        :param instance: ``ZONE/NAME``, ``projects/P/zones/Z/instances/I`` or a full URL.
        :param project: its project (default: the one in ``instance``, else ``default_project``).
        :param disk_size_gb: size of its boot disk (drives ``totalStorageBytes``).
        :param operation_seconds: how long inserting an image from it takes (None = the default).
        :param labels: its labels (checked as the API checks label keys and values).
        :param status: its status, one of :data:`INSTANCE_STATUSES` (default RUNNING).
        :return: the Instance JSON.
        """
        _require(instance, str, "instance")
        _require(project, (str, type(None)), "project")
        _require(disk_size_gb, int, "disk_size_gb")
        _require(operation_seconds, (int, float, type(None)), "operation_seconds")
        _require(labels, (dict, type(None)), "labels")
        _require(status, str, "status")
        project_id, zone, name = self._instance_key(instance, project)
        if not PROJECT_RE.fullmatch(project_id) or not NAME_RE.fullmatch(zone) or not NAME_RE.fullmatch(name):
            raise ValueError(f"Invalid instance {instance!r}")
        if disk_size_gb < 1:
            raise ValueError("disk_size_gb must be at least 1")
        if status not in INSTANCE_STATUSES:
            raise ValueError(f"status must be one of {', '.join(INSTANCE_STATUSES)}")
        for key, value in (labels or {}).items():
            if not isinstance(key, str) or not LABEL_KEY_RE.fullmatch(key):
                raise ValueError(f"Invalid label key {key!r}")
            if not isinstance(value, str) or not LABEL_VALUE_RE.fullmatch(value):
                raise ValueError(f"Invalid label value {value!r} of {key!r}")
        with self._state.session():
            created = self._instances.add(
                project_id, zone, name, disk_size_gb, operation_seconds, labels=labels, status=status
            )
            return created.render(self.links, "beta")

    def set_unreachable_zones(self, zones: Iterable[str] = ()) -> list[str]:
        """Make zones unreachable for ``instances.aggregatedList`` (empty: every zone answers again).

        Such a zone's scope carries a ``warning`` with code ``UNREACHABLE`` instead of its instances,
        and the answer lists it in ``unreachables`` (InstanceAggregatedList / InstancesScopedList
        schemas of the discovery documents), as the real API does when a zone cannot be read.

        :param zones: zone names, e.g. ``["us-east1-b"]``.
        :return: the unreachable zones, sorted.
        """
        chosen = list(zones)
        for zone in chosen:
            _require(zone, str, "zones[]")
            if not NAME_RE.fullmatch(zone):
                raise ValueError(f"Invalid zone {zone!r}")
        self._instances.unreachable_zones = frozenset(chosen)
        return sorted(chosen)

    def add_machine_image(
        self,
        name: str,
        source_instance: str | None = None,
        project: str | None = None,
        status: str = "READY",
        creation_timestamp: datetime | str | None = None,
        labels: dict[str, str] | None = None,
        total_storage_bytes: int | None = None,
    ) -> dict[str, Any]:
        """Seed a machine image directly (no request recorded).

        A ``CREATING`` seed gets an insert operation (it becomes READY after the insert duration);
        a ``DELETING`` one a delete operation; other statuses stay as given.

        :param name: its name.
        :param source_instance: ``ZONE/NAME`` or a path/URL; it need not exist (None = the
            project's first instance).
        :param project: its project (default ``default_project``).
        :param status: READY, CREATING, DELETING, INVALID or UPLOADING.
        :param creation_timestamp: a datetime or RFC 3339 text (default now).
        :param labels: its labels.
        :param total_storage_bytes: its size (default: derived from the source disk).
        :return: the MachineImage JSON.
        """
        _require(name, str, "name")
        _require(source_instance, (str, type(None)), "source_instance")
        _require(project, (str, type(None)), "project")
        _require(status, str, "status")
        _require(creation_timestamp, (datetime, str, type(None)), "creation_timestamp")
        _require(labels, (dict, type(None)), "labels")
        _require(total_storage_bytes, (int, type(None)), "total_storage_bytes")
        project_id = self._project(project)
        if not NAME_RE.fullmatch(name):
            raise ValueError(f"Invalid machine image name {name!r}")
        if status not in IMAGE_STATUSES:
            raise ValueError(f"status must be one of {', '.join(IMAGE_STATUSES)}")
        created: datetime | None
        if creation_timestamp is None or isinstance(creation_timestamp, datetime):
            created = creation_timestamp
        else:
            created = parse_rfc3339(creation_timestamp)
            if created is None:
                raise ValueError(f"creation_timestamp {creation_timestamp!r} is not RFC 3339")
        for key, value in (labels or {}).items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ValueError("labels must map strings to strings")
        with self._state.session() as now:
            if self._images.get(project_id, name) is not None:
                raise ValueError(f"Machine image {name!r} already exists in {project_id}")
            source: Instance | None
            if source_instance is None:
                source = next((i for i in self._instances.in_project(project_id)), None)
                if source is None:
                    raise ValueError(f"No instance in {project_id}: pass source_instance")
            else:
                where = self._instance_key(source_instance, None)
                source = self._instances.get(*where) or self._instances.unlisted(*where, now)
            image, _ = self._images.create(
                project=project_id,
                name=name,
                source=source,
                now=now,
                created=created,
                status=status,
                origin=Origin(f"someone@{project_id}.iam.gserviceaccount.com"),
                version="beta",
                fields={"labels": dict(labels or {}), "total_storage_bytes": total_storage_bytes},
            )
            return image.render(self.links)

    # -- inspection --------------------------------------------------------------------------------

    def machine_images(self, project: str | None = None) -> list[dict[str, Any]]:
        """:param project: the project (default ``default_project``). :return: its images, by name, as
        the API shows them now."""
        with self._state.session():
            images = self._images.in_project(self._project(project))
            return [image.render(self.links) for image in sorted(images, key=lambda i: i.name)]

    def get_machine_image(self, name: str, project: str | None = None) -> dict[str, Any] | None:
        """:param name: the image. :param project: its project. :return: the image JSON, or None."""
        with self._state.session():
            image = self._images.get(self._project(project), name)
            return None if image is None else image.render(self.links)

    def operations(self, project: str | None = None) -> list[dict[str, Any]]:
        """:param project: the project. :return: its operations, oldest first, as the API shows them now."""
        with self._state.session() as now:
            found = sorted(self._state.operations(self._project(project)), key=lambda op: (op.start, op.name))
            return [op.render(now, self.clock, self.links) for op in found]

    @property
    def requests(self) -> list[RecordedRequest]:
        """:return: the recorded API requests, in arrival order (a snapshot)."""
        return self._log.snapshot()

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        self._log.clear()

    def count(self, action: str | None = None, *, status: int | None = None) -> int:
        """:param action: only this action. :param status: only this answered status.
        :return: how many recorded requests match."""
        return self._log.count(action, status)

    # -- faults ------------------------------------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        """Queue a scripted fault (faults are used in the order they were injected).

        :param fault: the fault.
        """
        self._faults.inject(fault)

    def inject_random(
        self,
        rate: float = 0.3,
        kinds: Iterable[str] = DEFAULT_RANDOM_KINDS,
        actions: Iterable[str] | None = None,
        statuses: Iterable[int] = (500, 503, 429),
        retry_after_seconds: float | None = 1.0,
        slow_seconds: float = 2.0,
        seed: int | None = None,
    ) -> None:
        """Give each eligible request a random fault with probability ``rate`` (replaces earlier settings).

        Per action, a kind is drawn among ``kinds`` that apply: ``early_wait`` only on
        ``globalOperations.wait``, ``operation_error`` only on insert/delete, ``accept_then_drop``
        only on insert/delete/setLabels; ``status``, ``drop`` and ``slow`` on every action.

        :param rate: probability per request.
        :param kinds: the kinds to draw from.
        :param actions: only these actions (None = all).
        :param statuses: statuses for ``status`` faults.
        :param retry_after_seconds: ``Retry-After`` sent with 429/503 (None = none).
        :param slow_seconds: delay of ``slow`` faults.
        :param seed: seed (default: derived from the emulator's seed).
        """
        if seed is None and self.seed is not None:
            self._random_faults_seeded += 1
            seed = self.seed + 1000 * self._random_faults_seeded
        self._faults.set_random(
            RandomFaults(
                rate=rate,
                kinds=tuple(kinds),
                actions=None if actions is None else frozenset(actions),
                statuses=tuple(statuses),
                retry_after_seconds=retry_after_seconds,
                slow_seconds=slow_seconds,
                rng=random.Random(seed),
            )
        )

    def clear_faults(self) -> None:
        """Drop scripted faults and stop random injection."""
        self._faults.clear()

    def pending_faults(self) -> list[Fault]:
        """:return: scripted faults not used up yet."""
        return self._faults.pending()

    def forget_request_ids(self) -> None:
        """Forget every remembered requestId (the server's memory expired)."""
        self._state.forget_request_ids()

    # -- standing options --------------------------------------------------------------------------

    @property
    def options(self) -> EmulatorOptions:
        """:return: the standing options (quotas, requestId memory, partial lists); a copy."""
        return self._options.updated({})

    def set_options(self, **changes: Any) -> EmulatorOptions:
        """Change standing options (see :mod:`~airflow_machine_images.emulator.options`); others stay.

        :param changes: ``rate_quota_per_minute``, ``rate_quota_window_seconds``,
            ``concurrent_operations_limit``, ``request_id_ttl_seconds``, ``partial_list_fraction``,
            ``partial_list_warning``.
        :return: the options now in force.
        :raises ValueError: an unknown option or a bad value (nothing is changed then).
        """
        options = self._options.updated(changes)
        self._options = options
        self._state.request_id_ttl_seconds = options.request_id_ttl_seconds
        return self.options

    def _quota_refusal(self, action: str, project: str) -> tuple[str, ApiError] | None:
        """The option (``concurrent_operations_limit`` or ``rate_quota``) refusing this request and its 403,
        or None (the request is then counted against the rate quota)."""
        options = self._options
        if not project:
            return None
        if options.concurrent_operations_limit is not None and action in MUTATING_ACTIONS:
            with self._state.session() as now:
                running = sum(1 for op in self._state.operations(project) if op.phase(now)[0] != "DONE")
            if running >= options.concurrent_operations_limit:
                return "concurrent_operations_limit", errors.concurrent_operations(project)
        if not self._rate_quota.admit(project, options.rate_quota_per_minute, options.rate_quota_window_seconds):
            return "rate_quota", errors.rate_limited(project, limit=options.rate_quota_per_minute)
        return None

    def _thin(self, payload: dict[str, Any], fault: Fault | None) -> bool:
        """Leave items out of a list answer, as a ``partial_list`` fault or the standing option says.

        :return: whether the answer was thinned (or warned).
        """
        code: str | None
        if fault is not None and fault.kind == "partial_list":
            fraction, code = fault.omit_fraction, fault.warning_code or "UNREACHABLE"
        else:
            fraction, code = self._options.partial_list_fraction, self._options.partial_list_warning
        if fraction <= 0:
            return False
        with self._list_rng_lock:
            thin_list(payload, fraction, code, self._list_rng)
        return True

    def _warn_operation(self, project: str, payload: dict[str, Any], fault: Fault) -> None:
        """Give the operation an ``operation_warning`` fault hit a ``warnings[]`` entry (shown once it is DONE)."""
        warning = {
            "code": fault.warning_code or "NOT_CRITICAL_ERROR",
            "message": fault.warning_message or "A non-critical error occurred; the operation went on.",
            "data": [{"key": "fault", "value": "operation_warning"}],
        }
        with self._state.session():
            operation = self._state.operation(project, str(payload.get("name", "")))
            if operation is not None and not operation.warnings:
                operation.warnings.append(warning)
                if payload.get("status") == "DONE":
                    payload["warnings"] = [dict(warning)]

    # -- HTTP entry point --------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: Message, body: bytes) -> Response:
        """Answer one HTTP request (called by the server thread).

        :param method: HTTP method.
        :param target: path and query string.
        :param headers: request headers.
        :param body: request body.
        :return: the response.
        """
        split = urlsplit(target)
        path = split.path
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        if path == "/_emulator" or path.startswith("/_emulator/"):
            return self._control(method, path, query, body)
        started = time.monotonic()
        seq = self._log.arrival()
        override = headers.get("X-HTTP-Method-Override")
        if method == "POST" and override:
            method = override.upper()
            if "application/x-www-form-urlencoded" in headers.get("Content-Type", ""):
                query.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
                body = b""
        parsed: Any = None
        problem: ApiError | None = None
        if method in ("POST", "PUT", "PATCH"):
            try:
                parsed = parse_json_body(body)
            except ApiError as exc:
                problem = exc
        target_route = route(method, path)
        refusal = self._quota_refusal(target_route.action, target_route.project) if target_route.error is None else None
        fault = self._faults.take(target_route.action) if target_route.error is None and refusal is None else None
        kind = fault.kind if fault is not None else None
        status: int | None
        response_headers: dict[str, str] = {}
        if refusal is not None:
            kind, refused = refusal  # recorded like a fault, named after the option that refused it
            status, payload, response_headers = refused.code, refused.payload(), refused.headers
        elif fault is not None and kind in ("status", "rate_limit", "concurrent_operations"):
            if kind == "rate_limit":
                failure = errors.rate_limited(target_route.project)
            elif kind == "concurrent_operations":
                failure = errors.concurrent_operations(target_route.project)
            else:
                failure = errors.status_error(fault.status, fault.retry_after_seconds)
            status, payload, response_headers = failure.code, failure.payload(), failure.headers
        elif kind == "drop":
            status, payload = None, None
        else:
            try:
                if target_route.error is None and problem is not None:
                    raise problem
                payload = self._api.call(Call(target_route, query, parsed, fault))
                status = 200
                if target_route.action in LIST_ACTIONS and self._thin(payload, fault) and kind is None:
                    kind = "partial_list_fraction"  # recorded like a fault, named after the option
                elif fault is not None and kind == "operation_warning":
                    self._warn_operation(target_route.project, payload, fault)
            except ApiError as exc:
                status, payload, response_headers = exc.code, exc.payload(), exc.headers
            except Exception as exc:  # a bug in the emulator: answer like Google would, keep serving
                traceback.print_exc()
                failure = ApiError(500, "backendError", f"Emulator error: {exc!r}")
                status, payload = 500, failure.payload()
            if kind == "accept_then_drop":
                status = None
        action, has_authorization = target_route.action, "Authorization" in headers
        sent_body = redact_secrets(parsed) if isinstance(parsed, dict) else None  # never keep key material

        def finished() -> None:
            recorded = RecordedRequest(
                action=action,
                method=method,
                path=path,
                query=query,
                body=sent_body,
                status=status,
                fault=kind,
                has_authorization=has_authorization,
                started=started,
                finished=time.monotonic(),
            )
            self._log.add(seq, recorded)
            if self.on_request is not None:
                self.on_request(recorded)

        return Response(
            status=status,
            body=b"" if payload is None else _json_bytes(payload),
            headers=response_headers,
            delay=fault.delay_seconds if fault is not None and kind == "slow" else 0.0,
            on_finish=finished,
        )

    def _control(self, method: str, path: str, query: dict[str, str], body: bytes) -> Response:
        """Answer a ``/_emulator/*`` request (not recorded, never faulted)."""
        try:
            parsed = parse_json_body(body)
        except ApiError as error:
            return Response(status=400, body=_json_bytes(error.payload()))
        status, payload = control.handle(self, method, path, query, parsed)
        return Response(status=status, body=_json_bytes(payload))
