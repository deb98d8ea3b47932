"""Guards of the restore and delete flows that a mutation spot-check (issue 21) found unguarded.

Each test drives an operator (``execute``/``execute_complete`` with a fake task instance, the
trigger run in a real event loop) against the emulator over real HTTP:

- adopting an existing instance checks the restore labels, not only the machine image it came from;
- an adopted restore that is TERMINATED or STOPPING fails instead of passing for RUNNING; what this task
  instance made is then deleted again (instance, protection and disks), what another run made is not;
- a resumed restore whose operation left no instance (a replayed failure, or an instance deleted
  meanwhile) submits again under the next generation's requestId and makes exactly one instance;
- a delete answered DONE while the very image it was sent for (same id) is still there is never
  reported as a deletion that happened.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
import requests
from airflow.sdk.exceptions import TaskDeferred

from airflow_machine_images.bodies.instance import restore_labels
from airflow_machine_images.emulator import ComputeEngineEmulator, Fault
from airflow_machine_images.exceptions import InstanceConflictError, InstanceNotRunningError, ResourceNotFoundError
from airflow_machine_images.flows.request_ids import TaskInstanceIdentity, task_instance_key
from airflow_machine_images.flows.resubmission import REPLAY_TOLERANCE_SECONDS
from airflow_machine_images.hooks import ComputeEngineMachineImageHook
from airflow_machine_images.operators import (
    ComputeEngineDeleteMachineImageOperator,
    ComputeEngineRestoreMachineImageOperator,
)
from airflow_machine_images.operators.restore import CHOSEN_IMAGE_XCOM_KEY
from tests.integration.conftest import PROJECT, SOURCE, connection_json
from tests.integration.test_deferral import FakeTaskInstance, deferred, trigger_event

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

ZONE = "us-central1-a"
IMAGE = f"projects/{PROJECT}/global/machineImages/img-a"
#: A restore of img-a by the test DAG (``deferral_dag``), made by another run than the tests'.
RESTORE_LABELS = restore_labels("img-a", dag_id="deferral_dag", restore_id="f" * 32)


@pytest.fixture
def emulator_with_image(gcp_connection: ComputeEngineEmulator) -> ComputeEngineEmulator:
    """The shared emulator (operations take 0.5 s) with one READY machine image, ``img-a``."""
    gcp_connection.add_machine_image("img-a", source_instance=SOURCE)
    return gcp_connection


@pytest.fixture
def slow_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[ComputeEngineEmulator]:
    """An emulator whose operations take 4 s, with ``img-a``: long enough for a retry to meet a running one."""
    with ComputeEngineEmulator(default_project=PROJECT, operation_seconds=6.0, seed=7) as emu:
        emu.add_instance(SOURCE)
        emu.add_machine_image("img-a", source_instance=SOURCE)
        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", connection_json(emu.url))
        yield emu


def restore_operator(**overrides: Any) -> ComputeEngineRestoreMachineImageOperator:
    kwargs: dict[str, Any] = {
        "task_id": "restore",
        "name": "restored-1",
        "zone": ZONE,
        "source_machine_image": "img-a",
        "poll_interval": 0.2,
        "timeout": 60,
    }
    kwargs.update(overrides)
    return ComputeEngineRestoreMachineImageOperator(**kwargs)


def restore_context(try_number: int = 1) -> dict[str, Any]:
    return {"ti": FakeTaskInstance(task_id="restore", try_number=try_number)}


def get_instance(name: str = "restored-1") -> dict[str, Any] | None:
    try:
        return ComputeEngineMachineImageHook().get_instance(zone=ZONE, name=name)
    except ResourceNotFoundError:
        return None


def run_to_the_end(op: Any, context: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Run an operator as Airflow would: ``execute``, then each deferral's trigger and ``execute_complete``.

    :return: the result and how many times the operator deferred.
    """
    step = lambda: op.execute(context)  # noqa: E731
    for deferrals in range(6):
        try:
            return step(), deferrals
        except TaskDeferred as deferral:
            event = trigger_event(deferral)
            step = lambda event=event: op.execute_complete(context, event)  # noqa: E731
    raise AssertionError("the operator kept deferring")


def insert_request_ids(emulator: ComputeEngineEmulator) -> list[str]:
    return [r.query["requestId"] for r in emulator.requests if r.action == "instances.insert"]


