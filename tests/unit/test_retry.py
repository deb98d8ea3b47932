"""The one retry loop body (:class:`Attempts`) and the one pause after early wait answers."""

from __future__ import annotations

import logging

import pytest

from airflow_machine_images.api import retry
from airflow_machine_images.api.retry import EARLY_RETURN_SECONDS, Attempts, EarlyAnswerBackoff, RetryPolicy
from airflow_machine_images.exceptions import (
    ConcurrentOperationsQuotaError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitedError,
    ResourceNotFoundError,
    ResourceNotReadyError,
    TransientApiError,
)

NO_WAIT = RetryPolicy(max_attempts=3, initial_backoff=0.0)


def test_attempts_log_each_retry_then_give_up_saying_how_many(caplog: pytest.LogCaptureFixture) -> None:
    attempts = Attempts(NO_WAIT, logging.getLogger("test.retry"))
    with caplog.at_level(logging.WARNING, logger="test.retry"):
        assert attempts.pause_after(TransientApiError("HTTP 503")) == 0.0
        assert attempts.pause_after(TransientApiError("HTTP 503")) == 0.0
        with pytest.raises(TransientApiError, match=r"HTTP 503 \(gave up after 3 attempts\)"):
            attempts.pause_after(TransientApiError("HTTP 503"))
    assert caplog.messages == [
        "HTTP 503; retrying in 0.0 s (attempt 2 of 3)",
        "HTTP 503; retrying in 0.0 s (attempt 3 of 3)",
    ]


def test_attempts_raise_a_permanent_error_at_once(caplog: pytest.LogCaptureFixture) -> None:
    error = ResourceNotFoundError("HTTP 404")
    with caplog.at_level(logging.WARNING), pytest.raises(ResourceNotFoundError) as info:
        Attempts(NO_WAIT, logging.getLogger("test.retry")).pause_after(error)
    assert info.value is error
    assert caplog.messages == []


def test_early_answers_back_off_doubling_up_to_the_ceiling() -> None:
    backoff = EarlyAnswerBackoff()
    early = EARLY_RETURN_SECONDS / 10
    assert [backoff.pause_after(early, 10.0) for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 10.0]
    assert backoff.pause_after(early, 3.0) == 3.0  # the ceiling may change between answers


def test_a_real_long_poll_resets_the_backoff() -> None:
    backoff = EarlyAnswerBackoff()
    backoff.pause_after(0.0, 10.0)
    backoff.pause_after(0.0, 10.0)
    assert backoff.pause_after(EARLY_RETURN_SECONDS, 10.0) == 0.0
    assert backoff.pause_after(0.0, 10.0) == 1.0


def test_a_ceiling_below_one_second_wins() -> None:
    assert EarlyAnswerBackoff().pause_after(0.0, 0.25) == 0.25


class _Quiet:
    def warning(self, msg: object, /, *args: object) -> None:
        pass


def pauses_until_given_up(
    error: Exception, deadline: float | None = None, monkeypatch: pytest.MonkeyPatch | None = None
) -> list[float]:
    """The pauses the default policy takes before giving up on an error that keeps coming (time runs with them)."""
    attempts = Attempts(RetryPolicy(), _Quiet(), deadline=deadline)
    pauses: list[float] = []
    if monkeypatch is not None:
        monkeypatch.setattr(retry.time, "time", lambda: 1000.0 + sum(pauses))
    with pytest.raises(type(error)):
        while True:
            pauses.append(attempts.pause_after(error))
    return pauses


def test_a_rate_limit_is_retried_until_the_minute_can_have_refilled() -> None:
    pauses = pauses_until_given_up(RateLimitedError("HTTP 429"))
    assert sum(pauses) >= 65.0  # the per-minute quota refills at the next minute: a 65 s window covers it
    assert all(p <= 10.0 for p in pauses)
    assert all(p >= 5.0 for p in pauses[4:])  # past the first seconds, at most one attempt per 5 to 10 s
    assert len(pauses) + 1 <= 16


def test_the_concurrent_operations_quota_is_waited_out_for_minutes_up_to_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pauses = pauses_until_given_up(ConcurrentOperationsQuotaError("403"))
    assert sum(pauses) >= 600.0
    bounded = pauses_until_given_up(ConcurrentOperationsQuotaError("403"), deadline=1060.0, monkeypatch=monkeypatch)
    assert 30.0 <= sum(bounded) <= 60.0


def test_resource_not_ready_is_retried_briefly() -> None:
    pauses = pauses_until_given_up(ResourceNotReadyError("400 resourceNotReady"))
    assert 1 <= len(pauses) <= 5 and sum(pauses) <= 16.0


@pytest.mark.parametrize("error", [QuotaExceededError("quota"), PermissionDeniedError("perm")])
def test_allocation_quota_and_permissions_fail_at_once(error: Exception) -> None:
    assert pauses_until_given_up(error) == []


def test_each_cause_has_its_own_budget() -> None:
    attempts = Attempts(RetryPolicy(initial_backoff=0.0), _Quiet())
    for _ in range(5):
        attempts.pause_after(TransientApiError("503"))
    attempts.pause_after(RateLimitedError("429"))  # five 503s do not use up the rate-limit budget
