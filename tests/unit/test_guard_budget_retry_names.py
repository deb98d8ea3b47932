"""Guards of pure rules that a mutation spot-check (issue 21) found unguarded: the per-triggerer budget
share rounds down, a permanent 400 is sent once (only ``resourceNotReady`` is retried), and two
instance answers without an ``id`` are never judged the same instance."""

from __future__ import annotations

import logging

import pytest

from airflow_machine_images.api.retry import Attempts, Budget, RetryPolicy
from airflow_machine_images.bodies.labels import OWNER_LABEL
from airflow_machine_images.exceptions import InvalidRequestError, MachineImageConflictError, ResourceNotReadyError
from airflow_machine_images.flows.source_names import SourceNames, canonical_from_instance
from airflow_machine_images.triggers import budget
from tests.unit.test_source_names import BASE, NUMBER, FakeInstances, check_source, ref, request_for

# ---------------------------------------------------------------- 7. the budget share rounds down


@pytest.fixture(autouse=True)
def _fresh_budget_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(budget, "_warned", set())


@pytest.mark.parametrize(
    ("total", "triggerers", "each"),
    [(100, 6, 16), (101, 2, 50), (11, 4, 2), (59, 10, 5), (5, 3, 1), (1000, 7, 142), (60, 1, 60)],
)
def test_a_triggerers_share_is_the_total_divided_rounded_down(total: int, triggerers: int, each: int) -> None:
    assert budget.share(total, triggerers) == each
    assert budget.share(total, triggerers) * triggerers <= total


def test_the_shares_of_all_triggerers_never_exceed_the_total() -> None:
    for total in range(1, 241):
        for triggerers in range(1, total + 1):
            each = budget.share(total, triggerers)
            assert each * triggerers <= total, (total, triggerers, each)
            assert (each + 1) * triggerers > total, (total, triggerers, each)  # nothing left unshared beyond rounding


# ---------------------------------------------------------------- 10. a permanent 400 is sent once


class _Quiet:
    def warning(self, msg: object, /, *args: object) -> None:
        pass


#: The default budgets' rules, without pauses.
NO_PAUSES = RetryPolicy(initial_backoff=0.0, not_ready=Budget(initial=0.0, largest=0.0, max_attempts=5))


def sends_until_given_up(error: Exception) -> int:
    """How many times a call is sent when every attempt ends in ``error`` (the hooks' loop: send; on error, pause)."""
    attempts, sent = Attempts(NO_PAUSES, _Quiet()), 0
    while True:
        sent += 1
        try:
            attempts.pause_after(error)
        except type(error):
            return sent


def test_a_plain_400_is_sent_once_while_resource_not_ready_is_retried() -> None:
    invalid = InvalidRequestError("HTTP 400: Invalid value for field", http_status=400, reason="invalid")
    not_ready = ResourceNotReadyError("HTTP 400: The resource is not ready", http_status=400, reason="resourceNotReady")
    assert sends_until_given_up(invalid) == 1
    assert sends_until_given_up(not_ready) == 5
    assert RetryPolicy().budget_for(invalid) is None  # with the real pauses too: never retried


# ---------------------------------------------------------------- 9. id-less answers are not the same instance


def echoed(name: str) -> dict[str, str]:
    """An ``instances.get`` answer whose selfLink keeps the project number, and that has no ``id``."""
    return {"name": name, "selfLink": f"{BASE}projects/{NUMBER}/zones/us-central1-a/instances/{name}"}


REQUESTED = f"projects/{NUMBER}/zones/us-central1-a/instances/web-1"
EXISTING = f"projects/{NUMBER}/zones/us-central1-a/instances/7777777777"


def id_less_hook() -> FakeInstances:
    return FakeInstances(
        {(NUMBER, "us-central1-a", "web-1"): echoed("web-1"), (NUMBER, "us-central1-a", "7777777777"): echoed("web-2")}
    )


def test_an_answer_without_id_has_no_instance_id() -> None:
    assert not canonical_from_instance(echoed("web-1")).instance_id


def test_two_answers_without_id_are_never_judged_the_same_instance() -> None:
    names = SourceNames()
    assert names.same_instance(id_less_hook(), ref(REQUESTED), ref(EXISTING)) in (None, False)


def test_the_safe_reading_follows_for_an_image_of_someone_else() -> None:
    image = {"sourceInstance": f"{BASE}{EXISTING}", "labels": {OWNER_LABEL: "someone-else"}}
    with pytest.raises(MachineImageConflictError, match="7777777777"):
        check_source(id_less_hook(), request_for(REQUESTED), image, logging.getLogger("test"))  # type: ignore[arg-type]
