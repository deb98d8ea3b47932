"""From an HTTP answer to data or a typed error: one mapping for both transports.

:func:`parse_response` turns a response into its JSON object after checking the shape of every field
the package reads, or raises the :class:`~airflow_machine_images.exceptions.ComputeEngineApiError`
subclass its status and reason stand for (:func:`api_error`), with secrets scrubbed from the server's
words. The errors of calls that got no usable answer (:func:`transport_error`, :func:`redirect_error`,
:func:`deadline_exceeded`, :func:`response_too_large`) and of operations that ended with errors
(:func:`raise_for_operation_error`) are built here too, so both hooks raise the same ones.
"""

from __future__ import annotations

import email.utils
import json
import re
import socket
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_machine_images.api.answers import ServerAnswer, parse_http_date
from airflow_machine_images.api.redaction import scrub, scrub_message
from airflow_machine_images.exceptions import (
    ComputeEngineApiError,
    ConcurrentOperationsQuotaError,
    DeadlineExceededError,
    EndpointUnreachableError,
    ErrorDetails,
    InvalidRequestError,
    MalformedResponseError,
    PermissionDeniedError,
    PreconditionFailedError,
    QuotaExceededError,
    RateLimitedError,
    RedirectNotFollowedError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
    ResourceNotReadyError,
    ResponseLimitError,
    TransientApiError,
    operation_failed,
    parse_error_details,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from airflow_machine_images.api.calls import ApiCall

#: Statuses worth retrying: rate limits and server-side faults.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
#: 403 reasons that are per-minute rate limits (retry), not missing permissions.
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
#: Reasons that mean a resource quota is used up: retrying will not help.
QUOTA_REASONS = frozenset({"quotaExceeded", "QUOTA_EXCEEDED"})
#: The ``ErrorInfo`` reason of a 403 for too many operations in flight; it clears as they finish
#: (Compute Engine docs, "Operations quota"; Terraform's ``is403ConcurrentOperationsQuotaError``).
CONCURRENT_OPERATIONS_REASON = "CONCURRENT_OPERATIONS_QUOTA_EXCEEDED"
#: A 400 reason for a resource in a temporary state (Terraform retries it: magic-modules pull 13881).
NOT_READY_REASON = "resourceNotReady"

#: The text fields an answer must have, by action (the package reads them without a default).
_REQUIRED_FIELDS = {
    "machineImages.insert": ("name", "status"),
    "machineImages.delete": ("name", "status"),
    "machineImages.setLabels": ("name", "status"),
    "globalOperations.get": ("name", "status"),
    "globalOperations.wait": ("name", "status"),
    "machineImages.get": ("name", "status"),
    "instances.insert": ("name", "status"),
    "instances.delete": ("name", "status"),
    "instances.get": ("name", "status", "selfLink"),
    "zoneOperations.get": ("name", "status"),
    "zoneOperations.wait": ("name", "status"),
}
#: Actions that answer with an Operation (or a list of them), whose status is one of three.
_OPERATION_ACTIONS = frozenset(
    {
        "machineImages.insert",
        "machineImages.delete",
        "machineImages.setLabels",
        "globalOperations.get",
        "globalOperations.wait",
        "globalOperations.list",
        "instances.insert",
        "instances.delete",
        "zoneOperations.get",
        "zoneOperations.wait",
        "zoneOperations.list",
    }
)
#: The deepest nesting of objects and lists an answer may have. The API's answers are protocol buffers
#: rendered as JSON, and protobuf's JSON parser refuses messages nested deeper than 100 levels by default
#: (``google.protobuf.json_format.Parse``, ``max_recursion_depth=100``, in the venv); Compute Engine's own
#: resources nest fewer than 10. Anything deeper comes
#: from a misbehaving endpoint, and would overflow the recursion of what reads it next (a serializer,
#: a logger): a 200,000-level answer raised a bare ``RecursionError`` that failed every waiter of a poller.
MAX_ANSWER_DEPTH = 100
#: The statuses an Operation may have.
OPERATION_STATUSES = frozenset({"PENDING", "RUNNING", "DONE"})
#: The JSON types of the fields the package reads, in a resource or a list item.
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "status": (str,),
    "selfLink": (str,),
    "targetLink": (str,),
    "sourceInstance": (str,),
    "creationTimestamp": (str,),
    "labelFingerprint": (str,),
    "httpErrorMessage": (str,),
    "id": (str, int),
    "totalStorageBytes": (str, int),
    "progress": (int,),
    "httpErrorStatusCode": (int,),
    "labels": (dict,),
    "error": (dict,),
    "storageLocations": (list,),
}


