"""HTTP dispatch: from one request the server has read to its response, recorded.

The server (:mod:`.server`) has already refused what must not reach the application (a Host that is
not loopback, a body too large). Here a request is routed (``/_emulator/...`` to the control
endpoints, never recorded nor faulted), its body parsed, the standing options and faults applied
(:mod:`.behaviour`), the API asked (:mod:`.api`), and the exchange recorded (:mod:`.recording`).
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from airflow_machine_images.emulator import errors
from airflow_machine_images.emulator.api import route
from airflow_machine_images.emulator.bodies import json_bytes, parse_json_body, redact_secrets
from airflow_machine_images.emulator.errors import ApiError
from airflow_machine_images.emulator.faults import LIST_ACTIONS
from airflow_machine_images.emulator.recording import RecordedRequest, body_summary
from airflow_machine_images.emulator.routing import Call
from airflow_machine_images.emulator.server import Response

if TYPE_CHECKING:
    from collections.abc import Callable
    from email.message import Message

    from airflow_machine_images.emulator.api import EmulatedApi
    from airflow_machine_images.emulator.behaviour import Behaviour
    from airflow_machine_images.emulator.control import ControlEndpoints
    from airflow_machine_images.emulator.faults import Fault
    from airflow_machine_images.emulator.recording import RequestLog
    from airflow_machine_images.emulator.routing import Route

__all__ = ["Dispatcher"]

#: Answers that refuse the request's body itself (bad request, too large): the log keeps only a summary.
_REFUSED_BODY_STATUSES = frozenset({400, 413})
#: Fault kinds answered with an error instead of asking the API.
_ERROR_FAULTS = ("status", "rate_limit", "concurrent_operations")


@dataclass
class _Request:
    """An API request as read: the effective method (after ``X-HTTP-Method-Override``), route and body."""

    method: str
    path: str
    query: dict[str, str]
    route: Route
    body: Any = field(repr=False)
    problem: ApiError | None
    has_authorization: bool
    started: float
    seq: int


@dataclass
class _Outcome:
    """What to answer: the status (None: drop the connection), the JSON, headers, and the fault kind recorded."""

    status: int | None
    payload: Any
    headers: dict[str, str]
    kind: str | None


class Dispatcher:
    """Answers every HTTP request the server hands over.

    :param api: the emulated API.
    :param behaviour: faults and standing options.
    :param log: the request log.
    :param control: the ``/_emulator/*`` endpoints.
    :param on_request: called with each finished API request (e.g. for logging).
    """

    def __init__(
        self,
        api: EmulatedApi,
        behaviour: Behaviour,
        log: RequestLog,
        control: ControlEndpoints,
        on_request: Callable[[RecordedRequest], None] | None = None,
    ) -> None:
        self._api = api
        self._behaviour = behaviour
        self._log = log
        self._control = control
        self.on_request = on_request

    def handle(self, method: str, target: str, headers: Message, body: bytes) -> Response:
        """Answer one HTTP request (called by the server thread).

        :param method: HTTP method.
        :param target: path and query string.
        :param headers: request headers.
        :param body: request body.
        :return: the response.
        """
        split = urlsplit(target)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        if split.path == "/_emulator" or split.path.startswith("/_emulator/"):
            return self._control.handle(method, split.path, query, body)
        request = self._read(method, split.path, query, headers, body)
        routed, fault = request.route, None
        refusal = self._behaviour.quota_refusal(routed.action, routed.project) if routed.error is None else None
        if refusal is not None:
            name, refused = refusal  # recorded like a fault, named after the option that refused it
            outcome = _Outcome(refused.code, refused.payload(), refused.headers, name)
        else:
            fault = self._behaviour.take_fault(routed.action) if routed.error is None else None
            outcome = self._faulted(routed, fault) or self._answer(request, fault)
        return Response(
            status=outcome.status,
            body=b"" if outcome.payload is None else json_bytes(outcome.payload),
            headers=outcome.headers,
            delay=fault.delay_seconds if fault is not None and outcome.kind == "slow" else 0.0,
            on_finish=lambda: self._record(request, outcome, body),
        )

    def _read(self, method: str, path: str, query: dict[str, str], headers: Message, body: bytes) -> _Request:
        """Number the request, apply ``X-HTTP-Method-Override`` (a form body then holds the query), parse
        the body of POST/PUT/PATCH (a parse error is answered only if the route is known), route it."""
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
        has_authorization = "Authorization" in headers
        return _Request(method, path, query, route(method, path), parsed, problem, has_authorization, started, seq)

    @staticmethod
    def _faulted(routed: Route, fault: Fault | None) -> _Outcome | None:
        """The answer of a fault that answers in place of the API (an error, or a drop), else None."""
        if fault is None or fault.kind not in (*_ERROR_FAULTS, "drop"):
            return None
        if fault.kind == "drop":
            return _Outcome(None, None, {}, fault.kind)
        if fault.kind == "rate_limit":
            failure = errors.rate_limited(routed.project)
        elif fault.kind == "concurrent_operations":
            failure = errors.concurrent_operations(routed.project)
        else:
            failure = errors.status_error(fault.status, fault.retry_after_seconds)
        return _Outcome(failure.code, failure.payload(), failure.headers, fault.kind)

    def _answer(self, request: _Request, fault: Fault | None) -> _Outcome:
        """Ask the API; thin a list answer, warn an operation, drop an ``accept_then_drop`` answer as asked."""
        kind = fault.kind if fault is not None else None
        routed = request.route
        try:
            if routed.error is None and request.problem is not None:
                raise request.problem
            payload = self._api.call(Call(routed, request.query, request.body, fault))
            outcome = _Outcome(200, payload, {}, kind)
            if routed.action in LIST_ACTIONS and self._behaviour.thin(payload, fault) and kind is None:
                outcome.kind = "partial_list_fraction"  # recorded like a fault, named after the option
            elif fault is not None and kind == "operation_warning":
                self._behaviour.warn_operation(routed.project, payload, fault)
        except ApiError as exc:
            outcome = _Outcome(exc.code, exc.payload(), exc.headers, kind)
        except Exception as exc:  # a bug in the emulator: answer like Google would, keep serving
            traceback.print_exc()
            failure = ApiError(500, "backendError", f"Emulator error: {exc!r}")
            outcome = _Outcome(500, failure.payload(), {}, kind)
        if kind == "accept_then_drop":
            outcome.status = None
        return outcome

    def _record(self, request: _Request, outcome: _Outcome, raw: bytes) -> None:
        """Keep the finished request and tell ``on_request``.

        The body is kept parsed with its key material redacted; a refused one (answered 400 or 413, or
        sent to no known method: it may be anything, up to the size limit) only as a summary. A body the
        API took but answered otherwise (409, 404 for the resource, a fault) is kept: its sender may be
        the thing under test, and the log's limits bound it.

        :param request: the request.
        :param outcome: its answer.
        :param raw: its body as received.
        """
        refused = outcome.status in _REFUSED_BODY_STATUSES or request.route.action == "unknown"
        kept = redact_secrets(request.body) if isinstance(request.body, dict) and not refused else None
        recorded = RecordedRequest(
            action=request.route.action,
            method=request.method,
            path=request.path,
            query=request.query,
            body=kept,  # never key material
            status=outcome.status,
            fault=outcome.kind,
            has_authorization=request.has_authorization,
            started=request.started,
            finished=time.monotonic(),
            body_summary=body_summary(raw) if refused and raw else None,
        )
        self._log.add(request.seq, recorded)
        if self.on_request is not None:
            self.on_request(recorded)