def zone_insert_operations() -> list[dict[str, Any]]:
    hook = ComputeEngineMachineImageHook()
    listing = hook.execute_call(hook.api.list_operations(PROJECT, zone=ZONE))
    return [op for op in listing.get("items", []) if op["operationType"] == "insert"]


# ---------------------------------------------------------------- 1. adoption checks the restore labels


def test_reuse_refuses_a_hand_made_instance_of_the_same_image_without_the_restore_labels(
    emulator_with_image: ComputeEngineEmulator,
) -> None:
    hook = ComputeEngineMachineImageHook()
    made = hook.insert_instance(
        zone=ZONE, body={"name": "restored-1"}, source_machine_image=IMAGE, request_id=str(uuid.uuid4())
    )
    hook.wait_for_operation(operation_name=made["name"], zone=ZONE, timeout=30)
    hand_made = get_instance()
    assert hand_made is not None and hand_made["sourceMachineImage"].endswith(IMAGE)
    assert not hand_made.get("labels")  # the same image, but not a restore of this package

    with pytest.raises(InstanceConflictError, match="not a restore of"):
        restore_operator(if_exists="reuse").execute(restore_context())

    survivor = get_instance()
    assert survivor is not None and survivor["id"] == hand_made["id"] and not survivor.get("labels")
    assert emulator_with_image.count("instances.delete") == 0
    assert len(zone_insert_operations()) == 1  # only the hand-made one: nothing was created either


# ---------------------------------------------------------------- 2. a restore that stopped is no success


@pytest.mark.parametrize("status", ["TERMINATED", "STOPPING"])
def test_an_adopted_restore_that_is_terminated_or_stopping_fails(
    emulator_with_image: ComputeEngineEmulator, status: str
) -> None:
    seeded = emulator_with_image.add_instance(
        f"{ZONE}/restored-1", labels=RESTORE_LABELS, status=status, source_machine_image=IMAGE
    )
    assert seeded["status"] == status and seeded["sourceMachineImage"].endswith(IMAGE)

    with pytest.raises(InstanceNotRunningError, match=status) as failure:
        restore_operator().execute(restore_context())

    after = get_instance()  # another run made it: not this restore's to clean up
    assert after is not None and after["id"] == seeded["id"] and after["status"] == status
    assert "left alone, not being this restore's own" in str(failure.value)
    assert zone_insert_operations() == []
    assert emulator_with_image.count("instances.delete") == 0


def test_an_instance_of_the_same_image_restored_by_another_dag_is_not_adopted(
    emulator_with_image: ComputeEngineEmulator,
) -> None:
    labels = restore_labels("img-a", dag_id="disaster-recovery", restore_id="f" * 32)
    seeded = emulator_with_image.add_instance(f"{ZONE}/restored-1", labels=labels, source_machine_image=IMAGE)
    with pytest.raises(InstanceConflictError, match="not by DAG 'deferral_dag'"):
        restore_operator().execute(restore_context())
    after = get_instance()
    assert after is not None and after["id"] == seeded["id"]
    assert emulator_with_image.count("instances.delete") == 0


def test_a_restore_of_this_task_instance_that_ended_terminated_is_cleaned_up_disks_and_protection_included(
    emulator_with_image: ComputeEngineEmulator,
) -> None:
    # An earlier try of this very task instance made it (its restore-id), protected, with a disk that
    # survives the instance; it is TERMINATED now: the restore fails, and deletes what it made.
    own = task_instance_key(TaskInstanceIdentity.of(restore_context()["ti"]))  # type: ignore[arg-type]
    seeded = emulator_with_image.add_instance(
        f"{ZONE}/restored-1",
        labels=restore_labels("img-a", dag_id="deferral_dag", restore_id=own),
        status="TERMINATED",
        source_machine_image=IMAGE,
        disks=[{"autoDelete": True}, {"autoDelete": False}],
        deletion_protection=True,
    )
    with pytest.raises(InstanceNotRunningError, match="TERMINATED") as failure:
        restore_operator().execute(restore_context())
    assert "it was cleaned up" in str(failure.value) and "restored-1-1" in str(failure.value)
    assert get_instance() is None
    assert [d["name"] for d in emulator_with_image.disks()] == ["web-1"]  # the source's own disk only
    (unprotect,) = [r for r in emulator_with_image.requests if r.action == "instances.setDeletionProtection"]
    assert unprotect.query["deletionProtection"] == "false" and unprotect.path.endswith(
        seeded["id"] + "/setDeletionProtection"
    )