def transport_error(call: ApiCall, error: BaseException) -> ComputeEngineApiError:
    """The typed error for a request that got no HTTP answer.

    A host name that does not resolve, or a host that refuses connections, is a configuration error
    (a wrong endpoint, an emulator that is not running): :class:`EndpointUnreachableError`, which is
    neither retried nor retried by Airflow. Anything else (a dropped connection, a timeout, a reset)
    may pass: :class:`TransientApiError`, retried with backoff.

    :param call: the call that was made.
    :param error: the transport's exception (``requests`` or ``aiohttp``).
    """
    host = urlsplit(call.url).hostname
    cause = _root_connection_cause(error)
    if isinstance(cause, socket.gaierror):
        return EndpointUnreachableError(
            f"{call.describe()} failed: the API host {host!r} does not resolve ({cause}); check the endpoint",
            action=call.action,
        )
    if isinstance(cause, ConnectionRefusedError):
        return EndpointUnreachableError(
            f"{call.describe()} failed: {host!r} refused the connection; check the endpoint (is the emulator running?)",
            action=call.action,
        )
    return TransientApiError(f"{call.describe()} failed: {type(error).__name__}: {error}", action=call.action)


def _root_connection_cause(error: BaseException) -> BaseException | None:
    """The name-resolution or refused-connection error behind a transport's exception, if any.

    ``requests`` wraps it in urllib3's ``MaxRetryError.reason``; aiohttp in ``os_error`` or ``__cause__``.

    :param error: the transport's exception.
    """
    pending: list[object] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, (socket.gaierror, ConnectionRefusedError)):
            return current
        pending.extend((current.__cause__, current.__context__, getattr(current, "reason", None)))
        pending.extend((getattr(current, "os_error", None), *current.args))
    return None


def response_too_large(call: ApiCall, limit: int) -> ResponseLimitError:
    """The error for an answer larger than ``limit`` bytes (not retried: the endpoint misbehaves).

    :param call: the call that was made.
    :param limit: the hook's ``max_response_bytes``.
    """
    return ResponseLimitError(
        f"{call.describe()} answered with more than {limit / 2**20:g} MiB ({limit:,} bytes), the limit of one "
        "answer (max_response_bytes); no Compute Engine answer is that large: the endpoint misbehaves",
        action=call.action,
    )


def deadline_exceeded(call: ApiCall, total: float, read: float) -> DeadlineExceededError:
    """The error for an attempt that outlasted its whole-call deadline.

    :param call: the call that was made.
    :param total: the attempt's deadline, in seconds.
    :param read: the per-read timeout that was in force.
    """
    return DeadlineExceededError(
        f"{call.describe()} failed: no complete answer within {total:g} s, the deadline of the whole call "
        f"(call_timeout, or connect_timeout + read timeout, capped by the caller's deadline); each read alone "
        f"may take {read:g} s, but a server that drips bytes is cut here",
        action=call.action,
    )


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date); None if absent or unreadable.

    :param value: the header value.
    :param now: the current epoch time (for tests).
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _snippet(raw: bytes, limit: int = 200) -> str:
    """A body as one short line for an error message: markup dropped, whitespace collapsed, cut at ``limit``.

    :param raw: a response body (already scrubbed of secrets).
    :param limit: the most characters kept.
    """
    text = raw.decode("utf-8", errors="replace")
    text = re.sub(r"<[^>]*>", " ", text)
    text = " ".join(text.split())
    return text[:limit] + ("..." if len(text) > limit else "")


