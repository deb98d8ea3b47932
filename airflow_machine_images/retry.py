"""When to retry a failed API call, and how long to pause before the next one.

:class:`RetryPolicy` and :class:`Attempts` are the one retry loop body of both hooks;
:class:`EarlyAnswerBackoff` is the one pause after an early ``globalOperations.wait`` answer, for the
sync hook's wait and the triggers' poller.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, Protocol

from airflow_machine_images.exceptions import (
    ComputeEngineApiError,
    DeadlineExceededError,
    MalformedResponseError,
    TransientApiError,
)

#: A ``globalOperations.wait`` answered faster than this without DONE returned early: back off before the next.
EARLY_RETURN_SECONDS = 1.0


class WarningLog(Protocol):
    """What :class:`Attempts` logs to: a :class:`logging.Logger`, or the structlog logger of an Airflow hook."""

    def warning(self, msg: Any, /, *args: Any) -> Any:
        """Log ``msg % args`` at WARNING.

        :param msg: the message, with ``%`` placeholders.
        :param args: the placeholders' values.
        """


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, honouring ``Retry-After``.

    Every mutating call carries a ``requestId``, so resending it after a timeout or a dropped
    connection is safe: the server answers a repeat with the original operation.

    :param max_attempts: attempts in all, the first included.
    :param initial_backoff: the backoff ceiling before the first retry, in seconds.
    :param multiplier: growth of the ceiling per attempt.
    :param max_backoff: the largest ceiling, in seconds.
    :param max_retry_after: the longest ``Retry-After`` we honour, in seconds.
    """

    max_attempts: int = 6
    initial_backoff: float = 1.0
    multiplier: float = 2.0
    max_backoff: float = 32.0
    max_retry_after: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.multiplier < 1:
            raise ValueError("backoffs must be >= 0 and multiplier >= 1")

    @staticmethod
    def is_retryable(error: BaseException) -> bool:
        """Whether ``error`` is a transient fault (rate limit, 5xx, lost connection, garbled answer).

        :param error: the error of the last attempt.
        """
        return isinstance(error, (TransientApiError, MalformedResponseError))

    def delay(self, attempt: int, error: BaseException, rng: random.Random | None = None) -> float:
        """Seconds to sleep before retry number ``attempt`` (1 for the first retry).

        :param attempt: how many attempts failed so far.
        :param error: the error of the last attempt (its ``retry_after`` is honoured).
        :param rng: random source, for tests.
        """
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        jittered = (rng or random).uniform(0, ceiling)
        retry_after = error.retry_after if isinstance(error, ComputeEngineApiError) else None
        if retry_after is not None:
            return max(min(retry_after, self.max_retry_after), jittered)
        return jittered

    def should_retry(self, attempt: int, error: BaseException) -> bool:
        """Whether to try again after ``attempt`` failed attempts ending in ``error``.

        :param attempt: how many attempts failed so far.
        :param error: the error of the last attempt.
        """
        return attempt < self.max_attempts and self.is_retryable(error)

    def backoff_or_raise(self, attempt: int, error: Exception) -> float:
        """Return the pause before the next attempt, or raise ``error`` if we should give up.

        A transient error that exhausted the attempts is re-raised saying how many were made.

        :param attempt: how many attempts failed so far.
        :param error: the error of the last attempt.
        """
        if self.should_retry(attempt, error):
            return self.delay(attempt, error)
        if isinstance(error, TransientApiError) and attempt > 1:
            raise TransientApiError(
                f"{error} (gave up after {attempt} attempts)",
                http_status=error.http_status,
                reason=error.reason,
                action=error.action,
                errors=error.errors,
            ) from error
        raise error


@dataclass
class Attempts:
    """The attempts of one call: after each failure, decide whether to go on, log it, say how long to pause.

    A transport's retry loop is then only "send; on error, sleep :meth:`pause_after`".

    :param policy: when and how long to back off.
    :param log: where the warning before each retry goes.
    :param failed: how many attempts failed so far.
    :param deadline: ``time.monotonic()`` by which the caller needs the call over (None: no deadline);
        no attempt starts after it.
    """

    policy: RetryPolicy
    log: WarningLog
    failed: int = 0
    deadline: float | None = None

    def pause_after(self, error: Exception) -> float:
        """Count a failed attempt; return the pause before the next, or raise ``error`` if it is time to give up.

        Deciding is :meth:`RetryPolicy.backoff_or_raise`'s; a retry that could not start before the
        caller's deadline is not made (:class:`DeadlineExceededError`).

        :param error: the error of the attempt that failed.
        """
        self.failed += 1
        delay = self.policy.backoff_or_raise(self.failed, error)
        if self.deadline is not None and time.monotonic() + delay >= self.deadline:
            raise DeadlineExceededError(
                f"{error} (the caller's deadline passes before another attempt)",
                action=error.action if isinstance(error, ComputeEngineApiError) else None,
            ) from error
        self.log.warning(
            "%s; retrying in %.1f s (attempt %d of %d)", error, delay, self.failed + 1, self.policy.max_attempts
        )
        return delay


@dataclass(frozen=True)
class AttemptTimeouts:
    """The limits of one attempt: per socket operation, and for the whole exchange.

    :param connect: seconds to open the connection.
    :param read: seconds any one read may wait.
    :param total: seconds for the whole attempt, connection to last byte (a server that drips bytes
        meets this one).
    """

    connect: float
    read: float
    total: float

    @classmethod
    def of(cls, connect: float, read: float, total: float | None, deadline: float | None) -> AttemptTimeouts:
        """The limits of the next attempt, none beyond the caller's ``deadline``.

        :param connect: the connect timeout.
        :param read: the read timeout (the long-poll one for ``wait``).
        :param total: the whole attempt's limit (None: ``connect + read``).
        :param deadline: ``time.monotonic()`` by which the caller needs the call over, or None.
        :raises DeadlineExceededError: the deadline has passed.
        """
        whole = total if total is not None else connect + read
        if deadline is None:
            return cls(connect, read, whole)
        left = deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceededError("the caller's deadline passed before the call was sent")
        return cls(min(connect, left), min(read, left), min(whole, left))


@dataclass
class EarlyAnswerBackoff:
    """The pause after each ``globalOperations.wait`` answer that did not bring the result.

    The server holds a wait for up to about two minutes but may answer at once. An answer faster
    than :data:`EARLY_RETURN_SECONDS` is early: pause 1 s, doubling with every early answer in a row,
    up to a ceiling, instead of spinning. A slower answer was a real long-poll: no pause, and the
    next early answer starts again at 1 s.

    :param last: the pause given after the previous answer.
    """

    last: float = 0.0

    def pause_after(self, answered_in: float, longest: float) -> float:
        """Seconds to pause after an answer that was not the result (0 after a real long-poll).

        :param answered_in: seconds the wait took to answer.
        :param longest: the longest pause (the ceiling may change between answers).
        """
        early = answered_in < EARLY_RETURN_SECONDS
        self.last = min(max(1.0, self.last * 2), longest) if early else 0.0
        return self.last
