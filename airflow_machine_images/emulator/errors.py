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

    def __init__(self, code: int, reason: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.headers = dict(headers or {})

    def payload(self) -> dict[str, Any]:
        """:return: the JSON body the real API sends for this error."""
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "errors": [{"message": self.message, "domain": "global", "reason": self.reason}],
            }
        }


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
