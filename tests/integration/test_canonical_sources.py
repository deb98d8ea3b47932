"""Sources given by project number or numeric instance id, through real Airflow (``dag.test()``) and the emulator.

The API answers with the project id and the instance name, so before canonical comparison every such
insert failed its read-back with a false ``MachineImageConflictError``, on every retry.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_machine_images.emulator import ComputeEngineEmulator, Fault
from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.hooks import ComputeEngineMachineImageHook
from tests.integration.conftest import PROJECT, load_dag, task_states, xcom_result

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

LOGICAL_DATE = datetime(2026, 3, 1, tzinfo=timezone.utc)
ZONE = "us-central1-a"
CANONICAL = f"projects/{PROJECT}/zones/{ZONE}/instances/web-1"


def run(dag_id: str, **conf: Any):  # type: ignore[no-untyped-def]
    dag = load_dag(dag_id)
    return dag.test(logical_date=LOGICAL_DATE, run_after=LOGICAL_DATE, run_conf=conf or None)


def numbered(emu: ComputeEngineEmulator, form: str) -> str:
    """The source in ``form``: ``project-number``, ``instance-id`` or ``both``."""
    number = emu.project_number(PROJECT)
    instance_id = emu_instance(emu)["id"]
    project = number if form in ("project-number", "both") else PROJECT
    instance = instance_id if form in ("instance-id", "both") else "web-1"
    return f"projects/{project}/zones/{ZONE}/instances/{instance}"


def emu_instance(emu: ComputeEngineEmulator) -> dict[str, Any]:
    hook = ComputeEngineMachineImageHook()
    instance = hook.get_instance(zone=ZONE, name="web-1", project_id=PROJECT)
    emu.clear_requests()
    return instance


def actions(emu: ComputeEngineEmulator, action: str) -> list[Any]:
    return [r for r in emu.requests if r.action == action]


def one_ready_image(emu: ComputeEngineEmulator) -> dict[str, Any]:
    images = emu.machine_images(PROJECT)
    assert [(i["name"], i["status"]) for i in images] == [("img-a", "READY")]
    assert images[0]["sourceInstance"].endswith(f"/{CANONICAL}")
    return images[0]


@pytest.mark.parametrize("form", ["project-number", "instance-id", "both"])
def test_a_source_given_by_number_makes_one_ready_image(gcp_connection: ComputeEngineEmulator, form: str) -> None:
    source = numbered(gcp_connection, form)
    dag_run = run("ami_test_insert", source_instance=source)
    assert task_states(dag_run) == {"create": "success"}
    one_ready_image(gcp_connection)
    (sent,) = actions(gcp_connection, "machineImages.insert")
    assert sent.query["sourceInstance"] == CANONICAL  # the resolved form is what the insert sends
    assert len(actions(gcp_connection, "instances.get")) == 1  # one lookup, reused by the read-back
    assert xcom_result(dag_run, "create")["source_instance"].endswith(f"/{CANONICAL}")


def test_a_source_by_name_costs_no_extra_call(gcp_connection: ComputeEngineEmulator) -> None:
    assert task_states(run("ami_test_insert", source_instance=CANONICAL)) == {"create": "success"}
    assert actions(gcp_connection, "instances.get") == []
    assert [r.action for r in gcp_connection.requests] == [
        "machineImages.insert",
        "globalOperations.wait",
        "machineImages.get",
    ]


def test_a_dropped_answer_is_replayed_without_a_false_conflict(gcp_connection: ComputeEngineEmulator) -> None:
    source = numbered(gcp_connection, "both")
    gcp_connection.inject(Fault(kind="accept_then_drop", action="machineImages.insert"))
    dag_run = run("ami_test_insert", source_instance=source)
    assert task_states(dag_run) == {"create": "success"}
    sent = actions(gcp_connection, "machineImages.insert")
    assert len(sent) == 2 and sent[0].status is None  # the first answer was lost after the server acted
    assert len({r.query["requestId"] for r in sent}) == 1
    assert len(gcp_connection.operations(PROJECT)) == 1  # the second submission got the first's operation
    one_ready_image(gcp_connection)


def test_a_rerun_replays_and_a_forgotten_request_id_adopts_without_a_false_conflict(
    gcp_connection: ComputeEngineEmulator,
) -> None:
    source = numbered(gcp_connection, "project-number")
    first = xcom_result(run("ami_test_insert", source_instance=source), "create")
    replayed = xcom_result(run("ami_test_insert", source_instance=source), "create")  # like a clear or retry
    assert replayed["operation_name"] == first["operation_name"] and replayed["status"] == "READY"
    gcp_connection.forget_request_ids()  # the server's memory ends: the next try meets a 409
    dag_run = run("ami_test_insert", source_instance=source)
    assert task_states(dag_run) == {"create": "success"}
    assert xcom_result(dag_run, "create")["reused"] is True
    assert actions(gcp_connection, "machineImages.insert")[-1].status == 409
    one_ready_image(gcp_connection)


def test_the_deferrable_path_resolves_the_number_too(gcp_connection: ComputeEngineEmulator) -> None:
    source = numbered(gcp_connection, "project-number")
    dag_run = run("ami_test_deferrable_operator", name="img-a", source_instance=source)
    assert task_states(dag_run) == {"create": "success"}
    one_ready_image(gcp_connection)
    # one lookup before the insert, one when the task resumes after the triggerer (a new operator object)
    assert len(actions(gcp_connection, "instances.get")) == 2


def test_a_number_naming_another_instance_is_still_a_conflict(gcp_connection: ComputeEngineEmulator) -> None:
    gcp_connection.add_instance(f"{ZONE}/web-2")
    gcp_connection.add_machine_image("img-a", source_instance=f"{ZONE}/web-1")
    other = f"projects/{gcp_connection.project_number(PROJECT)}/zones/{ZONE}/instances/web-2"
    assert task_states(run("ami_test_insert", source_instance=other)) == {"create": "failed"}
    assert len(gcp_connection.machine_images(PROJECT)) == 1


def test_the_hook_refuses_a_filter_with_an_order_before_any_request(gcp_connection: ComputeEngineEmulator) -> None:
    hook = ComputeEngineMachineImageHook()
    with pytest.raises(MachineImageValidationError, match=r"filter_/order_by"):
        hook.list_machine_images(filter_="labels.a = b", order_by="creationTimestamp desc")
    assert gcp_connection.requests == []
    assert hook.list_machine_images(order_by="creationTimestamp desc") == []