def parse_response(
    call: ApiCall, status: int, raw: bytes, headers: Mapping[str, str], *, secrets: Iterable[str | None] = ()
) -> dict[str, Any]:
    """Turn a response into its JSON object (with the server's time of answering), or raise the typed error it
    stands for.

    :param call: the call that was made.
    :param status: the HTTP status.
    :param raw: the response body.
    :param headers: the response headers (case-insensitive mapping preferred).
    :param secrets: values that must not appear in an error (the access token); the call's key
        material is added, since a server or proxy may quote the request back in its error.
    :raises ComputeEngineApiError: a subclass chosen by status and reason.
    """
    secrets = list(secrets)
    try:
        if status >= 300:
            raise _status_error(call, status, raw, headers, secrets)
        data = _json_object(call, status, raw, secrets)
        problem = _answer_problem(call.action, data)
    except RecursionError:  # any step that walks the answer: never a bare RecursionError (it fails every waiter)
        raise _too_deep(call, status) from None
    if problem:
        raise MalformedResponseError(f"{call.describe()} answered {problem}", http_status=status, action=call.action)
    return ServerAnswer(data, parse_http_date(_header(headers, "Date")), size=len(raw))


def _too_deep(call: ApiCall, status: int) -> MalformedResponseError:
    """The error for an answer nested deeper than :data:`MAX_ANSWER_DEPTH` levels.

    :param call: the call that was made.
    :param status: the HTTP status.
    """
    return MalformedResponseError(
        f"{call.describe()} answered HTTP {status} with JSON nested deeper than {MAX_ANSWER_DEPTH} levels; "
        "no Compute Engine answer is: the endpoint misbehaves",
        http_status=status,
        action=call.action,
    )


