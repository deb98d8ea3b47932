"""When to retry a failed API call, and how long to pause before the next one.

:class:`RetryPolicy` and :class:`Attempts` are the one retry loop body of both hooks;
:class:`EarlyAnswerBackoff` is the one pause after an early ``globalOperations.wait`` answer, for the
sync hook's wait and the triggers' poller.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from airflow_machine_images import metrics
from airflow_machine_images.exceptions import (
    ComputeEngineApiError,
    ConcurrentOperationsQuotaError,
    DeadlineExceededError,
    MalformedResponseError,
    RateLimitedError,
    ResourceNotReadyError,
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
class Budget:
    """How one cause of failure is retried: backoff ceilings and when to give up.

    The pause before retry ``n`` is drawn from ``[ceiling / 2, ceiling]`` (``floor_share`` 0.5) or
    ``[0, ceiling]`` (full jitter, ``floor_share`` 0), where the ceiling starts at ``initial`` and
    grows by ``multiplier`` up to ``largest``. Retrying stops after ``max_attempts`` attempts, or
    once ``min_total`` seconds of pauses have been spent (whichever is given), and always at the
    caller's deadline.

    :param initial: the first ceiling, in seconds.
    :param multiplier: growth of the ceiling per retry.
    :param largest: the largest ceiling, in seconds.
    :param max_attempts: attempts in all (None: bounded by ``min_total`` or the deadline).
    :param min_total: keep retrying until this many seconds of pauses were spent (None: by attempts).
    :param floor_share: the share of the ceiling the pause is at least.
    """

    initial: float = 1.0
    multiplier: float = 2.0
    largest: float = 32.0
    max_attempts: int | None = 6
    min_total: float | None = None
    floor_share: float = 0.0

    def __post_init__(self) -> None:
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial < 0 or self.largest < 0 or self.multiplier < 1:
            raise ValueError("backoffs must be >= 0 and multiplier >= 1")
        if self.max_attempts is None and self.min_total is None:
            raise ValueError("give max_attempts or min_total")

    def ceiling(self, attempt: int) -> float:
        """The ceiling of the pause before retry number ``attempt`` (1 for the first).

        :param attempt: how many attempts failed so far.
        """
        return min(self.largest, self.initial * self.multiplier ** (attempt - 1))

    def exhausted(self, attempt: int, paused: float) -> bool:
        """Whether ``attempt`` failed attempts after ``paused`` seconds of pauses used this budget up.

        :param attempt: how many attempts failed so far.
        :param paused: seconds paused so far.
        """
        if self.min_total is not None:
            return paused >= self.min_total
        return self.max_attempts is not None and attempt >= self.max_attempts


#: 429 and 403 ``rateLimitExceeded``: a per-project per-minute quota refills at the start of the next
#: minute (Compute Engine docs, "API rate limits", cloud.google.com/compute/api-quota), so retry until
#: at least 65 s of pauses could have let a whole minute pass; past the first seconds, one attempt per
#: 5 to 10 s, so a waiting task spends few of the refilled requests.
RATE_LIMIT_BUDGET = Budget(
    initial=1.0, multiplier=2.0, largest=10.0, max_attempts=None, min_total=65.0, floor_share=0.5
)
#: 403 ``CONCURRENT_OPERATIONS_QUOTA_EXCEEDED``: clears only as running operations finish, which takes
#: minutes (Compute Engine docs, "Operations quota"); waited out up to the deadline, or 15 minutes.
CONCURRENT_OPERATIONS_BUDGET = Budget(
    initial=5.0, multiplier=2.0, largest=30.0, max_attempts=None, min_total=900.0, floor_share=0.5
)
#: 400 ``resourceNotReady``: a temporary state (Terraform retries it, magic-modules pull 13881); briefly.
NOT_READY_BUDGET = Budget(initial=1.0, multiplier=2.0, largest=4.0, max_attempts=5)


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff by cause, with jitter, honouring ``Retry-After``; one policy for both transports.

    Every mutating call carries a ``requestId``, so resending it after a timeout or a dropped
    connection is safe: the server answers a repeat with the original operation. Which budget applies
    is decided by the error's type (:mod:`airflow_machine_images.api.responses` classifies answers):

    ======================================  ===========================================================
    cause                                   budget
    ======================================  ===========================================================
    rate limit (429, 403 rateLimitExceeded)  ``rate_limit``: >= 65 s of pauses, one try per <= 10 s
    CONCURRENT_OPERATIONS_QUOTA_EXCEEDED     ``concurrent_operations``: minutes, up to the deadline
    400 resourceNotReady                     ``not_ready``: a few tries over ~10 s
    5xx, connection, timeout, garbage        ``transient``: 6 attempts, ceilings 1 to 16 s
    anything else (quota, permission, 4xx)   not retried
    ======================================  ===========================================================

    :param max_attempts: attempts in all for ``transient`` causes, the first included.
    :param initial_backoff: the ``transient`` backoff ceiling before the first retry, in seconds.
    :param multiplier: growth of the ``transient`` ceiling per attempt.
    :param max_backoff: the largest ``transient`` ceiling, in seconds.
    :param max_retry_after: the longest ``Retry-After`` we honour, in seconds.
    :param rate_limit: the budget of rate limits.
    :param concurrent_operations: the budget of the concurrent-operations quota.
    :param not_ready: the budget of ``resourceNotReady``.
    """

    max_attempts: int = 6
    initial_backoff: float = 1.0
    multiplier: float = 2.0
    max_backoff: float = 32.0
    max_retry_after: float = 120.0
    rate_limit: Budget = RATE_LIMIT_BUDGET
    concurrent_operations: Budget = CONCURRENT_OPERATIONS_BUDGET
    not_ready: Budget = NOT_READY_BUDGET

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.multiplier < 1:
            raise ValueError("backoffs must be >= 0 and multiplier >= 1")

    @property
    def transient(self) -> Budget:
        """The budget of 5xx, dropped connections, timeouts and garbled answers."""
        return Budget(self.initial_backoff, self.multiplier, self.max_backoff, max_attempts=self.max_attempts)

    @staticmethod
    def is_retryable(error: BaseException) -> bool:
        """Whether ``error`` is a transient fault (rate limit, 5xx, lost connection, garbled answer).

        :param error: the error of the last attempt.
        """
        return isinstance(error, (TransientApiError, MalformedResponseError))

    def budget_for(self, error: BaseException) -> Budget | None:
        """The budget of ``error``'s cause; None if it is not retried.

        :param error: the error of the last attempt.
        """
        if isinstance(error, RateLimitedError):
            return self.rate_limit
        if isinstance(error, ConcurrentOperationsQuotaError):
            return self.concurrent_operations
        if isinstance(error, ResourceNotReadyError):
            return self.not_ready
        return self.transient if self.is_retryable(error) else None

    def delay(self, attempt: int, error: BaseException, rng: random.Random | None = None) -> float:
        """Seconds to sleep before retry number ``attempt`` (1 for the first retry).

        :param attempt: how many attempts failed so far (of this cause).
        :param error: the error of the last attempt (its ``retry_after`` is honoured).
        :param rng: random source, for tests.
        """
        budget = self.budget_for(error) or self.transient
        ceiling = budget.ceiling(attempt)
        jittered = (rng or random).uniform(ceiling * budget.floor_share, ceiling)
        retry_after = error.retry_after if isinstance(error, ComputeEngineApiError) else None
        if retry_after is not None:
            return max(min(retry_after, self.max_retry_after), jittered)
        return jittered

    def should_retry(self, attempt: int, error: BaseException, paused: float = 0.0) -> bool:
        """Whether to try again after ``attempt`` failed attempts ending in ``error``.

        :param attempt: how many attempts of this cause failed so far.
        :param error: the error of the last attempt.
        :param paused: seconds paused for this cause so far.
        """
        budget = self.budget_for(error)
        return budget is not None and not budget.exhausted(attempt, paused)

    def backoff_or_raise(
        self, attempt: int, error: Exception, *, paused: float = 0.0, remaining: float | None = None
    ) -> float:
        """Return the pause before the next attempt, or raise ``error`` if we should give up.

        A transient error that exhausted its budget is re-raised saying how many attempts were made.

        :param attempt: how many attempts of this cause failed so far.
        :param error: the error of the last attempt.
        :param paused: seconds paused for this cause so far.
        :param remaining: seconds left before the caller's deadline (None: no deadline).
        """
        if self.should_retry(attempt, error, paused):
            pause = self.delay(attempt, error)
            if remaining is None or pause < remaining:
                return pause
            if attempt > 1 or remaining > 0:
                raise _gave_up(error, f"gave up after {attempt} attempts: the task's deadline comes first")
        if isinstance(error, TransientApiError) and attempt > 1:
            budget = self.budget_for(error)
            over = f" over {paused:.0f} s" if budget is not None and budget.min_total is not None else ""
            raise _gave_up(error, f"gave up after {attempt} attempts{over}")
        raise error


