"""Replays are told by the server's times alone: an offset between the server's clock and the worker's changes nothing.

The rule (``flows/resubmission.is_replay``) compares the operation's age on the server (the answer's
``Date`` minus its ``insertTime``) with the submission's wait on the worker. Comparing the worker's
clock with the server's ``insertTime`` instead would call every fresh insert a replay when the
server's clock runs behind, and miss every real replay when it runs ahead.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pytest

from airflow_machine_images.emulator import ComputeEngineEmulator
from airflow_machine_images.flows.resubmission import REPLAY_TOLERANCE_SECONDS
from airflow_machine_images.hooks import ComputeEngineMachineImageHook
from tests.integration.conftest import PROJECT, SOURCE, load_dag, xcom_result

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]


@pytest.fixture(params=[-600.0, 600.0], ids=["server-10-min-behind", "server-10-min-ahead"])
def emulator(request: pytest.FixtureRequest) -> Iterator[ComputeEngineEmulator]:
    """The usual test emulator, its clock set ten minutes apart from this machine's."""
    with ComputeEngineEmulator(
        default_project=PROJECT, operation_seconds=0.5, seed=1, clock_offset_seconds=request.param
    ) as emu:
        emu.add_instance(SOURCE)
        yield emu


LOGICAL_DATE = datetime(2026, 3, 1, tzinfo=timezone.utc)


def run(dag_id: str, **conf: Any):  # type: ignore[no-untyped-def]
    """Run the DAG with ``dag.test()``, always as the same DAG run (its task instances share their requestIds)."""
    return load_dag(dag_id).test(logical_date=LOGICAL_DATE, run_after=LOGICAL_DATE, run_conf=conf or None)


def test_the_servers_date_is_its_own_clock(gcp_connection: ComputeEngineEmulator) -> None:
    answer = ComputeEngineMachineImageHook().list_machine_images(project_id=PROJECT)
    assert answer == []
    image = gcp_connection.add_machine_image("img-seeded", source_instance=SOURCE)
    made = ComputeEngineMachineImageHook().get_machine_image(name="img-seeded", project_id=PROJECT)
    answered_at = getattr(made, "answered_at", None)
    assert answered_at is not None, "the hook hands on the server's Date"
    offset = answered_at.timestamp() - time.time()
    assert abs(offset - gcp_connection.clock.wall_seconds() + time.time()) < 3, (offset, image["creationTimestamp"])


def test_a_fresh_insert_is_fresh_and_a_rerun_is_a_replay_whatever_the_clocks(
    gcp_connection: ComputeEngineEmulator,
) -> None:
    first = xcom_result(run("ami_test_insert"), "create")
    assert first["replayed"] is False  # the server's clock being apart from the worker's makes no replay
    time.sleep(REPLAY_TOLERANCE_SECONDS + 1.5)  # older than the rule's slack
    second = xcom_result(run("ami_test_insert"), "create")  # same run id: like a cleared task
    assert second["replayed"] is True
    assert second["operation_name"] == first["operation_name"]
    assert [image["name"] for image in gcp_connection.machine_images(PROJECT)] == ["img-a"]
