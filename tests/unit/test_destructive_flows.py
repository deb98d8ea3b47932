"""The rules of destructive operations (issue 22), each on a stub hook: identity, 409 mapping, disk proof, bounds."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest

from airflow_machine_images.api.responses import raise_for_operation_error
from airflow_machine_images.exceptions import (
    LeftoverDisksError,
    MalformedResponseError,
    OperationFailedError,
    ResourceAlreadyExistsError,
    ResubmissionNeeded,
)
from airflow_machine_images.flows import create, delete, disk
from airflow_machine_images.flows.create import CreateRequest, other_resource_taken
from airflow_machine_images.flows.delete import DeleteRequest
from airflow_machine_images.flows.disk import delete_disks, surviving_disks
from airflow_machine_images.flows.instance import RestoredInstanceTarget
from airflow_machine_images.flows.machine_image import MachineImageDeleteTarget
from airflow_machine_images.flows.request_ids import RequestIds, TaskInstanceIdentity
from airflow_machine_images.planning.retention import RetentionPolicy, why_changed

LOG = logging.getLogger("test")
IDS = RequestIds(TaskInstanceIdentity("d", "t", "r"), "p", "img-a", "delete")
LINK = "https://www.googleapis.com/compute/beta/projects/p/zones/us-central1-a/instances/i"
IMAGE = "https://www.googleapis.com/compute/beta/projects/p/global/machineImages/img-a"


def restore_request() -> CreateRequest:
    target = RestoredInstanceTarget("us-central1-a", "p", "img-a", dag_id="d")
    return CreateRequest(target, "p", "drill-1", {"name": "drill-1"}, IDS, owner_key="k" * 32)


@pytest.mark.parametrize(
    ("message", "other"),
    [
        ("The resource 'projects/p/zones/us-central1-a/instances/drill-1' already exists", None),
        ("The resource 'projects/123456789012/zones/us-central1-a/instances/drill-1' already exists", None),
        ("Conflict", None),  # names nothing: the resource itself, as before
        (
            "The resource 'projects/p/zones/us-central1-a/disks/drill-1' already exists",
            "projects/p/zones/us-central1-a/disks/drill-1",
        ),
        (
            "The resource 'projects/p/regions/us-central1/addresses/drill-1' already exists",
            "projects/p/regions/us-central1/addresses/drill-1",
        ),
        (
            "The resource 'projects/p/zones/us-central1-a/instances/drill-2' already exists",
            "projects/p/zones/us-central1-a/instances/drill-2",
        ),
    ],
)
def test_a_409_names_the_resource_itself_or_another(message: str, other: str | None) -> None:
    assert other_resource_taken(restore_request(), [message]) == other


class InsertAnswers409:
    def __init__(self, message: str) -> None:
        self.message, self.inserts, self.reads = message, 0, 0

    def insert_instance(self, **kwargs: Any) -> dict[str, Any]:
        self.inserts += 1
        raise ResourceAlreadyExistsError(
            f"instances.insert failed: HTTP 409 alreadyExists: {self.message}",
            http_status=409,
            reason="alreadyExists",
            errors=[{"message": self.message, "reason": "alreadyExists"}],
        )

    def get_instance(self, **kwargs: Any) -> dict[str, Any]:
        self.reads += 1
        return {}


def test_a_409_for_a_taken_disk_fails_once_naming_it_and_what_to_do_without_reading_or_resubmitting() -> None:
    hook = InsertAnswers409("The resource 'projects/p/zones/us-central1-a/disks/drill-1' already exists")
    with pytest.raises(Exception) as failure:
        create.submit(hook, restore_request(), 0, is_retry=False, log=LOG)  # type: ignore[arg-type]
    text = str(failure.value)
    assert type(failure.value).__name__ == "InstanceConflictError"  # permanent: never retried
    assert "projects/p/zones/us-central1-a/disks/drill-1" in text and "nothing was created" in text
    assert "gcloud compute disks delete drill-1 --zone us-central1-a" in text
    assert (hook.inserts, hook.reads) == (1, 0)


def test_a_409_inside_the_operation_is_mapped_the_same_way() -> None:
    failure = OperationFailedError(
        "operation-1",
        [
            {
                "code": "RESOURCE_ALREADY_EXISTS",
                "message": "The resource 'projects/p/zones/us-central1-a/disks/drill-1' already exists",
            }
        ],
    )
    state = create.CreateState(0, "r")
    with pytest.raises(Exception, match="disks/drill-1, another resource"):
        create.on_operation_failed(object(), restore_request(), state, failure, LOG)  # type: ignore[arg-type]


class ImageHook:
    """Answers ``machineImages.get`` with ``image`` and ``machineImages.delete`` with ``operation``."""

    def __init__(self, image: dict[str, Any], operation: dict[str, Any]) -> None:
        self.image, self.operation, self.deleted = image, operation, []

    def get_machine_image(self, **kwargs: Any) -> dict[str, Any]:
        return self.image

    def delete_machine_image(self, *, name: str, **kwargs: Any) -> dict[str, Any]:
        self.deleted.append(name)
        return self.operation


def image_request() -> DeleteRequest:
    return DeleteRequest(MachineImageDeleteTarget(), "p", "img-a", IDS)


def test_an_image_is_deleted_by_the_numeric_id_read() -> None:
    hook = ImageHook({"id": "123", "name": "img-a"}, {"name": "op", "status": "RUNNING", "targetId": "123"})
    started = delete.start_delete(hook, image_request(), 0, is_retry=False, log=LOG)  # type: ignore[arg-type]
    assert hook.deleted == ["123"] and started.resource_id == "123" and not started.replayed


def test_an_operation_of_another_id_is_never_taken_for_this_delete() -> None:
    hook = ImageHook({"id": "123", "name": "img-a"}, {"name": "op", "status": "DONE", "targetId": "99"})
    with pytest.raises(ResubmissionNeeded, match="not a delete of id 123") as why:
        delete.start_delete(hook, image_request(), 0, is_retry=False, log=LOG)  # type: ignore[arg-type]
    assert why.value.replayed


def test_an_answer_that_is_no_delete_counts_as_a_replay() -> None:
    hook = ImageHook({"id": "123"}, {"name": "op", "status": "DONE", "targetId": "123", "operationType": "insert"})
    started = delete.start_delete(hook, image_request(), 0, is_retry=False, log=LOG)  # type: ignore[arg-type]
    assert started.replayed


@pytest.mark.parametrize("bad_id", [None, "", "abc", "0123", True])
def test_a_resource_without_a_numeric_id_is_not_deleted_at_all(bad_id: object) -> None:
    hook = ImageHook({"id": bad_id, "name": "img-a"}, {"name": "op", "status": "DONE"})
    with pytest.raises(MalformedResponseError, match="nothing was deleted"):
        delete.start_delete(hook, image_request(), 0, is_retry=False, log=LOG)  # type: ignore[arg-type]
    assert hook.deleted == []


def test_retention_leaves_an_image_that_changed_since_its_listing() -> None:
    policy = RetentionPolicy(label_selector={"managed-by": "airflow"}, keep_last=1)
    listed = {"id": "1", "status": "READY", "labels": {"managed-by": "airflow"}, "creationTimestamp": "t", "name": "a"}
    assert why_changed(listed, dict(listed), policy) is None
    assert "made again" in str(why_changed(listed, {**listed, "id": "2"}, policy))
    assert "made again" in str(why_changed({**listed, "id": None}, listed, policy))  # no id: never by name
    assert "selector" in str(why_changed(listed, {**listed, "labels": {"team": "x"}}, policy))


class DiskHook:
    """Disks by name; each delete answers an operation that fails ``failures`` times first."""

    def __init__(self, disks: dict[str, dict[str, Any]], failures: int = 0) -> None:
        self.disks, self.failures, self.deletes = disks, failures, []

    def get_disk(self, *, name: str, **kwargs: Any) -> dict[str, Any]:
        from airflow_machine_images.exceptions import ResourceNotFoundError

        if name not in self.disks:
            raise ResourceNotFoundError(f"disks.get {name}: HTTP 404")
        return self.disks[name]

    def delete_disk(self, *, name: str, request_id: str, **kwargs: Any) -> dict[str, Any]:
        self.deletes.append((name, request_id))
        self.last = {"name": f"op-{len(self.deletes)}", "status": "DONE", "targetId": name, "operationType": "delete"}
        if len(self.deletes) <= self.failures:
            self.last["error"] = {"errors": [{"code": "RESOURCE_OPERATION_RATE_EXCEEDED", "message": "later"}]}
        else:
            self.disks = {}  # gone once a delete succeeds
        return self.last

    def wait_for_operation(self, **kwargs: Any) -> dict[str, Any]:
        raise_for_operation_error(self.last)
        return self.last


def instance_with(*disks: dict[str, Any]) -> dict[str, Any]:
    return {"name": "i", "selfLink": LINK, "creationTimestamp": "2026-01-01T10:00:00.000-08:00",
            "sourceMachineImage": IMAGE, "disks": list(disks)}  # fmt: skip


def attached(name: str, auto_delete: bool) -> dict[str, Any]:
    return {
        "source": f"https://www.googleapis.com/compute/beta/projects/p/zones/us-central1-a/disks/{name}",
        "autoDelete": auto_delete,
    }


def a_disk(disk_id: str, created: str = "2026-01-01T10:00:01.000-08:00", **extra: Any) -> dict[str, Any]:
    return {"id": disk_id, "users": [LINK], "creationTimestamp": created, **extra}


def test_only_disks_provably_made_with_the_instance_are_to_be_deleted() -> None:
    hook = DiskHook({
        "own": a_disk("1", sourceMachineImage=IMAGE),
        "no-source-field": a_disk("2"),
        "older": a_disk("3", created="2026-01-01T09:00:00.000-08:00"),
        "other-image": a_disk("4", sourceMachineImage=IMAGE.replace("img-a", "img-b")),
        "moved": {**a_disk("5"), "users": []},
    })  # fmt: skip
    found = surviving_disks(
        hook,  # type: ignore[arg-type]
        instance_with(
            attached("boot", True),
            *(attached(n, False) for n in ("own", "no-source-field", "older", "other-image", "moved", "gone")),
        ),
        project_id="p",
        zone="us-central1-a",
        log=LOG,
    )
    verdicts = {item["name"]: item["delete"] for item in found}
    assert verdicts == {"own": True, "no-source-field": True, "older": False, "other-image": False, "moved": False}
    assert hook.deletes == []  # reading decides nothing yet


def leftovers() -> tuple[dict[str, Any], ...]:
    return ({"name": "d-1", "id": "11", "delete": True}, {"name": "data", "delete": False, "why": "older"})


def test_a_disk_delete_is_submitted_again_within_bounds_then_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(disk.time, "sleep", lambda seconds: None)
    request = DeleteRequest(MachineImageDeleteTarget(), "p", "i", IDS)
    hook = DiskHook({"d-1": {"id": "11"}}, failures=2)
    done = delete_disks(hook, request, leftovers(), zone="us-central1-a", timeout=5, is_retry=False, log=LOG)  # type: ignore[arg-type]
    assert done == {"disks_deleted": ["d-1"], "disks_kept": [{"name": "data", "why": "older"}]}
    assert len({request_id for _, request_id in hook.deletes}) == 3  # one generation per submission

    stubborn = DiskHook({"d-1": {"id": "11"}}, failures=99)
    with pytest.raises(LeftoverDisksError, match=r"d-1: .*gave up after 4 submissions") as failure:
        delete_disks(stubborn, request, leftovers(), zone="us-central1-a", timeout=5, is_retry=False, log=LOG)  # type: ignore[arg-type]
    assert len(stubborn.deletes) == disk.MAX_DISK_SUBMISSIONS and "gcloud compute disks delete" in str(failure.value)


def test_derived_request_ids_never_repeat_the_call_s_own_even_when_fixed() -> None:
    fixed = RequestIds(
        TaskInstanceIdentity("d", "t", "r"), "p", "zones/us-central1-a/instances/i", "delete", fixed=str(uuid.uuid4())
    )
    unprotect = fixed.derived("zones/us-central1-a/instances/i", "unprotect")
    disk_ids = fixed.derived("zones/us-central1-a/disks/i-1", "delete")
    assert len({fixed(0), unprotect(0), disk_ids(0), unprotect(1)}) == 4
    assert unprotect(0) == fixed.derived("zones/us-central1-a/instances/i", "unprotect")(0)  # a retry sends the same
