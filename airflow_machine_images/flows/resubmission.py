"""Submitting again: when an answer is a replay of an earlier submission, and how often one try may resubmit.

Compute Engine deduplicates mutating requests by ``requestId``: a repeat of a request it remembers is
answered with the original operation, even a finished or failed one. The Operation resource does not
say so (it has no ``requestId`` field), so a replay is recognised by the operation's age, measured
with server times only (:func:`is_replay`). Every create and delete flow of the package takes its
replays, replayed failures and resubmissions from here, so the rules exist once.

Generations: every submission of one call of one task instance has a generation (0 first), and
each generation its own task-derived ``requestId`` (:class:`~airflow_machine_images.flows.request_ids.RequestIds`).
:func:`with_resubmissions` moves on to the next generation when a step raises
:class:`~airflow_machine_images.exceptions.ResubmissionNeeded`, within the bounds below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, TypeVar

from airflow_machine_images.api.timestamps import parse_timestamp
from airflow_machine_images.exceptions import ComputeEngineError, ResubmissionNeeded, SourceLimitReached

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import datetime

    from airflow_machine_images.exceptions import OperationFailedError
    from airflow_machine_images.logs import TaskLogger

T = TypeVar("T")

#: Slack of the replay rule, in seconds. A new operation's age on the server can never exceed the
#: submission's wait on the worker (``insertTime`` is written after the request arrives, and the ``Date``
#: header's whole seconds are truncated, which only lowers the age); the slack covers a server whose
#: front end (``Date``) and back end (``insertTime``) clocks differ by a little, or that rounds its
#: ``Date`` up, and the two clocks' rates. A replay is recognised once it is older than this plus the
#: wait plus up to one second of ``Date`` truncation.
REPLAY_TOLERANCE_SECONDS: Final = 0.5
#: Resubmissions one try may make for answers that changed under it (a resource reported to exist
#: and then gone, an image that vanished while being reused); replays of earlier tries do not count.
MAX_CHANGED_RESUBMISSIONS_PER_TRY: Final = 3
#: The most generations one try walks in all (each earlier try added at most
#: ``MAX_CHANGED_RESUBMISSIONS_PER_TRY + 1``): a guard against a server that replays for ever.
MAX_GENERATIONS_PER_TRY: Final = 100
#: Waits for the per-source machine-image limit one try may make (:mod:`.source_limit`): each waits out the
#: 10-minute window, so seven cover the 60-minute one (at most 6 images in 60 minutes) with one to spare.
MAX_SOURCE_LIMIT_WAITS_PER_TRY: Final = 7


def is_replay(operation: Mapping[str, Any], *, answered_at: datetime | None, waited: float, is_retry: bool) -> bool:
    """Whether the server answered with the operation of an earlier submission of the same ``requestId``.

    Server times only: the operation's age on the server (the answer's ``Date`` header, RFC 9110,
    minus the operation's ``insertTime``) is compared with how long this submission has been under way
    on the worker (a duration on its monotonic clock, so an offset between the two clocks does not
    matter). An operation much older than this submission was made by an earlier one: an earlier try,
    a crashed worker, a cleared task. A transport retry of this very submission is not a replay (its
    wait is counted). Without a ``Date`` header, an operation that is DONE on arrival on a retry is
    taken for a replay (real inserts and deletes take a while), anything else for this submission's own.

    :param operation: the answer to the insert or delete.
    :param answered_at: the server's time of the answer (its ``Date`` header), if it sent one.
    :param waited: seconds from sending the submission's first attempt until the answer, on the worker.
    :param is_retry: this is not the task's first try.
    """
    started = parse_timestamp(operation.get("insertTime"))
    server_age = None if answered_at is None or started is None else (answered_at - started).total_seconds()
    if server_age is not None and server_age > waited + REPLAY_TOLERANCE_SECONDS:
        return True
    return is_retry and operation.get("status") == "DONE"


def resubmit_if_replayed(failure: OperationFailedError, *, replayed: bool, what: str) -> None:
    """Ask for the next generation if a failed operation is an earlier submission's, replayed.

    The server answers a remembered ``requestId`` with its original operation, even a failed one:
    left alone, every retry would replay that failure. A failed operation made nothing, so a new
    submission cannot duplicate anything. This try's own failure is left to the caller.

    :param failure: the operation's failure.
    :param replayed: the operation was replayed from an earlier submission.
    :param what: the call, for the message (``"Delete of machine image img-1"``).
    :raises ResubmissionNeeded: the failure is an earlier submission's.
    """
    if replayed:
        raise ResubmissionNeeded(
            f"{what}: operation {failure.operation_name} of this task instance failed in an earlier try ({failure})",
            replayed=True,
        ) from failure


def with_resubmissions(
    attempt: Callable[[int], T],
    *,
    first_generation: int,
    what: str,
    log: TaskLogger,
    reason: ResubmissionNeeded | None = None,
    wait: Callable[[SourceLimitReached, int, int], None] | None = None,
    source_limit_waits: int = 0,
) -> T:
    """Run ``attempt(generation)``, submitting again under the next generation while it asks to, within bounds.

    ``attempt`` raises :class:`~airflow_machine_images.exceptions.ResubmissionNeeded` when the server's
    answer leaves nothing to use and a new submission cannot duplicate anything; anything else it raises
    (or a deferral) passes through. The rule, the same for every create and delete:

    - a replayed generation (an earlier try's operation: ``replayed``) moves on to the next one: each
      try walks the generations of the earlier ones, one request apiece, so a crashed worker's
      resubmission still deduplicates;
    - this try's own submission that left nothing (``fresh``) ends the try with a retryable error: every
      Airflow try after a server-side failure gets exactly one new submission, never a spin;
    - a refusal by the per-source limit (:class:`~airflow_machine_images.exceptions.SourceLimitReached`)
      is waited out by ``wait`` until the limit allows the next submission, at most
      :data:`MAX_SOURCE_LIMIT_WAITS_PER_TRY` times per try (counted across deferrals); a caller that cannot
      wait (no ``wait``) ends the try;
    - anything else (the resource changed under the try) moves on at most
      :data:`MAX_CHANGED_RESUBMISSIONS_PER_TRY` times, and the try then gives up saying so.

    :param attempt: one submission, given its generation.
    :param first_generation: the generation to start at (after a deferral, the next one).
    :param what: the resource, for the final error (``"Machine image web-1"``).
    :param log: where each resubmission is announced.
    :param reason: why the previous generation (before a deferral) asked for a resubmission.
    :param wait: waits until a per-source-limit refusal's ``retry_at`` (given the refusal, the generation to
        submit next and this try's waits so far, this one included); may defer the task, or raise when the
        task's deadline comes first.
    :param source_limit_waits: the per-source-limit waits this try made before a deferral.
    :raises ComputeEngineError: this try may not submit again (Airflow retries it, as the task says).
    """
    generation, changed, waits = first_generation, 0, source_limit_waits
    while True:
        if isinstance(reason, SourceLimitReached):
            waits += 1
            _check_source_limit(reason, what, waits, can_wait=wait is not None)
            if wait is not None:
                wait(reason, generation, waits)
        elif reason is not None:
            changed += not (reason.replayed or reason.fresh)
            _check_bounds(reason, what, generation, first_generation, changed)
        if reason is not None:
            log.warning("%s. Submitting again with a new requestId (generation %d).", reason, generation)
        try:
            return attempt(generation)
        except ResubmissionNeeded as why:
            reason, generation = why, generation + 1


def _check_source_limit(reason: SourceLimitReached, what: str, waits: int, *, can_wait: bool) -> None:
    """Raise if the try may not wait for the per-source limit once more (see :func:`with_resubmissions`)."""
    if not can_wait:
        raise ComputeEngineError(f"{reason}; this caller cannot wait for it, the next try submits again") from reason
    if waits > MAX_SOURCE_LIMIT_WAITS_PER_TRY:
        raise ComputeEngineError(
            f"{reason}. Gave up after {waits - 1} waits for the per-source limit in this try (at most "
            f"{MAX_SOURCE_LIMIT_WAITS_PER_TRY}); the next try starts again."
        ) from reason


def _check_bounds(reason: ResubmissionNeeded, what: str, generation: int, first: int, changed: int) -> None:
    """Raise if the try may not submit ``generation`` after ``reason`` (see :func:`with_resubmissions`)."""
    if reason.fresh:
        raise ComputeEngineError(
            f"{what}: {reason}. This try made its one submission (generation {generation - 1}); "
            f"the next try submits generation {generation}."
        ) from reason
    if changed > MAX_CHANGED_RESUBMISSIONS_PER_TRY or generation - first >= MAX_GENERATIONS_PER_TRY:
        raise ComputeEngineError(
            f"{what}: {reason}. Gave up after {generation - first} resubmission(s) in this try "
            f"({changed} for answers that changed under it; at most {MAX_CHANGED_RESUBMISSIONS_PER_TRY}); "
            "the next try starts again."
        ) from reason
