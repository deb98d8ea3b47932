"""Trigger events: their names, what they carry, and how a task turns one back into an outcome.

The triggers (:mod:`airflow_machine_images.triggers`) write events; the operators, sensors and flows
read them. Both sides import this module, so an event's shape and its meaning to a task live once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_machine_images.exceptions import (
    BootNotVerifiedError,
    ComputeEngineApiError,
    ComputeEngineError,
    EndpointUnreachableError,
    InvalidRequestError,
    MachineImageNotUsableError,
    OperationFailedError,
    OperationTimeoutError,
    PermissionDeniedError,
    QuotaExceededError,
    RedirectNotFollowedError,
    ResourceNotFoundError,
    ResponseLimitError,
    operation_failed,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

#: Operation fields an event carries (a trimmed Operation; no request bodies).
OPERATION_EVENT_FIELDS = (
    "name",
    "status",
    "progress",
    "operationType",
    "targetLink",
    "targetId",
    "clientOperationId",
    "insertTime",
    "endTime",
    "httpErrorStatusCode",
    "httpErrorMessage",
)
#: Machine image fields an event carries.
IMAGE_EVENT_FIELDS = (
    "name",
    "status",
    "selfLink",
    "id",
    "sourceInstance",
    "totalStorageBytes",
    "creationTimestamp",
    "storageLocations",
    "labels",
)

#: ``reason`` of an error event: the operation finished with errors (``errors`` lists them).
EVENT_OPERATION_FAILED = "operation_failed"
#: ``reason`` of an error event: the operation or image does not exist.
EVENT_NOT_FOUND = "not_found"
#: ``reason`` of an error event: the image is INVALID and will not become READY.
EVENT_UNUSABLE = "unusable"
#: ``reason`` of an error event: the trigger's (stored) arguments cannot be used.
EVENT_INVALID_ARGUMENT = "invalid_argument"
#: ``reason`` of an error event: the API kept failing (after the hook's retries) or refused.
EVENT_API_ERROR = "api_error"
#: ``reason`` of an error event: the task's deadline (its ``timeout``) passed while waiting.
EVENT_TIMEOUT = "timeout"
#: ``reason`` of an error event: a boot check saw its failure line, or no boot line by the deadline.
EVENT_BOOT_NOT_VERIFIED = "boot_not_verified"

#: The permanent API errors an ``api_error`` event may name (its ``error_type``). A task resuming from such
#: an event raises the same error, so it fails without Airflow retries, as it does when it waits on the
#: worker; any other error (a transient one the hook's retries did not outlast) stays a retried
#: :class:`~airflow_machine_images.exceptions.ComputeEngineError`. Names only: an event never makes the
#: task import or build anything else.
PERMANENT_API_ERRORS: dict[str, type[ComputeEngineApiError]] = {
    error.__name__: error
    for error in (
        EndpointUnreachableError,
        InvalidRequestError,
        PermissionDeniedError,
        QuotaExceededError,
        RedirectNotFollowedError,
        ResourceNotFoundError,
        ResponseLimitError,
    )
}


def api_error_fields(error: ComputeEngineError) -> dict[str, Any]:
    """What an ``api_error`` event says of its error besides the message: its kind and its HTTP status.

    :param error: the error the trigger ends on.
    """
    status = getattr(error, "http_status", None)
    return {"error_type": type(error).__name__, "http_status": status if isinstance(status, int) else None}


def operation_failure_from_event(event: Mapping[str, Any]) -> OperationFailedError | None:
    """The failure an error event of :class:`MachineImageOperationTrigger` reports, if the operation failed.

    :param event: the event payload.
    """
    if event.get("reason") != EVENT_OPERATION_FAILED or not event.get("errors"):
        return None
    operation = event.get("operation") or {}
    status_code = operation.get("httpErrorStatusCode")
    return operation_failed(
        str(event.get("operation_name")),
        event["errors"],
        http_error_status_code=status_code if isinstance(status_code, int) else None,
        http_error_message=operation.get("httpErrorMessage"),
        target_link=operation.get("targetLink"),
        end_time=operation.get("endTime"),
    )


def error_from_event(event: Mapping[str, Any]) -> Exception:
    """The exception a task raises for an error event: the one rule for every operator of this package.

    Bad stored arguments fail without Airflow retries (they stay bad), and so do the permanent API errors
    (:data:`PERMANENT_API_ERRORS`: a 404, a permission, an invalid request), as on the worker; everything
    else is a typed :class:`~airflow_machine_images.exceptions.ComputeEngineError`, which Airflow retries as
    the task says.

    :param event: the event payload (``status`` is not ``success``).
    """
    message = str(event.get("message"))
    reason = event.get("reason")
    if reason == EVENT_INVALID_ARGUMENT:
        return AirflowFailException(message)
    failure = operation_failure_from_event(event)
    if failure is not None:
        return failure
    if reason == EVENT_NOT_FOUND:
        return ResourceNotFoundError(message)
    if reason == EVENT_UNUSABLE:
        return MachineImageNotUsableError(message)
    if reason == EVENT_TIMEOUT:
        return OperationTimeoutError(message)
    if reason == EVENT_BOOT_NOT_VERIFIED:
        return BootNotVerifiedError(message)
    permanent = PERMANENT_API_ERRORS.get(str(event.get("error_type"))) if reason == EVENT_API_ERROR else None
    if permanent is not None:
        status = event.get("http_status")
        return permanent(message, http_status=status if isinstance(status, int) else None)
    return ComputeEngineError(message)
