"""The one retry loop body (:class:`Attempts`) and the one pause after early wait answers."""

from __future__ import annotations

import logging

import pytest

from airflow_machine_images.exceptions import ResourceNotFoundError, TransientApiError
from airflow_machine_images.retry import EARLY_RETURN_SECONDS, Attempts, EarlyAnswerBackoff, RetryPolicy

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
