"""Every error type this package raises: bad arguments, API answers, failed operations.

Each carries what a DAG author needs to act on it (the parameter and the rule it breaks, HTTP
status, Google's error ``reason``, the message, the operation's error codes) and nothing secret:
request bodies and key material are never quoted.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_machine_images.redaction import redact_key_material, scrub_text

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence


class ComputeEngineError(AirflowException):
    """Base class of every error this package raises at run time (validation errors aside)."""


class ComputeEngineApiError(ComputeEngineError):
    """The Compute Engine API answered a request with an error.

    :param message: what went wrong, in words.
    :param http_status: the HTTP status code, or None when no response arrived.
    :param reason: Google's machine-readable reason (``alreadyExists``, ``notFound``, ...), if any.
    :param action: the API method, e.g. ``machineImages.insert``.
    :param errors: the ``error.errors[]`` list of the response.
    :param retry_after: seconds the server asked us to wait (``Retry-After``), if any.
    """

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        reason: str | None = None,
        action: str | None = None,
        errors: Sequence[Mapping[str, Any]] = (),
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.reason = reason
        self.action = action
        self.errors = [dict(e) for e in errors]
        self.retry_after = retry_after


class InvalidRequestError(ComputeEngineApiError):
    """HTTP 400: the API rejected the request's content."""


class PermissionDeniedError(ComputeEngineApiError):
    """HTTP 401/403 (not a rate limit): the credentials lack a permission the call needs."""


class ResourceNotFoundError(ComputeEngineApiError):
    """HTTP 404: the project, image, operation or source instance does not exist."""


class ResourceAlreadyExistsError(ComputeEngineApiError):
    """HTTP 409 ``alreadyExists``: a machine image of that name exists already."""


class PreconditionFailedError(ComputeEngineApiError):
    """HTTP 412: a fingerprint (e.g. ``labelFingerprint``) was stale."""


class QuotaExceededError(ComputeEngineApiError):
    """A resource quota (not a per-minute rate limit) is exhausted; retrying will not help."""


class TransientApiError(ComputeEngineApiError):
    """A fault worth retrying (429, 5xx, dropped connection, timeout); raised when retries ran out."""


class DeadlineExceededError(TransientApiError):
    """No complete answer within a call's overall deadline (a server that drips bytes outlasts any
    per-read timeout), or the caller's deadline passed between attempts."""


class MalformedResponseError(ComputeEngineApiError):
    """The server answered with something that is not the JSON the API documents."""


class RedirectNotFollowedError(ComputeEngineApiError):
    """The endpoint answered with a redirect (3xx). Redirects are never followed: the request, its
    credentials and any key material would go to a place nobody configured. Not retried."""


class ResponseLimitError(ComputeEngineApiError):
    """The endpoint's answer broke a limit (size, pages, repeated page token): it misbehaves. Not retried."""


class InsecureEndpointError(ComputeEngineError, ValueError):
    """Credentials or key material would be sent in clear text: http to a host that is not the loopback interface."""


class OperationFailedError(ComputeEngineError):
    """A Compute Engine operation finished (``DONE``) with errors.

    :param operation_name: the operation's name.
    :param errors: the operation's ``error.errors[]`` entries (``code``, ``message``).
    :param http_error_status_code: the operation's ``httpErrorStatusCode``, if any.
    :param http_error_message: the operation's ``httpErrorMessage``, if any.
    :param secrets: key material known to the caller, hidden from the messages in any encoding.

    The server writes the messages, and may quote the request: anything shaped like key material,
    and the given secrets, are replaced by ``***`` (:mod:`airflow_machine_images.redaction`).
    """

    def __init__(
        self,
        operation_name: str,
        errors: Sequence[Mapping[str, Any]],
        *,
        http_error_status_code: int | None = None,
        http_error_message: str | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        known = list(secrets)

        def clean(text: str) -> str:
            return redact_key_material(scrub_text(text, known))

        self.operation_name = operation_name
        self.errors = [
            {"code": clean(str(e.get("code", "UNKNOWN"))), "message": clean(str(e.get("message", "")))} for e in errors
        ]
        self.http_error_status_code = http_error_status_code
        self.http_error_message = clean(str(http_error_message)) if http_error_message is not None else None
        http_error_message = self.http_error_message
        details = "; ".join(f"{e['code']}: {e['message']}" for e in self.errors) or "no details given"
        http = " ".join(str(part) for part in (http_error_status_code, http_error_message) if part)
        suffix = f" (HTTP {http})" if http else ""
        super().__init__(f"Operation {operation_name} failed{suffix}: {details}")

    @property
    def codes(self) -> list[str]:
        """The error codes, e.g. ``["QUOTA_EXCEEDED"]``."""
        return [e["code"] for e in self.errors]


class OperationTimeoutError(ComputeEngineError):
    """An operation did not finish within the allowed time."""


class MachineImageConflictError(ComputeEngineError):
    """A machine image of the requested name exists and may not be reused (``if_exists``)."""


class MachineImageNotUsableError(ComputeEngineError):
    """The machine image exists but cannot become READY (``INVALID``, being deleted, or gone)."""


class MachineImageValidationError(ValueError):
    """A DAG argument (or API value) that breaks a rule; raised before any request is sent.

    :param parameter: the offending parameter, or dotted path inside one (``body.labels``,
        ``labels['Team']``).
    :param rule: what the value must be, in words.
    :param got: a short, safe rendering of the bad value (never key material), or None.
    """

    def __init__(self, parameter: str, rule: str, got: str | None = None) -> None:
        self.parameter = parameter
        self.rule = rule
        self.got = got
        message = f"Invalid {parameter}: {rule.rstrip('.')}"
        if got is not None:
            message += f"; got {got}"
        super().__init__(message if message.endswith("?") else message + ".")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.parameter, self.rule, self.got))


class ResubmissionNeeded(ComputeEngineError):
    """The server's answer leaves nothing to use, and submitting again cannot duplicate anything.

    Raised when a finished operation points at a machine image that is gone (the server replayed a
    request it remembers), when an existing image vanished before it could be reused, when a retry got
    back the failed operation of an earlier try, or when a finished delete left an image that was made
    again. The operators catch it and submit once more under the next generation's ``requestId``.
    """


class ComputeEngineRetentionError(AirflowFailException):
    """Some deletions of a retention run failed (the others were done)."""


@contextmanager
def failing_on_bad_input() -> Iterator[None]:
    """Turn a :class:`MachineImageValidationError` into a failure without Airflow retries: bad input stays bad."""
    try:
        yield
    except MachineImageValidationError as exc:
        raise AirflowFailException(str(exc)) from exc