def nesting_exceeds(value: Any, limit: int = MAX_ANSWER_DEPTH) -> bool:
    """Whether parsed JSON nests objects and lists deeper than ``limit`` (walked without recursion).

    :param value: parsed JSON.
    :param limit: the deepest nesting allowed.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, (dict, list)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (current.values() if isinstance(current, dict) else current))
    return False


def _status_error(
    call: ApiCall, status: int, raw: bytes, headers: Mapping[str, str], secrets: list[str | None]
) -> ComputeEngineApiError:
    """The error an HTTP status of 300 or more stands for, the server's words scrubbed of secrets.

    :param call: the call that was made.
    :param status: the HTTP status (>= 300).
    :param raw: the response body.
    :param headers: the response headers.
    :param secrets: values that must not appear in the error (the call's key material is added).
    """
    if status < 400:
        return redirect_error(call, status, headers)
    # Scrubbed twice: as bytes, and once decoded (a JSON escape such as \u003d hides a key from the first).
    error = api_error(call, status, scrub(raw, secrets, call.body), headers)
    return _scrubbed_error(error, lambda text: scrub_message(text, secrets, call.body))


def _json_object(call: ApiCall, status: int, raw: bytes, secrets: list[str | None]) -> dict[str, Any]:
    """The body of a successful answer as a JSON object (an empty body reads as ``{}``).

    :param call: the call that was made.
    :param status: the HTTP status (< 300).
    :param raw: the response body.
    :param secrets: values that must not appear in the error (the call's key material is added).
    :raises MalformedResponseError: the body is not JSON, or not a JSON object.
    """
    try:
        data = json.loads(raw) if raw else {}
    except RecursionError:
        raise _too_deep(call, status) from None
    except ValueError:
        raise MalformedResponseError(
            f"{call.describe()} answered HTTP {status} with a body that is not JSON: "
            f"{scrub_message(_snippet(scrub(raw, secrets, call.body)), secrets, call.body)!r}",
            http_status=status,
            action=call.action,
        ) from None
    if not isinstance(data, dict):
        raise MalformedResponseError(
            f"{call.describe()} answered with JSON {type(data).__name__}, expected an object",
            http_status=status,
            action=call.action,
        )
    if nesting_exceeds(data):  # the triggers, serializers and loggers after us recurse
        raise _too_deep(call, status)
    return data


def _answer_problem(action: str, data: Mapping[str, Any]) -> str | None:
    """What is wrong with a decoded answer, in the words that follow "answered", or None.

    :param action: the API method that answered.
    :param data: the answer's JSON object.
    """
    missing = [f for f in _REQUIRED_FIELDS.get(action, ()) if not isinstance(data.get(f), str)]
    if missing:
        return f"without the field(s) {', '.join(missing)}"
    if "nextPageToken" in data and not isinstance(data["nextPageToken"], (str, type(None))):
        return "with a 'nextPageToken' that is not text"
    # An aggregated list's items map scopes ("zones/Z") to scoped lists (InstanceAggregatedList schema).
    items_type = dict if action.endswith(".aggregatedList") else list
    if "items" in data and not isinstance(data["items"], items_type):
        return f"with 'items' that is not a{'n object' if items_type is dict else ' list'}"
    problem = _shape_problem(action, data)
    return f"with {problem}" if problem else None


def _scrubbed_error(error: ComputeEngineApiError, clean: Callable[[str], str]) -> ComputeEngineApiError:
    """``error`` with its message and every string of its ``errors`` passed through ``clean``.

    :param error: an error built from a server's answer.
    :param clean: hides secrets in one string.
    """
    error.message = clean(error.message)
    error.args = (error.message,)
    error.errors = [{key: clean(v) if isinstance(v, str) else v for key, v in e.items()} for e in error.errors]
    return error


def _shape_problem(action: str, data: Mapping[str, Any]) -> str | None:
    """What is wrong with the shape of an answer (or its list items), or None.

    Only the fields the package reads are checked, so that garbage is reported here, naming the
    field, instead of surfacing later as a ``KeyError`` or ``TypeError`` in an operator or a trigger.

    :param action: the API method that answered.
    :param data: the answer's JSON object.
    """
    listing = action.endswith(".list")
    resources = data.get("items", []) if listing else [data]
    for index, resource in enumerate(resources):
        where = f"items[{index}]" if listing else "a resource"
        if not isinstance(resource, dict):
            return f"{where} that is {type(resource).__name__}, not an object"
        if listing and not isinstance(resource.get("name"), str):
            return f"{where} without a name"
        for key, types in _FIELD_TYPES.items():
            value = resource.get(key)
            if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
                expected = " or ".join(t.__name__ for t in types)
                return f"{where} whose {key!r} is {type(value).__name__}, not {expected}"
        if action in _OPERATION_ACTIONS and resource.get("status", "DONE") not in OPERATION_STATUSES:
            return f"{where} whose status {str(resource.get('status'))[:40]!r} is not an operation status"
    return None


def redirect_error(call: ApiCall, status: int, headers: Mapping[str, str]) -> RedirectNotFollowedError:
    """The error for a redirect, which is never followed: it names the status and where it pointed.

    Compute Engine is not known to redirect API calls (no documentation says either way: unverified),
    so the safe reading is taken: a redirect comes from something between us and the API (a proxy, a
    captive portal, a misconfigured endpoint), and following it would send the request, its bearer
    token and any customer-supplied key to a host nobody configured. Retrying would not change it.

    :param call: the call that was made.
    :param status: the HTTP status (3xx).
    :param headers: the response headers.
    """
    location = (_header(headers, "Location") or "").strip()
    try:
        host = urlsplit(location).hostname
    except ValueError:
        host, location = None, "?"
    where = "the same host" if location else "nowhere (no Location header)"
    if host:
        where = f"host {host[:100]!r}"
    return RedirectNotFollowedError(
        f"{call.describe()} answered HTTP {status}, a redirect to {where}: redirects are not followed "
        "(the request, its credentials and any key material would go elsewhere); configure the final "
        "endpoint instead",
        http_status=status,
        action=call.action,
    )


def api_error(call: ApiCall, status: int, raw: bytes, headers: Mapping[str, str]) -> ComputeEngineApiError:
    """Build the typed error for an HTTP error response.

    :param call: the call that was made.
    :param status: the HTTP status (>= 300).
    :param raw: the response body: Google's error JSON, or anything else a proxy may send.
    :param headers: the response headers.
    """
    message, reason, errors, details = _error_details(raw)
    retry_after = parse_retry_after(_header(headers, "Retry-After"))
    cls = _error_class(status, reason, details)
    text = f"{call.describe()} failed: HTTP {status}"
    if reason:
        text += f" {reason}"
    text += f": {message}" if message else ""
    if details:
        text += f" [{details.describe()}]"
    if cls is PermissionDeniedError and call.permissions:
        text += f". This call needs the IAM permission(s) {', '.join(call.permissions)}"
        if call.action == "machineImages.insert":
            text += " (create on the image's project, useReadOnly on the source instance)"
    if cls is QuotaExceededError:
        text += f". Quota exhausted: {', '.join(details.quota_metrics) or reason}; waiting does not refill it"
    return cls(
        text,
        http_status=status,
        reason=reason,
        action=call.action,
        errors=errors,
        retry_after=retry_after,
        details=details,
    )


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value, its name matched without regard to case; None if absent.

    :param headers: the response headers (any mapping).
    :param name: the header name.
    """
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def _error_details(raw: bytes) -> tuple[str, str | None, list[dict[str, Any]], ErrorDetails]:
    """The message, reason, ``errors[]`` and ``error.details`` of Google's error JSON (a snippet for anything else).

    :param raw: the (scrubbed) error body.
    """
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return _snippet(raw), None, [], ErrorDetails()
    if nesting_exceeds(data):  # kept on the error (errors[], details): read it as the text it is
        return _snippet(raw), None, [], ErrorDetails()
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return _snippet(raw), None, [], ErrorDetails()
    errors = [e for e in error.get("errors") or [] if isinstance(e, dict)]
    message = str(error.get("message") or (errors[0].get("message") if errors else "") or "")
    reason = next((str(e["reason"]) for e in errors if e.get("reason")), None)
    if reason is None and isinstance(error.get("status"), str):
        reason = error["status"]
    return message, reason, errors, parse_error_details(error.get("details"))


def _error_class(status: int, reason: str | None, details: ErrorDetails | None = None) -> type[ComputeEngineApiError]:
    """The error type by cause: the ``ErrorInfo`` reason of ``error.details`` first, then status and reason.

    :param status: the HTTP status.
    :param reason: the first ``errors[].reason`` (or ``error.status``), if any.
    :param details: the parsed ``error.details``.
    """
    info_reasons = {str(i.get("reason")) for i in (details.error_info if details else ())}
    if status == 403 and CONCURRENT_OPERATIONS_REASON in info_reasons:
        return ConcurrentOperationsQuotaError
    if reason in QUOTA_REASONS or "QUOTA_EXCEEDED" in info_reasons:
        return QuotaExceededError
    if status == 429 or (status == 403 and reason in RATE_LIMIT_REASONS) or "RATE_LIMIT_EXCEEDED" in info_reasons:
        return RateLimitedError
    if status in RETRYABLE_STATUSES:
        return TransientApiError
    if status == 400 and reason == NOT_READY_REASON:
        return ResourceNotReadyError
    if status == 400:
        return InvalidRequestError
    if status in (401, 403):
        return PermissionDeniedError
    if status == 404:
        return ResourceNotFoundError
    if status == 409 and reason in (None, "alreadyExists"):
        return ResourceAlreadyExistsError
    if status == 412:
        return PreconditionFailedError
    return ComputeEngineApiError


def operation_errors(operation: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``error.errors[]`` of a DONE operation, empty when it succeeded.

    :param operation: an Operation resource.
    """
    error = operation.get("error")
    if not isinstance(error, dict):
        return []
    errors = [e for e in error.get("errors") or [] if isinstance(e, dict)]
    # An error object with no entries still means failure: report it rather than call it success.
    return errors or [{"code": "UNKNOWN", "message": json.dumps(error)[:200]}]


def raise_for_operation_error(operation: Mapping[str, Any], *, secrets: Iterable[str] = ()) -> None:
    """Raise :class:`OperationFailedError` if a DONE operation carries errors.

    :param operation: an Operation resource.
    :param secrets: key material of the request that started it, hidden from the error in any form
        (anything shaped like key material is hidden anyway).
    """
    errors = operation_errors(operation)
    if errors:
        status_code = operation.get("httpErrorStatusCode")
        raise operation_failed(
            str(operation.get("name")),
            errors,
            http_error_status_code=status_code if isinstance(status_code, int) else None,
            http_error_message=operation.get("httpErrorMessage"),
            target_link=operation.get("targetLink"),
            secrets=secrets,
            end_time=operation.get("endTime"),
        )
