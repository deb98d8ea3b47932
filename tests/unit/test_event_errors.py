"""The exception a task raises for a trigger's ``api_error`` event: permanent errors stay permanent."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_machine_images.events import (
    EVENT_API_ERROR,
    EVENT_TIMEOUT,
    PERMANENT_API_ERRORS,
    api_error_fields,
    error_from_event,
)
from airflow_machine_images.exceptions import (
    ComputeEngineApiError,
    ComputeEngineError,
    OperationTimeoutError,
    PermanentError,
    RateLimitedError,
    ResourceNotFoundError,
    TransientApiError,
)


def api_error_event(error: ComputeEngineError) -> dict[str, object]:
    return {"status": "error", "message": str(error), "reason": EVENT_API_ERROR, **api_error_fields(error)}


@pytest.mark.parametrize("permanent", [PERMANENT_API_ERRORS[name] for name in sorted(PERMANENT_API_ERRORS)])
def test_every_permanent_api_error_comes_back_as_itself_and_is_not_retried(
    permanent: type[ComputeEngineApiError],
) -> None:
    raised = error_from_event(api_error_event(permanent("denied", http_status=403)))
    assert type(raised) is permanent and str(raised) == "denied" and raised.http_status == 403
    assert isinstance(raised, AirflowFailException)  # Airflow fails the task without retries


def test_the_permanent_api_errors_are_exactly_the_permanent_ones() -> None:
    def subclasses(cls: type[ComputeEngineApiError]) -> set[type[ComputeEngineApiError]]:
        found = {cls}
        for sub in cls.__subclasses__():
            found |= subclasses(sub)
        return found

    permanent_api = {cls for cls in subclasses(ComputeEngineApiError) if issubclass(cls, PermanentError)}
    assert set(PERMANENT_API_ERRORS.values()) == permanent_api


@pytest.mark.parametrize(
    "error",
    [
        TransientApiError("503 after the hook's retries", http_status=503),
        RateLimitedError("rate", http_status=403),
        ComputeEngineError("no response"),
    ],
)
def test_other_api_errors_stay_retried(error: ComputeEngineError) -> None:
    raised = error_from_event(api_error_event(error))
    assert type(raised) is ComputeEngineError and not isinstance(raised, AirflowFailException)


@pytest.mark.parametrize("error_type", ["os.system", "AirflowFailException", "OperationFailedError", None, 7])
def test_an_event_names_only_the_errors_of_the_table(error_type: object) -> None:
    event = {"status": "error", "message": "m", "reason": EVENT_API_ERROR, "error_type": error_type}
    assert type(error_from_event(event)) is ComputeEngineError


def test_the_error_type_counts_only_on_an_api_error_event() -> None:
    event = {
        "status": "error",
        "message": "late",
        "reason": EVENT_TIMEOUT,
        "error_type": ResourceNotFoundError.__name__,
    }
    assert type(error_from_event(event)) is OperationTimeoutError


def test_the_fields_hold_no_message_and_a_status_only_when_there_is_one() -> None:
    assert api_error_fields(ResourceNotFoundError("gone", http_status=404)) == {
        "error_type": "ResourceNotFoundError",
        "http_status": 404,
    }
    assert api_error_fields(ComputeEngineError("no answer")) == {
        "error_type": "ComputeEngineError",
        "http_status": None,
    }
