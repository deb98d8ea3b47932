"""The one retry loop body of both hooks (:class:`Attempts`)."""

from __future__ import annotations

import logging

import pytest

from airflow_machine_images.exceptions import ResourceNotFoundError, TransientApiError
from airflow_machine_images.retry import Attempts, RetryPolicy

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