def test_the_emulator_seeds_a_restored_instance_through_its_control_api(gcp_connection: ComputeEngineEmulator) -> None:
    """The seeding the tests above use (``source_machine_image``), also from another process; bad values refused."""
    body = {"instance": f"{ZONE}/seeded-1", "status": "TERMINATED", "source_machine_image": "global/machineImages/x"}
    seeded = requests.post(f"{gcp_connection.url}/_emulator/instances", json=body, timeout=10)
    assert seeded.status_code == 200, seeded.text
    got = get_instance("seeded-1")
    assert got is not None and got["status"] == "TERMINATED"
    assert got["sourceMachineImage"].endswith(f"/compute/beta/projects/{PROJECT}/global/machineImages/x")
    bad = requests.post(
        f"{gcp_connection.url}/_emulator/instances",
        json={"instance": f"{ZONE}/seeded-2", "source_machine_image": "images/x"},
        timeout=10,
    )
    assert bad.status_code == 400 and "source_machine_image" in bad.text
    assert get_instance("seeded-2") is None


# ---------------------------------------------------------------- 3. resumed restore resubmits once


@pytest.mark.parametrize("outcome", ["operation-failed", "instance-deleted-meanwhile"])
def test_a_resumed_restore_left_without_an_instance_resubmits_under_the_next_generation(
    slow_emulator: ComputeEngineEmulator, outcome: str
) -> None:
    if outcome == "operation-failed":
        slow_emulator.inject(Fault(kind="operation_error", action="instances.insert", times=1))
    # Try 1 submits and defers; its trigger never reports (the triggerer died with it).
    deferred(lambda: restore_operator(deferrable=True).execute(restore_context(1)))
    # the retry comes later than the replay rule's slack: the server's answer is recognisably a replay
    time.sleep(REPLAY_TOLERANCE_SECONDS + 1.5)

    op, context = restore_operator(deferrable=True), restore_context(2)
    waiting = deferred(lambda: op.execute(context))
    first_id = waiting.trigger.event_extra["request_id"]
    # precondition: try 2 got try 1's operation back (still running) and waits for it in the triggerer
    assert waiting.trigger.event_extra["generation"] == 0 and waiting.trigger.event_extra["replayed"] is True
    event = trigger_event(waiting)
    if outcome == "operation-failed":
        assert event["status"] != "success"
    else:
        assert event["status"] == "success"
        hook = ComputeEngineMachineImageHook()
        gone = hook.delete_instance(zone=ZONE, name="restored-1", request_id=str(uuid.uuid4()))
        hook.wait_for_operation(operation_name=gone["name"], zone=ZONE, timeout=30)
        assert get_instance() is None

    again = deferred(lambda: op.execute_complete(context, event))
    next_id = op.prepare_request(context).request_ids(1)  # type: ignore[arg-type]
    assert again.trigger.event_extra["generation"] == 1
    assert again.trigger.event_extra["request_id"] == next_id != first_id
    result = op.execute_complete(context, trigger_event(again))

    assert insert_request_ids(slow_emulator) == [first_id, first_id, next_id]
    assert result["request_id"] == next_id and result["status"] == "RUNNING" and result["reused"] is False
    made = get_instance()
    assert made is not None and made["id"] == result["id"]
    inserts = zone_insert_operations()
    assert len(inserts) == 2  # try 1's (failed, or its instance deleted) and exactly one more
    assert inserts[-1]["name"] == result["operation_name"] and "error" not in inserts[-1]


# ---------------------------------------------------------------- 4. a retry keeps the earlier try's image


@dataclass
class TaskInstanceWithXComs(FakeTaskInstance):
    """A fake task instance that also reads back its own XComs (a retry starts with none: Airflow clears them)."""

    def xcom_pull(self, *, task_ids: str, key: str, map_indexes: int) -> Any:
        return self.xcoms.get(key)


