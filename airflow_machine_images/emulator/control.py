"""The ``/_emulator/*`` endpoints: seed, inspect and script the emulator from another process."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_machine_images.emulator.errors import ApiError
from airflow_machine_images.emulator.faults import Fault

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_machine_images.emulator.core import ComputeEngineEmulator

__all__ = ["handle"]

_RANDOM_KEYS = {"rate", "kinds", "actions", "statuses", "retry_after_seconds", "slow_seconds", "seed"}
_IMAGE_KEYS = {
    "name",
    "source_instance",
    "project",
    "status",
    "creation_timestamp",
    "labels",
    "total_storage_bytes",
}
_INSTANCE_KEYS = {
    "instance",
    "project",
    "disk_size_gb",
    "operation_seconds",
    "labels",
    "status",
    "source_machine_image",
}
_PROJECT_KEYS = {"project", "number"}


#: The control API, as ``GET /_emulator/`` lists it (README.md documents each route with an example).
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
    {"route": "GET /_emulator/operations?project=P", "does": "every global operation (of one project)"},
    {"route": "POST /_emulator/projects", "does": "make a project known; body: project, number (its project number)"},
    {
        "route": "POST /_emulator/instances",
        "does": "add an instance (any project); body: instance, project, disk_size_gb, operation_seconds, "
        "labels, status, source_machine_image",
    },
    {
        "route": "POST /_emulator/unreachable-zones",
        "does": 'zones whose instances.aggregatedList scope answers UNREACHABLE; body: {"zones": [...]} ([] clears)',
    },
    {
        "route": "POST /_emulator/faults",
        "does": "queue a fault; body: kind (status, drop, accept_then_drop, slow, early_wait, operation_error, "
        "rate_limit, concurrent_operations, partial_list, operation_warning), action, times, status, "
        "retry_after_seconds, delay_seconds, error_code, error_message, http_error_status_code, duration_seconds, "
        "omit_fraction, warning_code, warning_message; "
        'or {"random": {rate, kinds, actions, statuses, retry_after_seconds, slow_seconds, seed}}',
    },
    {"route": "GET /_emulator/faults", "does": "the queued faults"},
    {"route": "DELETE /_emulator/faults", "does": "drop every queued fault and stop random faults"},
    {"route": "POST /_emulator/forget-request-ids", "does": "forget every requestId (as the server does in time)"},
    {"route": "GET /_emulator/options", "does": "the standing options (quotas, requestId memory, partial lists)"},
    {
        "route": "PUT /_emulator/options",
        "does": "change standing options; body: any of rate_quota_per_minute, rate_quota_window_seconds, "
        "concurrent_operations_limit, request_id_ttl_seconds, partial_list_fraction, partial_list_warning "
        "(null turns a limit off)",
    },
]


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValueError("Expected a JSON object body")
    return body


def _only(body: dict[str, Any], allowed: set[str]) -> dict[str, Any]:
    unknown = set(body) - allowed
    if unknown:
        raise ValueError(f"Unknown fields: {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(allowed))})")
    return body


def handle(
    emulator: ComputeEngineEmulator, method: str, path: str, query: dict[str, str], body: Any
) -> tuple[int, Any]:
    """Answer a control request (never recorded).

    :param emulator: the emulator.
    :param method: HTTP method.
    :param path: ``/_emulator/...``.
    :param query: query parameters.
    :param body: parsed JSON body, or None.
    :return: HTTP status and JSON answer.
    """
    routes: dict[tuple[str, str], Any] = {
        ("GET", "/_emulator/"): lambda: {"routes": ROUTES, "docs": "README.md, section 'The emulator's control API'"},
        ("GET", "/_emulator/health"): lambda: {"status": "ok", "url": emulator.url},
        ("GET", "/_emulator/requests"): lambda: [r.to_json() for r in emulator.requests],
        ("DELETE", "/_emulator/requests"): lambda: _done(emulator.clear_requests),
        ("GET", "/_emulator/machineImages"): lambda: emulator.machine_images(query.get("project") or None),
        ("POST", "/_emulator/machineImages"): lambda: emulator.add_machine_image(**_only(_object(body), _IMAGE_KEYS)),
        ("GET", "/_emulator/operations"): lambda: emulator.operations(query.get("project") or None),
        ("POST", "/_emulator/instances"): lambda: emulator.add_instance(**_only(_object(body), _INSTANCE_KEYS)),
        ("POST", "/_emulator/projects"): lambda: emulator.add_project(**_only(_object(body), _PROJECT_KEYS)),
        ("POST", "/_emulator/unreachable-zones"): lambda: {
            "zones": emulator.set_unreachable_zones(_only(_object(body), {"zones"}).get("zones", []))
        },
        ("POST", "/_emulator/faults"): lambda: _faults(emulator, _object(body)),
        ("GET", "/_emulator/faults"): lambda: [fault.to_json() for fault in emulator.pending_faults()],
        ("DELETE", "/_emulator/faults"): lambda: _done(emulator.clear_faults),
        ("POST", "/_emulator/forget-request-ids"): lambda: _done(emulator.forget_request_ids),
        ("GET", "/_emulator/options"): lambda: emulator.options.to_json(),
        ("PUT", "/_emulator/options"): lambda: emulator.set_options(**_object(body)).to_json(),
    }
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


def _done(action: Callable[[], None]) -> dict[str, Any]:
    action()
    return {}


def _faults(emulator: ComputeEngineEmulator, body: dict[str, Any]) -> dict[str, Any]:
    if "random" in body:
        settings = _only(_object(body["random"]), _RANDOM_KEYS)
        emulator.inject_random(**settings)
        return {"random": settings}
    fault = Fault.from_json(body)
    emulator.inject(fault)
    return fault.to_json()
