"""Google-style API errors: ``{"error": {"code", "message", "errors": [{"message", "domain", "reason"}]}}``."""

from __future__ import annotations

from typing import Any

__all__ = [
    "ApiError",
    "already_exists",
    "invalid",
    "invalid_field",
    "not_found",
    "parse_error",
    "required",
    "status_error",
]

#: Default reason and message for statuses the fault injector answers with.
_STATUS_DEFAULTS: dict[int, tuple[str, str]] = {
    400: ("badRequest", "Bad Request"),
    403: ("forbidden", "Required permission denied."),
    404: ("notFound", "Not Found"),
    409: ("conflict", "Conflict"),
    429: ("rateLimitExceeded", "Rate Limit Exceeded"),
    500: ("backendError", "Internal error. Please try again or contact Google Support."),
    502: ("backendError", "Bad Gateway"),
    503: ("backendError", "The service is currently unavailable."),
    504: ("backendError", "Deadline exceeded."),
}


class ApiError(Exception):
    """An error answer of the Compute Engine API.

    :param code: the HTTP status.
    :param reason: the ``errors[].reason`` (``notFound``, ``alreadyExists``, ``invalid`` ...).
    :param message: the human-readable message.
    :param headers: extra response headers (e.g. ``Retry-After``).
    """

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        headers: dict[str, str] | None = None,
        *,
        domain: str = "global",
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.headers = dict(headers or {})
        self.domain = domain
        self.details = list(details or [])

    def payload(self) -> dict[str, Any]:
        """:return: the JSON body the real API sends for this error (with ``details``, google.rpc types)."""
        error: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "errors": [{"message": self.message, "domain": self.domain, "reason": self.reason}],
        }
        if self.details:
            error["details"] = self.details
        return {"error": error}


def rate_limited(
    project: str, metric: str = "compute.googleapis.com/default_requests", limit: int | None = None
) -> ApiError:
    """403 ``rateLimitExceeded`` of a per-project per-minute rate quota, with its ``error.details``.

    Source: Compute Engine docs, "API rate limits" (cloud.google.com/compute/api-quota): 403,
    ``errors[].reason`` ``rateLimitExceeded``, domain ``usageLimits``, refilled at the next minute. The
    ErrorInfo reason ``RATE_LIMIT_EXCEEDED`` and its metadata keys follow Google's common quota errors;
    the metric and limit names are unverified for Compute Engine.

    :param project: the project whose quota is used up.
    :param metric: the quota metric.
    :param limit: the quota's value (requests per minute), when known: ``quota_limit_value``.
    :return: the error.
    """
    metadata = {"service": "compute.googleapis.com", "quota_metric": metric, "consumer": f"projects/{project}"}
    if limit is not None:
        metadata["quota_limit"] = "DefaultRequestsPerMinutePerProject"
        metadata["quota_limit_value"] = str(limit)
    message = (
        f"Quota exceeded for quota metric '{metric}' and limit '{metric} per minute' of service "
        f"'compute.googleapis.com' for consumer 'project:{project}'."
    )
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "RATE_LIMIT_EXCEEDED",
            "domain": "googleapis.com",
            "metadata": metadata,
        },
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [{"description": "API rate limits", "url": "https://cloud.google.com/compute/api-quota"}],
        },
    ]
    return ApiError(403, "rateLimitExceeded", message, domain="usageLimits", details=details)


def concurrent_operations(project: str) -> ApiError:
    """403 with ErrorInfo ``CONCURRENT_OPERATIONS_QUOTA_EXCEEDED``: too many operations in flight.

    Sources: Compute Engine docs, "Operations quota"; Terraform's google provider retries it
    (``is403ConcurrentOperationsQuotaError``). The ``errors[].reason`` sent with it is unverified.

    :param project: the project.
    :return: the error.
    """
    metric = "compute.googleapis.com/global_concurrent_operations"
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "CONCURRENT_OPERATIONS_QUOTA_EXCEEDED",
            "domain": "compute.googleapis.com",
            "metadata": {"quota_metric": metric, "consumer": f"projects/{project}"},
        },
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [{"description": "Operations quota", "url": "https://cloud.google.com/compute/api-quota"}],
        },
    ]
    return ApiError(
        403, "rateLimitExceeded", f"Quota exceeded for quota metric '{metric}'.", domain="usageLimits", details=details
    )


def not_found(resource: str) -> ApiError:
    """:param resource: e.g. ``projects/p/zones/z/instances/i``. :return: a 404 ``notFound``."""
    return ApiError(404, "notFound", f"The resource '{resource}' was not found")


def already_exists(resource: str) -> ApiError:
    """:param resource: e.g. ``projects/p/global/machineImages/n``. :return: a 409 ``alreadyExists``."""
    return ApiError(409, "alreadyExists", f"The resource '{resource}' already exists")


def invalid(message: str) -> ApiError:
    """:param message: what is wrong. :return: a 400 ``invalid``."""
    return ApiError(400, "invalid", message)


def invalid_field(field: str, value: object, rule: str) -> ApiError:
    """A 400 ``invalid`` worded like the real API.

    :param field: e.g. ``resource.name``.
    :param value: the offending value.
    :param rule: what it must be.
    :return: the error.
    """
    return invalid(f"Invalid value for field '{field}': '{value}'. {rule}")


def required(field: str) -> ApiError:
    """:param field: e.g. ``resource.name``. :return: a 400 ``required``."""
    return ApiError(400, "required", f"Required field '{field}' not specified")


def parse_error(detail: str) -> ApiError:
    """:param detail: the JSON decoder's complaint. :return: a 400 ``parseError``."""
    return ApiError(400, "parseError", f"Invalid JSON payload received. {detail}")


def status_error(code: int, retry_after_seconds: float | None = None) -> ApiError:
    """The error an injected ``status`` fault answers with.

    :param code: the HTTP status.
    :param retry_after_seconds: when given, sent as ``Retry-After`` (whole seconds, rounded up).
    :return: the error.
    """
    reason, message = _STATUS_DEFAULTS.get(code, ("backendError", "Injected error."))
    headers: dict[str, str] = {}
    if retry_after_seconds is not None:
        whole = int(retry_after_seconds)
        headers["Retry-After"] = str(whole if whole >= retry_after_seconds else whole + 1)
    return ApiError(code, reason, message, headers)
