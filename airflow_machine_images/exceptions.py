"""Every error type this package raises: bad arguments, API answers, failed operations.

Each carries what a DAG author needs to act on it (the parameter and the rule it breaks, HTTP
status, Google's error ``reason``, the message, the operation's error codes) and nothing secret:
request bodies and key material are never quoted.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_machine_images.api.redaction import redact_key_material, scrub_text

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence


@dataclass(frozen=True)
class ErrorDetails:
    """The machine-readable parts of an API error, from ``error.details`` (google.rpc types).

    Google's JSON errors carry ``error.details[]`` entries whose ``@type`` names the google.rpc
    message: ``ErrorInfo`` (``reason``, ``domain``, ``metadata``), ``QuotaFailure`` (``violations``),
    Compute Engine's ``QuotaInfo`` (``metricName``, ``limitName``, ``limit``, ``dimensions``) and
    ``Help`` (``links[]``). Failed operations carry the same inside ``error.errors[].errorDetails[]``
    as ``errorInfo``/``quotaInfo``/``help`` (the Operation schema of the discovery documents).

    :param error_info: every ``ErrorInfo`` (``reason``, ``domain``, ``metadata``).
    :param quota_info: every ``QuotaInfo`` (``metricName``, ``limitName``, ``limit``, ``dimensions``).
    :param help_links: every ``Help`` link (``description``, ``url``).
    """

    error_info: tuple[dict[str, Any], ...] = ()
    quota_info: tuple[dict[str, Any], ...] = ()
    help_links: tuple[dict[str, Any], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.error_info or self.quota_info or self.help_links)

    def describe(self) -> str:
        """The details as one sentence for an error message ("" when there are none)."""
        parts = []
        for info in self.error_info:
            metadata = info.get("metadata")
            metadata = metadata if isinstance(metadata, dict) else {}
            shown = ", ".join(f"{k}={v}" for k, v in sorted(metadata.items())[:6])
            parts.append(f"reason {info.get('reason')}" + (f" ({shown})" if shown else ""))
        for quota in self.quota_info:
            what = quota.get("metricName") or quota.get("limitName") or "a quota"
            limit = f" (limit {quota.get('limit')}" + (f" per {quota['limitName']}" if quota.get("limitName") else "")
            dims = quota.get("dimensions")
            dims = dims if isinstance(dims, dict) else {}
            where = ", ".join(f"{k}={v}" for k, v in sorted(dims.items()))
            shown_limit = limit + ")" if quota.get("limit") is not None else ""
            parts.append(f"quota {what}{shown_limit}" + (f" [{where}]" if where else ""))
        for link in self.help_links:
            if link.get("url"):
                parts.append(f"see {link.get('url')}")
        return "; ".join(parts)

    @property
    def quota_metrics(self) -> list[str]:
        """The quota metrics named (``QuotaInfo.metricName``, or ``ErrorInfo.metadata.quota_metric``)."""
        named = [str(q["metricName"]) for q in self.quota_info if q.get("metricName")]
        for info in self.error_info:
            metadata = info.get("metadata")
            if isinstance(metadata, dict) and metadata.get("quota_metric"):
                named.append(str(metadata["quota_metric"]))
        return named


def parse_error_details(entries: object) -> ErrorDetails:
    """Read ``error.details[]`` (``@type`` google.rpc messages) or ``errorDetails[]`` (Compute's keyed form).

    Anything unreadable is skipped: details are an addition to the message, never a reason to fail.

    :param entries: the list as sent.
    """
    infos: list[dict[str, Any]] = []
    quotas: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        kind = str(entry.get("@type", "")).rsplit(".", 1)[-1]
        if kind == "ErrorInfo":
            infos.append(entry)
        elif kind == "QuotaInfo":
            quotas.append(entry)
        elif kind == "QuotaFailure":
            for violation in entry.get("violations") or []:
                if isinstance(violation, dict):
                    quotas.append({"metricName": violation.get("subject"), "description": violation.get("description")})
        elif kind == "Help":
            links.extend(link for link in entry.get("links") or [] if isinstance(link, dict))
        # Compute's keyed form, in an Operation's error.errors[].errorDetails[].
        if isinstance(entry.get("errorInfo"), dict):
            infos.append(entry["errorInfo"])
        if isinstance(entry.get("quotaInfo"), dict):
            quotas.append(entry["quotaInfo"])
        if isinstance(entry.get("help"), dict):
            links.extend(link for link in entry["help"].get("links") or [] if isinstance(link, dict))
    return ErrorDetails(tuple(infos), tuple(quotas), tuple(links))


class ComputeEngineError(AirflowException):
    """Base class of every error this package raises at run time (validation errors aside).

    Airflow retries a task that raises one of these (as its ``retries`` say), except the
    :class:`PermanentError` ones: a retry cannot change their outcome, so they fail the task at once.
    """


class PermanentError(AirflowFailException):
    """Marks an error that no retry can change (not found, permission, invalid, allocation quota,
    an endpoint that does not resolve or refuses connections): the task fails without Airflow retries.
    """


class ComputeEngineApiError(ComputeEngineError):
    """The Compute Engine API answered a request with an error.

    :param message: what went wrong, in words.
    :param http_status: the HTTP status code, or None when no response arrived.
    :param reason: Google's machine-readable reason (``alreadyExists``, ``notFound``, ...), if any.
    :param action: the API method, e.g. ``machineImages.insert``.
    :param errors: the ``error.errors[]`` list of the response.
    :param retry_after: seconds the server asked us to wait (``Retry-After``), if any.
    :param details: what ``error.details`` (google.rpc types) said: see :class:`ErrorDetails`.
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
        details: ErrorDetails | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.reason = reason
        self.action = action
        self.errors = [dict(e) for e in errors]
        self.retry_after = retry_after
        self.details = details or ErrorDetails()


class InvalidRequestError(ComputeEngineApiError, PermanentError):
    """HTTP 400: the API rejected the request's content."""


class PermissionDeniedError(ComputeEngineApiError, PermanentError):
    """HTTP 401/403 (not a rate limit): the credentials lack a permission the call needs."""


class ResourceNotFoundError(ComputeEngineApiError, PermanentError):
    """HTTP 404: the project, image, operation or source instance does not exist."""


class ResourceAlreadyExistsError(ComputeEngineApiError):
    """HTTP 409 ``alreadyExists``: a machine image of that name exists already."""


class PreconditionFailedError(ComputeEngineApiError):
    """HTTP 412: a fingerprint (e.g. ``labelFingerprint``) was stale."""


class QuotaExceededError(ComputeEngineApiError, PermanentError):
    """A resource quota (not a per-minute rate limit) is exhausted; retrying will not help."""


class TransientApiError(ComputeEngineApiError):
    """A fault worth retrying (429, 5xx, dropped connection, timeout); raised when retries ran out."""


class RateLimitedError(TransientApiError):
    """HTTP 429, or 403 ``rateLimitExceeded``/``userRateLimitExceeded``: a per-minute rate quota is used up.

    The quota refills at the start of the next minute (Compute Engine docs, "API rate limits"), so it
    is retried until a whole minute can have passed (:class:`~airflow_machine_images.api.retry.RetryPolicy`).
    """


class ConcurrentOperationsQuotaError(TransientApiError):
    """HTTP 403 with ``ErrorInfo`` ``CONCURRENT_OPERATIONS_QUOTA_EXCEEDED``: too many operations in flight.

    It clears as running operations finish (Compute Engine docs, "Operations quota"; Terraform's
    ``is403ConcurrentOperationsQuotaError``), so it is waited out for minutes, up to the task's deadline.
    """


class ResourceNotReadyError(TransientApiError):
    """HTTP 400 ``resourceNotReady``: the resource is in a temporary state; retried briefly."""


class DeadlineExceededError(TransientApiError):
    """No complete answer within a call's overall deadline (a server that drips bytes outlasts any
    per-read timeout), or the caller's deadline passed between attempts."""


class MalformedResponseError(ComputeEngineApiError):
    """The server answered with something that is not the JSON the API documents."""


class EndpointUnreachableError(ComputeEngineApiError, PermanentError):
    """The API endpoint's host name does not resolve, or it refuses connections: a configuration error
    (a wrong ``api_endpoint``, an emulator that is not running), not a fault that retrying fixes.
    """


class RedirectNotFollowedError(ComputeEngineApiError, PermanentError):
    """The endpoint answered with a redirect (3xx). Redirects are never followed: the request, its
    credentials and any key material would go to a place nobody configured. Not retried."""


class ResponseLimitError(ComputeEngineApiError, PermanentError):
    """The endpoint's answer broke a limit (size, pages, repeated page token): it misbehaves. Not retried."""


class InsecureEndpointError(ComputeEngineError, PermanentError, ValueError):
    """Credentials or key material would be sent in clear text: http to a host that is not the loopback interface."""


class OperationFailedError(ComputeEngineError):
    """A Compute Engine operation finished (``DONE``) with errors.

    Build one with :func:`operation_failed`, which picks :class:`PermanentOperationFailedError` for
    codes that no retry changes.

    :param operation_name: the operation's name.
    :param errors: the operation's ``error.errors[]`` entries (``code``, ``message``).
    :param http_error_status_code: the operation's ``httpErrorStatusCode``, if any.
    :param http_error_message: the operation's ``httpErrorMessage``, if any.
    :param target_link: the operation's ``targetLink`` (the message names the image or instance).
    :param secrets: key material known to the caller, hidden from the messages in any encoding.
    :param end_time: the operation's ``endTime`` (RFC 3339, the server's clock), if it has one.

    The server writes the messages, and may quote the request: anything shaped like key material,
    and the given secrets, are replaced by ``***`` (:mod:`airflow_machine_images.api.redaction`).
    """

    def __init__(
        self,
        operation_name: str,
        errors: Sequence[Mapping[str, Any]],
        *,
        http_error_status_code: int | None = None,
        http_error_message: str | None = None,
        target_link: str | None = None,
        secrets: Iterable[str] = (),
        end_time: str | None = None,
    ) -> None:
        known = list(secrets)
        self.end_time = end_time if isinstance(end_time, str) else None

        def clean(text: str) -> str:
            return redact_key_material(scrub_text(text, known))

        self.operation_name = operation_name
        self.details = parse_error_details([d for e in errors for d in (e.get("errorDetails") or [])])
        self.errors = [
            {"code": clean(str(e.get("code", "UNKNOWN"))), "message": clean(str(e.get("message", "")))} for e in errors
        ]
        self.http_error_status_code = http_error_status_code
        self.http_error_message = clean(str(http_error_message)) if http_error_message is not None else None
        http_error_message = self.http_error_message
        self.target_link = target_link
        details = "; ".join(f"{e['code']}: {e['message']}" for e in self.errors) or "no details given"
        http = " ".join(str(part) for part in (http_error_status_code, http_error_message) if part)
        suffix = f" (HTTP {http})" if http else ""
        target = describe_target(target_link)
        on = f" on {target}" if target else ""
        more = self.details.describe()
        super().__init__(f"Operation {operation_name}{on} failed{suffix}: {details}" + (f" ({more})" if more else ""))

    @property
    def codes(self) -> list[str]:
        """The error codes, e.g. ``["QUOTA_EXCEEDED"]``."""
        return [e["code"] for e in self.errors]


class PermanentOperationFailedError(OperationFailedError, PermanentError):
    """An operation failed with a code no retry changes (see :data:`PERMANENT_OPERATION_CODES`)."""


#: Operation error codes that retrying cannot clear: an allocation quota is used up (it does not
#: refill by waiting: Compute Engine docs, "Allocation quotas"), or the source resource is gone.
PERMANENT_OPERATION_CODES = frozenset({"QUOTA_EXCEEDED", "RESOURCE_NOT_FOUND"})


def operation_failed(
    operation_name: str,
    errors: Sequence[Mapping[str, Any]],
    *,
    http_error_status_code: int | None = None,
    http_error_message: str | None = None,
    target_link: str | None = None,
    secrets: Iterable[str] = (),
    end_time: str | None = None,
) -> OperationFailedError:
    """The error for a failed operation: permanent when one of its codes is (see :class:`OperationFailedError`).

    :param operation_name: the operation's name.
    :param errors: the operation's ``error.errors[]`` entries.
    :param http_error_status_code: the operation's ``httpErrorStatusCode``, if any.
    :param http_error_message: the operation's ``httpErrorMessage``, if any.
    :param target_link: the operation's ``targetLink``.
    :param secrets: key material known to the caller, hidden from the messages in any encoding.
    :param end_time: the operation's ``endTime``, if any.
    """
    codes = {str(e.get("code")) for e in errors}
    cls = PermanentOperationFailedError if codes & PERMANENT_OPERATION_CODES else OperationFailedError
    return cls(
        operation_name,
        errors,
        http_error_status_code=http_error_status_code,
        http_error_message=http_error_message,
        target_link=target_link,
        secrets=secrets,
        end_time=end_time,
    )


_TARGET_KINDS = {"machineImages": "machine image", "instances": "instance", "disks": "disk"}


def describe_target(target_link: str | None) -> str | None:
    """Name an operation's target for a message: ``machine image img-a`` from its ``targetLink``.

    :param target_link: a resource URL or path, or None.
    """
    if not target_link:
        return None
    segments = [segment for segment in target_link.split("?")[0].split("/") if segment]
    if len(segments) >= 2 and segments[-2] in _TARGET_KINDS:
        return f"{_TARGET_KINDS[segments[-2]]} {segments[-1]}"
    return segments[-1] if segments else None


class OperationTimeoutError(ComputeEngineError):
    """An operation did not finish within the allowed time."""


class MachineImageConflictError(ComputeEngineError, PermanentError):
    """A machine image of the requested name exists and may not be reused (``if_exists``)."""


class MachineImageNotUsableError(ComputeEngineError, PermanentError):
    """The machine image exists but cannot become READY (``INVALID``, being deleted, or gone)."""


class InstanceConflictError(ComputeEngineError, PermanentError):
    """An instance of the requested name exists and may not be reused (the restore operator's ``if_exists``)."""


class InstanceNotRunningError(ComputeEngineError, PermanentError):
    """A restored instance reached a state from which RUNNING will not come (stopped, terminated...)."""


class BootNotVerifiedError(ComputeEngineError, PermanentError):
    """A boot check saw its failure line on the serial console, or not its boot line by the task's deadline;
    the message quotes the console's last lines (cleaned and bounded)."""


class NotARestoredInstanceError(ComputeEngineError, PermanentError):
    """The delete-restored operator refused an instance: no restore labels, or not restored by its DAG or the
    restore it was given (never retried; nothing is deleted)."""


class DiskNotOwnedError(ComputeEngineError, PermanentError):
    """A disk a deleted instance left is not the one read before (another id), or something uses it: left alone."""


class LeftoverDisksError(ComputeEngineError, PermanentError):
    """The instance is deleted, but disks it left (its own, proven) could not be deleted: the message names them.

    Permanent: a retry would find the instance gone and could no longer tell which disks were its own.
    """


class ChangedSinceListedError(ComputeEngineError, PermanentError):
    """An image retention planned to delete changed since it was listed (another id, status, labels): left alone."""


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

    Raised when a finished operation points at a resource that is gone (the server replayed a request
    it remembers), when an existing resource vanished before it could be reused, or when a retry got
    back the failed operation of an earlier try. The flows catch it and submit once more under the next
    generation's ``requestId``, within the bounds of
    :func:`~airflow_machine_images.flows.resubmission.with_resubmissions`.

    :param message: why.
    :param fresh: the operation that left nothing to use was made by this try (not replayed from an
        earlier one): the try ends here, and the next try submits the next generation (at most one
        fresh submission per try, so a failing create cannot spin inside one try).
    :param replayed: the operation that left nothing to use is an earlier try's, replayed by the server:
        moving on to the next generation is how each try walks past the earlier tries' submissions.
    """

    def __init__(self, message: str, *, fresh: bool = False, replayed: bool = False) -> None:
        super().__init__(message)
        self.fresh = fresh
        self.replayed = replayed

    def __reduce__(self) -> tuple[Any, ...]:
        return (_resubmission_needed, (str(self), self.fresh, self.replayed))


def _resubmission_needed(message: str, fresh: bool, replayed: bool = False) -> ResubmissionNeeded:
    return ResubmissionNeeded(message, fresh=fresh, replayed=replayed)


class SourceLimitReached(ResubmissionNeeded):
    """Compute Engine refused a machine image under the per-source limit; it may be submitted again later.

    The create failed inside its operation with ``RESOURCE_OPERATION_RATE_EXCEEDED`` (nothing was made),
    so a new submission cannot duplicate anything; :mod:`airflow_machine_images.flows.source_limit` says
    when. The flows wait until ``retry_at`` within the task's deadline (deferred, or on the worker) and
    submit the next generation (:func:`~airflow_machine_images.flows.resubmission.with_resubmissions`).

    :param message: why, and when the next try is allowed.
    :param retry_at: when the next submission is allowed (seconds since the epoch).
    :param replayed: the refused operation is an earlier try's, replayed by the server.
    """

    def __init__(self, message: str, *, retry_at: float, replayed: bool = False) -> None:
        super().__init__(message, replayed=replayed)
        self.retry_at = retry_at

    def __reduce__(self) -> tuple[Any, ...]:
        return (_source_limit_reached, (str(self), self.retry_at, self.replayed))


def _source_limit_reached(message: str, retry_at: float, replayed: bool) -> SourceLimitReached:
    return SourceLimitReached(message, retry_at=retry_at, replayed=replayed)


class ComputeEngineRetentionError(AirflowFailException):
    """Some deletions of a retention run failed (the others were done)."""


class PartialListingError(ComputeEngineError):
    """A list answer warned that items may be missing (a zone ``UNREACHABLE``, ``PARTIAL_SUCCESS``,
    ``LIST_OVERHEAD_QUOTA_EXCEED``), and the caller will not act on a partial list: what a list lacks
    is not evidence of absence.

    Retention deletes nothing on such a listing and instance selection returns nothing; Airflow
    retries the task (as its ``retries`` say), and the next try lists again.
    """


class BackupCoverageError(AirflowFailException):
    """Instances without a recent enough READY machine image (the message names every one)."""


@contextmanager
def failing_on_bad_input() -> Iterator[None]:
    """Turn a :class:`MachineImageValidationError` into a failure without Airflow retries: bad input stays bad."""
    try:
        yield
    except MachineImageValidationError as exc:
        raise AirflowFailException(str(exc)) from exc