def _gave_up(error: Exception, why: str) -> Exception:
    """``error`` again, of the same type, its message saying why retrying stopped."""
    if not isinstance(error, ComputeEngineApiError):
        return error
    again = type(error)(
        f"{error} ({why})",
        http_status=error.http_status,
        reason=error.reason,
        action=error.action,
        errors=error.errors,
        details=error.details,
    )
    again.__cause__ = error
    return again


@dataclass
class Attempts:
    """The attempts of one call: after each failure, decide whether to go on, log it, say how long to pause.

    A transport's retry loop is then only "send; on error, sleep :meth:`pause_after`". Attempts and
    pauses are counted per cause: a rate limit after two 503s starts the rate-limit budget afresh.

    :param policy: when and how long to back off.
    :param log: where the warning before each retry goes.
    :param deadline: the caller's deadline (seconds since the epoch): no pause runs past it.
    :param failed: how many attempts failed so far.
    """

    policy: RetryPolicy
    log: WarningLog
    deadline: float | None = None
    failed: int = 0
    _by_cause: dict[str, tuple[int, float]] = field(default_factory=dict)

    def pause_after(self, error: Exception) -> float:
        """Count a failed attempt; return the pause before the next, or raise ``error`` if it is time to give up.

        Deciding is :meth:`RetryPolicy.backoff_or_raise`'s; a retry that could not start before the
        caller's deadline is not made (the error is raised, saying so).

        :param error: the error of the attempt that failed.
        """
        self.failed += 1
        cause = type(self.policy.budget_for(error)).__name__ + repr(self.policy.budget_for(error))
        attempt, paused = self._by_cause.get(cause, (0, 0.0))
        attempt += 1
        remaining = None if self.deadline is None else self.deadline - time.time()
        delay = self.policy.backoff_or_raise(attempt, error, paused=paused, remaining=remaining)
        self._by_cause[cause] = (attempt, paused + delay)
        metrics.api_retry(metrics.error_kind(error))
        budget = self.policy.budget_for(error)
        of = f" of {budget.max_attempts}" if budget is not None and budget.min_total is None else ""
        self.log.warning("%s; retrying in %.1f s (attempt %d%s)", error, delay, self.failed + 1, of)
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