@pytest.mark.parametrize("deferrable", [False, True])
def test_a_retry_restores_the_image_its_earlier_try_chose_although_a_newer_one_is_ready(
    slow_emulator: ComputeEngineEmulator, deferrable: bool
) -> None:
    """Restore by source instance: the first try's insert was accepted and then the worker was lost; by the
    retry a newer image of that instance is READY. The server answers the retry's insert (same requestId)
    with the first try's operation, whose instance is made from the first image: the retry must keep that
    image (it chose the newer one and failed: "exists but is not a restore of ...")."""
    op = restore_operator(source_machine_image=None, source_instance=SOURCE, deferrable=True)
    first = {"ti": TaskInstanceWithXComs(task_id="restore", try_number=1)}
    deferred(lambda: op.execute(first))  # the insert is sent; the worker is lost while the task waits
    assert first["ti"].xcoms[CHOSEN_IMAGE_XCOM_KEY]["name"] == "img-a"  # the fixture's only image
    newer = datetime.now(timezone.utc) + timedelta(minutes=1)
    slow_emulator.add_machine_image("img-b", source_instance=SOURCE, creation_timestamp=newer)  # READY

    retry_op = restore_operator(source_machine_image=None, source_instance=SOURCE, deferrable=deferrable)
    result, _ = run_to_the_end(retry_op, {"ti": TaskInstanceWithXComs(task_id="restore", try_number=2)})

    assert result["status"] == "RUNNING"
    assert result["source_machine_image"].endswith("/global/machineImages/img-a")
    assert result["chosen_image"]["name"] == "img-a"
    inserts = insert_request_ids(slow_emulator)
    assert len(inserts) == 2 and inserts[0] == inserts[1]  # the retry's insert was the first one, replayed
    assert [i["name"] for i in slow_emulator.instances() if i["name"].startswith("restored")] == ["restored-1"]


def test_a_retry_chooses_anew_when_the_instance_of_that_name_is_not_this_restore_s(
    emulator_with_image: ComputeEngineEmulator,
) -> None:
    """An instance of that name from another run (its restore-id differs) is never taken as this restore's
    earlier try: the retry chooses the newest image and the create flow refuses the instance, as before."""
    emulator_with_image.add_instance(f"{ZONE}/restored-1", source_machine_image=IMAGE, labels=RESTORE_LABELS)
    newer = datetime.now(timezone.utc) + timedelta(minutes=1)
    emulator_with_image.add_machine_image("img-b", source_instance=SOURCE, creation_timestamp=newer)
    op = restore_operator(source_machine_image=None, source_instance=SOURCE)
    context = {"ti": TaskInstanceWithXComs(task_id="restore", try_number=2)}
    with pytest.raises(InstanceConflictError, match="not a restore of"):
        op.execute(context)
    assert context["ti"].xcoms[CHOSEN_IMAGE_XCOM_KEY]["name"] == "img-b"


# ---------------------------------------------------------------- 8. a DONE delete with the image still there


@pytest.mark.parametrize("deferrable", [False, True], ids=["on-the-worker", "deferred"])
def test_a_delete_answered_done_while_the_same_image_remains_is_not_reported_as_deleted(
    gcp_connection: ComputeEngineEmulator, deferrable: bool
) -> None:
    # The server answers a requestId it remembers with that request's operation. Here the delete's
    # requestId is the one an insert of the very image used: the delete gets back an operation that
    # ends DONE without error, while the image it was sent for (same name, same id) stays READY.
    gcp_connection.add_instance(f"{ZONE}/slow-1", operation_seconds=3.0)
    request_id = str(uuid.uuid4())
    ComputeEngineMachineImageHook().insert_machine_image(
        body={"name": "img-d"},
        source_instance=f"projects/{PROJECT}/zones/{ZONE}/instances/slow-1",
        request_id=request_id,
    )
    image_id = (gcp_connection.get_machine_image("img-d") or {})["id"]
    op = ComputeEngineDeleteMachineImageOperator(
        task_id="delete", name="img-d", request_id=request_id, deferrable=deferrable, poll_interval=0.2, timeout=60
    )
    context = {"ti": FakeTaskInstance(task_id="delete")}
    result, deferrals = run_to_the_end(op, context)
    assert deferrals >= (1 if deferrable else 0)  # deferred: the end was confirmed in execute_complete

    remaining = gcp_connection.get_machine_image("img-d")
    # Never "deleted" while the image it was sent for is still there.
    still_there = remaining is not None and remaining["id"] == image_id
    assert not (result["deleted"] and still_there), f"reported deleted, but image {image_id} is still there"
    deletes = [r.query["requestId"] for r in gcp_connection.requests if r.action == "machineImages.delete"]
    assert deletes[0] == request_id
    if result["deleted"]:
        assert remaining is None
        assert len(deletes) == 2 and deletes[1] != request_id  # deleted for real, under the next generation
