"""Task-derived ``requestId`` values: one task instance, one request, whatever the retries.

Compute Engine deduplicates mutating requests by ``requestId``: a repeat of a request it still
remembers returns the original operation instead of doing the work again. Deriving the id from the
task instance (never from ``try_number``) makes an Airflow retry, a cleared task or a worker that
crashed after the server accepted the request send the *same* id, so it can never create a second
image. The call's identity (project, resource name, verb) is part of the id, so two different calls
in one task never collide, and ``generation`` lets the operator resubmit deliberately when the server
replays an operation whose result is gone.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Protocol

#: Fixed namespace for uuid5; changing it would change every derived id (and break dedup across upgrades).
REQUEST_ID_NAMESPACE = uuid.UUID("6f1c1f56-5f0e-4c1b-9a57-3c2b8f6f0a11")


class TaskInstanceLike(Protocol):
    """The parts of an Airflow task instance that identify it (``context["ti"]`` satisfies this)."""

    @property
    def dag_id(self) -> str: ...

    @property
    def task_id(self) -> str: ...

    @property
    def run_id(self) -> str: ...

    @property
    def map_index(self) -> int | None: ...


@dataclass(frozen=True)
class TaskInstanceIdentity:
    """A task instance's identity, without its try number.

    :param dag_id: the DAG id.
    :param task_id: the task id.
    :param run_id: the DAG run id.
    :param map_index: the map index (-1 for unmapped tasks).
    """

    dag_id: str
    task_id: str
    run_id: str
    map_index: int = -1

    @classmethod
    def of(cls, ti: TaskInstanceLike) -> TaskInstanceIdentity:
        """Take the identity of a task instance.

        :param ti: the running task instance (``context["ti"]``).
        """
        map_index = ti.map_index if ti.map_index is not None else -1
        return cls(dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id, map_index=map_index)


def derive_request_id(
    identity: TaskInstanceIdentity,
    *,
    project_id: str,
    resource_name: str,
    verb: str,
    generation: int = 0,
) -> str:
    """Return the requestId for one call made by one task instance.

    The same arguments always give the same UUID (version 5, so never the zero UUID the API rejects).

    :param identity: the task instance making the call.
    :param project_id: the project the call is made in.
    :param resource_name: the resource the call acts on (the machine image name).
    :param verb: what the call does (``"insert"``, ``"delete"``, ``"setLabels"``).
    :param generation: 0 for the first submission; the operator increments it only when it must submit
        the same call again on purpose (the server replayed a finished operation whose image is gone).
    """
    if generation < 0:
        raise ValueError(f"generation must be >= 0, got {generation}")
    # JSON keeps the fields unambiguous: ("a/b", "c") and ("a", "b/c") cannot collide.
    key = json.dumps(
        [
            identity.dag_id,
            identity.task_id,
            identity.run_id,
            identity.map_index,
            project_id,
            resource_name,
            verb,
            generation,
        ],
        separators=(",", ":"),
    )
    return str(uuid.uuid5(REQUEST_ID_NAMESPACE, key))


def task_instance_key(identity: TaskInstanceIdentity) -> str:
    """A 32-hex-digit key of the task instance, short enough for a label value.

    The insert operator labels its images with it, so an image left by an earlier try of the same
    task instance is recognised as its own even after the server forgot the requestId.

    :param identity: the task instance.
    """
    key = json.dumps([identity.dag_id, identity.task_id, identity.run_id, identity.map_index], separators=(",", ":"))
    return uuid.uuid5(REQUEST_ID_NAMESPACE, key).hex


def dag_key(dag_id: str) -> str:
    """A 32-hex-digit key of a DAG id, short enough for a label value (``[a-z0-9_-]``, at most 63).

    A restore labels its instance with it, and the delete-restored operator deletes only instances whose
    key is its own DAG's (or of DAGs it is told): unlike a sanitized DAG id, two DAG ids that differ only in
    case or after 63 characters do not share a key.

    :param dag_id: the DAG id.
    """
    return uuid.uuid5(REQUEST_ID_NAMESPACE, json.dumps(["dag", dag_id], separators=(",", ":"))).hex


@dataclass(frozen=True)
class RequestIds:
    """The requestIds of one call of one task instance, one per generation (submission).

    Insert, delete and retention all derive theirs here, so a retry of any of them sends what the
    first try sent, and a deliberate resubmission (the next generation) sends something new.

    :param identity: the task instance making the call.
    :param project_id: the project the call is made in.
    :param resource_name: the resource the call acts on.
    :param verb: what the call does (``"insert"``, ``"delete"``).
    :param fixed: a requestId the user gave instead of the derived one (generation 0 sends it as it is).
    """

    identity: TaskInstanceIdentity
    project_id: str
    resource_name: str
    verb: str
    fixed: str | None = None

    def __call__(self, generation: int) -> str:
        """The requestId of submission number ``generation`` (0 first).

        :param generation: 0 for the first submission, then 1, 2, ... for deliberate resubmissions.
        """
        if self.fixed is None:
            return derive_request_id(
                self.identity,
                project_id=self.project_id,
                resource_name=self.resource_name,
                verb=self.verb,
                generation=generation,
            )
        if generation == 0:
            return self.fixed
        return str(uuid.uuid5(uuid.UUID(self.fixed), f"generation-{generation}"))

    def derived(self, resource_name: str, verb: str) -> RequestIds:
        """The requestIds of another call of the same task instance (a step of this one, or a resource it
        leaves behind): its own resource and verb, so no two calls share an id. A fixed requestId gives
        each derived call a fixed id of its own (a UUIDv5 of it), never itself.

        :param resource_name: the resource the other call acts on.
        :param verb: what it does (``"unprotect"``, ``"delete"``).
        """
        fixed = None if self.fixed is None else str(uuid.uuid5(uuid.UUID(self.fixed), f"{resource_name}/{verb}"))
        return RequestIds(self.identity, self.project_id, resource_name, verb, fixed=fixed)
