"""The per-source machine-image limit (issue 25, item 4), with dag.test() against the emulator.

The emulator's ``source_image_limit_scale`` applies Compute Engine's limit ("at most once every 10 minutes,
at most 6 requests in 60 minutes" per source instance) with its windows scaled by 0.01 (6 s and 36 s), and
answers a refused insert as a failed operation, ``RESOURCE_OPERATION_RATE_EXCEEDED``, HTTP 403.
``[machine_images] source_image_limit_wait_seconds`` is scaled the same way (6 s). The task waits within
itself (asleep on the worker, or deferred to a trigger that fires at the allowed time), never through an
Airflow retry (``retries=0``), and submits the next generation.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import pytest

from tests.integration.conftest import PROJECT, load_dag, task_states

if TYPE_CHECKING:
    from airflow_machine_images.emulator import ComputeEngineEmulator

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

WAIT_SECONDS = 6.0


@pytest.fixture
def limited(gcp_connection: ComputeEngineEmulator, monkeypatch: pytest.MonkeyPatch) -> ComputeEngineEmulator:
    gcp_connection.set_options(source_image_limit_scale=0.01)
    monkeypatch.setenv("AIRFLOW__MACHINE_IMAGES__SOURCE_IMAGE_LIMIT_WAIT_SECONDS", str(WAIT_SECONDS))
    return gcp_connection


def inserts(emulator: ComputeEngineEmulator) -> list[dict]:  # type: ignore[type-arg]
    return [op for op in emulator.operations(PROJECT) if op["operationType"] == "insert"]


def moment(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize("dag_id", ["ami_test_source_limit", "ami_test_source_limit_deferrable"])
def test_a_refusal_is_waited_out_within_the_task_and_submitted_again(
    limited: ComputeEngineEmulator, dag_id: str, capfd: pytest.CaptureFixture[str]
) -> None:
    dag_run = load_dag(dag_id).test()
    assert task_states(dag_run) == {"first": "success", "second": "success"}
    second = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "second")
    assert second.try_number == 1  # no Airflow retry
    first_op, refused, accepted = inserts(limited)
    assert "error" not in first_op and "error" not in accepted
    assert refused["error"]["errors"][0]["code"] == "RESOURCE_OPERATION_RATE_EXCEEDED"
    assert refused["httpErrorStatusCode"] == 403
    assert len({first_op["clientOperationId"], refused["clientOperationId"], accepted["clientOperationId"]}) == 3
    # the next generation went only once the limit allowed it (the refusal's endTime plus the wait)
    assert moment(accepted["insertTime"]) >= moment(refused["endTime"]) + WAIT_SECONDS - 1
    assert {image["name"] for image in limited.machine_images()} == {"web-1-a", "web-1-b"}
    log = capfd.readouterr().out
    assert "per-source limit: the next try is allowed at" in log
    waited = "in the triggerer" if dag_id.endswith("_deferrable") else "on this worker"
    assert f"; waiting {waited} (wait 1)" in log


def test_a_refusal_whose_next_try_comes_after_the_deadline_fails_at_once_saying_when(
    limited: ComputeEngineEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    dag_run = load_dag("ami_test_source_limit_short_deadline").test()
    assert task_states(dag_run) == {"first": "success", "second": "failed"}
    log = capfd.readouterr().out
    assert "refused by Compute Engine's per-source limit" in log
    assert "the next try is allowed at" in log and "after the task's deadline" in log
    assert len(inserts(limited)) == 2  # nothing submitted again
