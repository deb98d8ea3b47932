"""The ``/_emulator/*`` endpoints: seed, inspect and script the emulator from another process.

Each endpoint calls one public method of the emulator, on the collaborator that has it (:mod:`.seeding`,
:mod:`.behaviour`, :mod:`.recording`); a body's fields are that method's arguments.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from airflow_machine_images.emulator.bodies import json_bytes, parse_json_body
from airflow_machine_images.emulator.errors import ApiError
from airflow_machine_images.emulator.faults import Fault
from airflow_machine_images.emulator.serial_console import SerialConsoles
from airflow_machine_images.emulator.server import Response

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_machine_images.emulator.behaviour import Behaviour
    from airflow_machine_images.emulator.recording import RequestLog
    from airflow_machine_images.emulator.seeding import Seeder

__all__ = ["ROUTES", "ControlEndpoints"]

#: The control API, as ``GET /_emulator/`` lists it (docs/emulator.md documents each route with an example).
ROUTES: list[dict[str, str]] = [
    {"route": "GET /_emulator/", "does": "this index"},
    {"route": "GET /_emulator/health", "does": "liveness, and the emulator's base URL"},
    {"route": "GET /_emulator/requests", "does": "the recorded API requests (action, method, path, query, status)"},
    {"route": "DELETE /_emulator/requests", "does": "forget the recorded requests"},
    {"route": "GET /_emulator/machineImages?project=P", "does": "every machine image (of one project)"},
    {
        "route": "POST /_emulator/machineImages",
        "does": "seed an image; body: name, source_instance, project, status, creation_timestamp, labels, "
        "total_storage_bytes",
    },
    {
        "route": "GET /_emulator/operations?project=P&zone=Z",
        "does": "every global operation (of one project), or with zone every zonal operation of that zone",
    },
    {"route": "POST /_emulator/projects", "does": "make a project known; body: project, number (its project number)"},
    {"route": "GET /_emulator/instances?project=P", "does": "every instance (of one project)"},
    {
        "route": "POST /_emulator/instances",
        "does": "add an instance (any project); body: instance, project, disk_size_gb, operation_seconds, "
        "labels, status, source_machine_image, disks ([{sizeGb, autoDelete}], boot first), deletion_protection, "
        "attach_disks",
    },
    {"route": "GET /_emulator/disks?project=P", "does": "every disk (of one project)"},
    {
        "route": "POST /_emulator/disks",
        "does": "add a disk attached to nothing; body: name, zone, project, size_gb, labels",
    },
    {
        "route": "POST /_emulator/unreachable-zones",
        "does": 'zones whose instances.aggregatedList scope answers UNREACHABLE; body: {"zones": [...]} ([] clears)',
    },
    {
        "route": "POST /_emulator/faults",
        "does": "queue a fault; body: kind (status, drop, accept_then_drop, slow, early_wait, operation_error, "
        "rate_limit, concurrent_operations, partial_list, operation_warning, label_filter_drop), action, times, "
        "status, retry_after_seconds, delay_seconds, error_code, error_message, http_error_status_code, "
        "duration_seconds, omit_fraction, warning_code, warning_message, instance_names; "
        'or {"random": {rate, kinds, actions, statuses, retry_after_seconds, slow_seconds, seed, error_code}}',
    },
    {"route": "GET /_emulator/faults", "does": "the queued faults"},
    {"route": "DELETE /_emulator/faults", "does": "drop every queued fault and stop random faults"},
    {"route": "POST /_emulator/forget-request-ids", "does": "forget every requestId (as the server does in time)"},
    {
        "route": "POST /_emulator/boot-logs",
        "does": "plan an instance's serial console; body: instance (ZONE/NAME), log (linux, windows, panic, hang, "
        "silent), project, lines, boot_seconds",
    },
    {"route": "GET /_emulator/serial-console", "does": "the serial console defaults"},
    {
        "route": "PUT /_emulator/serial-console",
        "does": "change the serial console defaults; body: any of default_log, boot_seconds, buffer_bytes, "
        "answer_bytes (0: answers are not cut)",
    },
    {"route": "GET /_emulator/options", "does": "the standing options (quotas, requestId memory, partial lists)"},
    {
        "route": "PUT /_emulator/options",
        "does": "change standing options; body: any of rate_quota_per_minute, rate_quota_window_seconds, "
        "concurrent_operations_limit, request_id_ttl_seconds, partial_list_fraction, partial_list_warning, "
        "source_image_limit_scale (null turns a limit off)",
    },
]


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValueError("Expected a JSON object body")
    return body


def _call_with(body: Any, method: Callable[..., Any]) -> Any:
    """Call a seeding or fault method with a body's fields as its keyword arguments.

    :param body: the parsed body (a JSON object).
    :param method: the method; its parameters are the fields allowed.
    :return: what it returns.
    :raises ValueError: the body is not an object, or has a field that is not a parameter.
    """
    fields = _object(body)
    allowed = set(inspect.signature(method).parameters)
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"Unknown fields: {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(allowed))})")
    return method(**fields)


def _done(action: Callable[[], None]) -> dict[str, Any]:
    action()
    return {}


class ControlEndpoints:
    """Answers ``/_emulator/*`` requests (never recorded, never faulted).

    :param seeder: seeding and reading back.
    :param behaviour: faults and standing options.
    :param log: the request log.
    :param url: gives the emulator's base URL.
    :param consoles: the instances' serial consoles.
    """

    def __init__(
        self,
        seeder: Seeder,
        behaviour: Behaviour,
        log: RequestLog,
        url: Callable[[], str],
        consoles: SerialConsoles | None = None,
    ) -> None:
        self._seeder = seeder
        self._behaviour = behaviour
        self._log = log
        self._url = url
        self._consoles = consoles if consoles is not None else SerialConsoles()

    def handle(self, method: str, path: str, query: dict[str, str], body: bytes) -> Response:
        """Answer a control request.

        :param method: HTTP method.
        :param path: ``/_emulator/...``.
        :param query: query parameters.
        :param body: the raw body (JSON, or empty).
        :return: the response (400 for a body that is not JSON).
        """
        try:
            parsed = parse_json_body(body)
        except ApiError as error:
            return Response(status=400, body=json_bytes(error.payload()))
        status, payload = self.answer(method, path, query, parsed)
        return Response(status=status, body=json_bytes(payload))

    def answer(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        """:param method: HTTP method. :param path: ``/_emulator/...``. :param query: query parameters.
        :param body: the parsed JSON body, or None. :return: HTTP status and JSON answer."""
        routes = self._routes(query, body)
        action = routes.get((method, path))
        if action is None:
            known = {p for _, p in routes}
            error = (
                ApiError(405, "methodNotAllowed", f"Method {method} is not allowed on {path}")
                if path in known
                else ApiError(404, "notFound", f"No control endpoint {path}")
            )
            return error.code, error.payload()
        try:
            return 200, action()
        except (ValueError, TypeError) as exc:
            error = ApiError(400, "invalid", str(exc))
            return 400, error.payload()

    def _routes(self, query: dict[str, str], body: Any) -> dict[tuple[str, str], Callable[[], Any]]:
        """Each endpoint's method and path, and what it does with this request's query and body."""
        seeder, behaviour, log = self._seeder, self._behaviour, self._log
        project = query.get("project") or None
        return {
            ("GET", "/_emulator/"): lambda: {
                "routes": ROUTES,
                "docs": "docs/emulator.md, section 'The emulator's control API'",
            },
            ("GET", "/_emulator/health"): lambda: {"status": "ok", "url": self._url()},
            ("GET", "/_emulator/requests"): lambda: [r.to_json() for r in log.snapshot()],
            ("DELETE", "/_emulator/requests"): lambda: _done(log.clear),
            ("GET", "/_emulator/machineImages"): lambda: seeder.machine_images(project),
            ("POST", "/_emulator/machineImages"): lambda: _call_with(body, seeder.add_machine_image),
            ("GET", "/_emulator/operations"): lambda: seeder.operations(project, query.get("zone") or None),
            ("GET", "/_emulator/instances"): lambda: seeder.instances(project),
            ("POST", "/_emulator/instances"): lambda: _call_with(body, seeder.add_instance),
            ("GET", "/_emulator/disks"): lambda: seeder.disks(project),
            ("POST", "/_emulator/disks"): lambda: _call_with(body, seeder.add_disk),
            ("POST", "/_emulator/projects"): lambda: _call_with(body, seeder.add_project),
            ("POST", "/_emulator/unreachable-zones"): lambda: {"zones": _call_with(body, seeder.set_unreachable_zones)},
            ("POST", "/_emulator/boot-logs"): lambda: _call_with(body, seeder.set_boot_log),
            ("GET", "/_emulator/serial-console"): self._consoles.settings,
            ("PUT", "/_emulator/serial-console"): lambda: _call_with(body, self._consoles.configure),
            ("POST", "/_emulator/faults"): lambda: self._faults(body),
            ("GET", "/_emulator/faults"): lambda: [fault.to_json() for fault in behaviour.pending_faults()],
            ("DELETE", "/_emulator/faults"): lambda: _done(behaviour.clear_faults),
            ("POST", "/_emulator/forget-request-ids"): lambda: _done(behaviour.forget_request_ids),
            ("GET", "/_emulator/options"): lambda: behaviour.options.to_json(),
            ("PUT", "/_emulator/options"): lambda: behaviour.set_options(**_object(body)).to_json(),
        }

    def _faults(self, body: Any) -> dict[str, Any]:
        """``POST /_emulator/faults``: a scripted fault, or ``{"random": settings}``."""
        fields = _object(body)
        if "random" in fields:
            settings = _object(fields["random"])
            _call_with(settings, self._behaviour.inject_random)
            return {"random": settings}
        fault = Fault.from_json(fields)
        self._behaviour.inject(fault)
        return fault.to_json()
