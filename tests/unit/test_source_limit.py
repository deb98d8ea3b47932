"""The per-source machine-image limit: recognising a refusal, when the next try is allowed, the bounded
waits of one try, and the trigger that fires at the allowed time."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from airflow_machine_images.events import EVENT_INVALID_ARGUMENT, EVENT_TIMEOUT
from airflow_machine_images.exceptions import (
    ComputeEngineError,
    MachineImageValidationError,
    ResubmissionNeeded,
    SourceLimitReached,
    operation_failed,
)
from airflow_machine_images.flows.resubmission import MAX_SOURCE_LIMIT_WAITS_PER_TRY, with_resubmissions
from airflow_machine_images.flows.source_limit import refused_by_source_limit, source_limit_reached, wait_seconds
from airflow_machine_images.triggers import SourceLimitWaitTrigger

LOG = logging.getLogger("test")


def refusal(end_time: str | None = "2026-05-20T01:00:00.000-07:00") -> Any:
    return operation_failed(
        "operation-1",
        [{"code": "RESOURCE_OPERATION_RATE_EXCEEDED", "message": "Operation rate exceeded for resource 'x'."}],
        http_error_status_code=403,
        end_time=end_time,
    )


def test_the_next_try_is_counted_from_the_refusals_end_time(monkeypatch: pytest.MonkeyPatch) -> None:
    assert wait_seconds() == 600.0
    failure = refusal()
    assert refused_by_source_limit(failure)
    assert not refused_by_source_limit(operation_failed("op", [{"code": "QUOTA_EXCEEDED", "message": "no"}]))
    reached = source_limit_reached(failure, what="Machine image web-1-a", replayed=False)
    assert reached.retry_at == 1779264000.0 + 600  # 2026-05-20T08:00:00Z plus ten minutes
    assert "the next try is allowed at 2026-05-20 08:10:00 UTC" in str(reached)
    assert not reached.fresh and not reached.replayed
    monkeypatch.setenv("AIRFLOW__MACHINE_IMAGES__SOURCE_IMAGE_LIMIT_WAIT_SECONDS", "6.5")
    assert source_limit_reached(refusal(None), what="x", replayed=True, now=1000.0).retry_at == 1006.5
    monkeypatch.setenv("AIRFLOW__MACHINE_IMAGES__SOURCE_IMAGE_LIMIT_WAIT_SECONDS", "0")
    with pytest.raises(MachineImageValidationError, match="AIRFLOW__MACHINE_IMAGES__SOURCE_IMAGE_LIMIT_WAIT_SECONDS"):
        wait_seconds()


def test_a_refusal_survives_pickling_with_its_moment() -> None:
    import pickle

    again = pickle.loads(pickle.dumps(SourceLimitReached("refused", retry_at=123.5, replayed=True)))
    assert (again.retry_at, again.replayed, str(again)) == (123.5, True, "refused")


def test_each_refusal_is_waited_out_then_the_next_generation_is_submitted() -> None:
    waits: list[tuple[float, int, int]] = []
    refusals = iter([SourceLimitReached("r1", retry_at=1.0), SourceLimitReached("r2", retry_at=2.0)])

    def attempt(generation: int) -> str:
        refused = next(refusals, None)
        if refused is not None:
            raise refused
        return f"made by generation {generation}"

    result = with_resubmissions(
        attempt,
        first_generation=0,
        what="w",
        log=LOG,  # type: ignore[arg-type]
        wait=lambda why, generation, n: waits.append((why.retry_at, generation, n)),
    )
    assert result == "made by generation 2"
    assert waits == [(1.0, 1, 1), (2.0, 2, 2)]


def test_the_waits_of_one_try_are_bounded_across_deferrals() -> None:
    def attempt(generation: int) -> str:
        raise SourceLimitReached("refused again", retry_at=0.0)

    waited: list[int] = []
    with pytest.raises(ComputeEngineError, match=f"Gave up after {MAX_SOURCE_LIMIT_WAITS_PER_TRY} waits"):
        with_resubmissions(
            attempt,
            first_generation=3,
            what="w",
            log=LOG,  # type: ignore[arg-type]
            wait=lambda why, generation, n: waited.append(n),
            source_limit_waits=2,  # two waits before a deferral
        )
    assert waited == list(range(3, MAX_SOURCE_LIMIT_WAITS_PER_TRY + 1))
    with pytest.raises(ComputeEngineError, match="cannot wait"):
        with_resubmissions(attempt, first_generation=0, what="w", log=LOG)  # type: ignore[arg-type]
    # other resubmissions keep their own bounds
    assert issubclass(SourceLimitReached, ResubmissionNeeded)


def events(trigger: SourceLimitWaitTrigger) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


def test_the_trigger_fires_at_the_allowed_time_and_hands_the_bookkeeping_back() -> None:
    at = time.time() + 0.2
    trigger = SourceLimitWaitTrigger(at=at, deadline=at + 60, event_extra={"generation": 2, "source_limit_waits": 1})
    assert trigger.serialize() == (
        "airflow_machine_images.triggers.SourceLimitWaitTrigger",
        {"at": at, "deadline": at + 60, "event_extra": {"generation": 2, "source_limit_waits": 1}},
    )
    (event,) = events(trigger)
    assert time.time() >= at
    assert event["status"] == "success" and event["extra"] == {"generation": 2, "source_limit_waits": 1}


def test_the_trigger_refuses_a_moment_after_the_deadline_and_tampered_kwargs() -> None:
    (late,) = events(SourceLimitWaitTrigger(at=2000.0, deadline=1000.0))
    assert late["reason"] == EVENT_TIMEOUT and "after the task's deadline" in late["message"]
    for kwargs in ({"at": "soon"}, {"at": float("inf")}, {"at": 5.0, "deadline": True}, {"at": 5.0, "event_extra": []}):
        (bad,) = events(SourceLimitWaitTrigger(**kwargs))  # type: ignore[arg-type]
        assert bad["status"] == "error" and bad["reason"] == EVENT_INVALID_ARGUMENT
