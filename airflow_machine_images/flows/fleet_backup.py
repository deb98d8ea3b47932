"""Backing up a fleet in one task: every instance through the create flow, the outcomes read in bulk.

Each instance is one create of :mod:`airflow_machine_images.flows.create` with its own
:class:`~airflow_machine_images.flows.machine_image.MachineImageTarget` and task-derived requestIds
(the instance and its image in the resource key), submitted under
:func:`~airflow_machine_images.flows.resubmission.with_resubmissions`: an Airflow retry or a killed
worker replays what the server accepted, a replayed failure moves on to the next generation, a try's
own failure is that try's one fresh submission. What this module adds is scale:

* a table (:class:`FleetBackup`, one :class:`Submission` per instance) that the task keeps across its
  deferrals (:meth:`FleetBackup.to_json`), so a trigger needs only the run's label;
* outcomes read in bulk (:func:`read_outcomes`): one paged ``machineImages.list`` of the run's label
  (about one call per 500 images) settles every instance whose image is READY; only the others'
  operations are read, by name, 50 per call; what the create flow does with a DONE operation
  (:func:`~airflow_machine_images.flows.create.finish_operation`) is done for those alone;
* the per-source limit, recognised once, by the create flow (it raises
  :class:`~airflow_machine_images.exceptions.SourceLimitReached`, see
  :mod:`airflow_machine_images.flows.source_limit`): such an instance is *deferred* to the next run, with
  when its next try is allowed, and neither this try nor a retry resubmits it into the limit (a single
  insert waits the limit out within its task instead; a fleet run does not hold its other instances for one).

Errors about one instance (its operation failed, its source is gone, its name is taken by another
source, the resubmission bounds) end that instance's backup for this try; errors about the API or
the connection (still failing after the hook's retries) fail the task, whose retry replays the rest.
"""

from __future__ import annotations

import time
from dataclasses import astuple, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Final

from airflow_machine_images import metrics
from airflow_machine_images.bodies.labels import OWNER_LABEL, owner_label_filter
from airflow_machine_images.exceptions import (
    ComputeEngineError,
    EndpointUnreachableError,
    InsecureEndpointError,
    MalformedResponseError,
    PermissionDeniedError,
    RedirectNotFollowedError,
    ResourceNotFoundError,
    ResponseLimitError,
    ResubmissionNeeded,
    SourceLimitReached,
    TransientApiError,
)
from airflow_machine_images.flows import create
from airflow_machine_images.flows.create import CreateRequest, CreateState, Readiness
from airflow_machine_images.flows.machine_image import MachineImageTarget
from airflow_machine_images.flows.request_ids import RequestIds
from airflow_machine_images.flows.resubmission import with_resubmissions
from airflow_machine_images.planning.fleet_backup import (
    DEFERRED,
    FAILED,
    PENDING,
    SUCCEEDED,
    BackupItem,
)
from airflow_machine_images.results import fleet_backup_row
from airflow_machine_images.validation import parse_source_instance

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from airflow_machine_images.flows.request_ids import TaskInstanceIdentity
    from airflow_machine_images.hooks.sync import ComputeEngineMachineImageHook
    from airflow_machine_images.logs import TaskLogger as Log

__all__ = ["FleetBackup", "Submission", "read_outcomes", "submit", "wait_on_worker"]

#: Operation names per ``globalOperations.list`` name filter (keeps the URL a few kilobytes long).
NAMES_PER_CALL: Final = 50
#: Errors about the API or the connection rather than one instance: they fail the task (a retry replays).
_TASK_ERRORS: Final = (
    TransientApiError,
    PermissionDeniedError,
    EndpointUnreachableError,
    InsecureEndpointError,
    RedirectNotFollowedError,
    ResponseLimitError,
    MalformedResponseError,
)


class _SourceLimited(Exception):
    """A refusal by the per-source limit met while submitting: the instance waits for the next run."""

    def __init__(self, refusal: SourceLimitReached) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal


@dataclass
class Submission:
    """Where one instance's backup stands: a row of the table the task keeps across deferrals.

    :param instance: the instance, ``projects/P/zones/Z/instances/I``.
    :param image: its image's name.
    :param status: ``pending`` until ``succeeded``, ``failed`` or ``deferred``.
    :param generation: the submission its requestId belongs to (0 first).
    :param operation: the insert operation's name, while one runs.
    :param sent: the server accepted an insert of this generation (its operation, or an adopted image).
    :param replayed: the server answered with an earlier try's operation.
    :param reused: an existing image was adopted (it may not carry the run's label).
    :param error: why the instance is not backed up.
    """

    instance: str
    image: str
    status: str = PENDING
    generation: int = 0
    operation: str | None = None
    sent: bool = False
    replayed: bool = False
    reused: bool = False
    error: str | None = None

    @property
    def in_flight(self) -> bool:
        """An insert was accepted and its outcome is not known yet."""
        return self.status == PENDING and self.sent

    @property
    def unsent(self) -> bool:
        """Nothing was accepted for it yet (in this try)."""
        return self.status == PENDING and not self.sent

    def finish(self, status: str, error: str | None = None) -> None:
        """End this instance's backup for this try.

        :param status: ``succeeded``, ``failed`` or ``deferred``.
        :param error: why it is not backed up.
        """
        self.status, self.error, self.operation = status, error, None

    def row(self) -> dict[str, Any]:
        """Its row of the task's XCom (:func:`~airflow_machine_images.results.fleet_backup_row`)."""
        return fleet_backup_row(
            instance=self.instance, image=self.image, status=self.status, error=self.error, replayed=self.replayed
        )


#: The fields of a row as the task keeps it (:meth:`FleetBackup.to_json`).
_COLUMNS: Final = [f.name for f in fields(Submission)]


@dataclass
class FleetBackup:
    """One fleet backup of one task instance: what is made where, and where each instance stands.

    :param project_id: the project the images are made in.
    :param run_label: the task-instance key every image carries in its ``airflow-ti`` label.
    :param identity: the task instance (its requestIds derive from it).
    :param body: the MachineImage body every instance shares (``name`` and ``sourceInstance`` are set per
        instance); identifiers and settings only.
    :param table: one row per instance, by instance.
    :param submissions: inserts this try sent.
    :param deferrals: times this try handed its wait to the triggerer.
    """

    project_id: str
    run_label: str
    identity: TaskInstanceIdentity
    body: dict[str, Any]
    table: dict[str, Submission] = field(default_factory=dict)
    submissions: int = 0
    deferrals: int = 0

    @classmethod
    def plan(
        cls,
        *,
        project_id: str,
        run_label: str,
        identity: TaskInstanceIdentity,
        body: dict[str, Any],
        items: Iterable[BackupItem],
    ) -> FleetBackup:
        """A fresh table: every instance pending, generation 0.

        :param project_id: the backup project.
        :param run_label: the run's label value.
        :param identity: the task instance.
        :param body: the shared body.
        :param items: the planned instances and images.
        """
        table = {item.instance: Submission(item.instance, item.image) for item in items}
        return cls(project_id, run_label, identity, body, table)

    def request(self, row: Submission) -> CreateRequest:
        """The create request of one row (the create flow's :class:`CreateRequest`).

        :param row: the row.
        """
        source = parse_source_instance(row.instance, default_project=None)
        return CreateRequest(
            target=MachineImageTarget(source),
            project_id=self.project_id,
            name=row.image,
            body={**self.body, "name": row.image, "sourceInstance": row.instance},
            request_ids=RequestIds(self.identity, self.project_id, f"{row.image}@{row.instance}", "insert"),
            owner_key=self.run_label,
            if_exists="reuse",
        )

    def rows(self, *, status: str | None = None) -> list[Submission]:
        """The rows (of one status), by instance.

        :param status: only this status (None: all).
        """
        return [self.table[key] for key in sorted(self.table) if status is None or self.table[key].status == status]

    def in_flight(self) -> list[Submission]:
        """The rows whose insert was accepted and whose outcome is not known yet."""
        return [row for row in self.rows() if row.in_flight]

    def unsent(self) -> list[Submission]:
        """The rows still to submit."""
        return [row for row in self.rows() if row.unsent]

    def expected_images(self) -> int:
        """Images the run's label list should end with: the succeeded (not adopted) and the in-flight."""
        return sum(1 for row in self.table.values() if row.in_flight or (row.status == SUCCEEDED and not row.reused))

    def to_json(self) -> dict[str, Any]:
        """What the task keeps across a deferral (its XCom): settings and rows, never key material.

        Each row is the list of its :class:`Submission` fields in order (``columns`` names them): about
        200 bytes per instance, a megabyte at 5,000.
        """
        return {
            "project_id": self.project_id,
            "run_label": self.run_label,
            "body": self.body,
            "submissions": self.submissions,
            "deferrals": self.deferrals,
            "columns": _COLUMNS,
            "rows": [list(astuple(row)) for row in self.rows()],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], identity: TaskInstanceIdentity) -> FleetBackup:
        """The table :meth:`to_json` kept.

        :param data: the kept JSON.
        :param identity: the task instance (the same as when it was kept).
        """
        columns = list(data["columns"])
        rows = [
            Submission(**{k: v for k, v in zip(columns, row, strict=True) if k in _COLUMNS}) for row in data["rows"]
        ]
        return cls(
            project_id=str(data["project_id"]),
            run_label=str(data["run_label"]),
            identity=identity,
            body=dict(data["body"]),
            table={row.instance: row for row in rows},
            submissions=int(data.get("submissions", 0)),
            deferrals=int(data.get("deferrals", 0)),
        )


def settle_ready_images(hook: ComputeEngineMachineImageHook, fleet: FleetBackup, log: Log) -> int:
    """Mark every pending instance whose image of this run is READY as succeeded; how many were.

    One paged ``machineImages.list`` of the run's label. An instance backed up earlier in this run (an
    earlier try, an earlier deferral) is not touched again.

    :param hook: the sync hook.
    :param fleet: the run.
    :param log: the task's logger.
    """
    images = hook.list_machine_images(project_id=fleet.project_id, filter_=owner_label_filter(fleet.run_label))
    ours = {
        str(image["name"]): image
        for image in images
        if (image.get("labels") or {}).get(OWNER_LABEL) == fleet.run_label and "name" in image
    }
    settled = 0
    for row in fleet.rows(status=PENDING):
        image = ours.get(row.image)
        if image is None or image.get("status") != "READY":
            continue
        request = fleet.request(row)
        try:
            request.target.check_source(hook, request, image, log)
        except ComputeEngineError as conflict:
            row.finish(FAILED, str(conflict))
            continue
        row.finish(SUCCEEDED)
        settled += 1
        metrics.images_created(0 if row.reused else 1)  # as CreateState.count_made: an adopted one is not
    log.info("Run %s: %d image(s) listed by label, %d instance(s) newly READY", fleet.run_label, len(ours), settled)
    return settled


def submit(hook: ComputeEngineMachineImageHook, fleet: FleetBackup, *, limit: int, is_retry: bool, log: Log) -> int:
    """Send the inserts of up to ``limit`` instances still to submit; how many were sent.

    :param hook: the sync hook.
    :param fleet: the run.
    :param limit: the most instances to submit now (``max_in_flight`` minus those in flight).
    :param is_retry: this is not the task's first try (replays are told apart with it).
    :param log: the task's logger.
    """
    chosen = fleet.unsent()[: max(0, limit)]
    for row in chosen:
        _submit_row(hook, fleet, row, first_generation=row.generation, reason=None, is_retry=is_retry, log=log)
    if chosen:
        log.info(
            "Run %s: submitted %d instance(s); %d in flight, %d still to submit",
            fleet.run_label,
            len(chosen),
            len(fleet.in_flight()),
            len(fleet.unsent()),
        )
    return len(chosen)


def _submit_row(
    hook: ComputeEngineMachineImageHook,
    fleet: FleetBackup,
    row: Submission,
    *,
    first_generation: int,
    reason: ResubmissionNeeded | None,
    is_retry: bool,
    log: Log,
) -> None:
    """Submit one instance under the create flow's resubmission rules; record where it stands.

    :param hook: the sync hook.
    :param fleet: the run.
    :param row: the instance's row.
    :param first_generation: the generation to submit first.
    :param reason: why the previous generation asked for a resubmission (None: a first submission).
    :param is_retry: this is not the task's first try.
    :param log: the task's logger.
    """
    request = fleet.request(row)

    def attempt(generation: int) -> CreateState:
        row.generation = generation
        fleet.submissions += 1
        try:
            return create.submit(hook, request, generation, is_retry=is_retry, log=log)
        except SourceLimitReached as refusal:
            raise _SourceLimited(refusal) from refusal

    try:
        state = with_resubmissions(
            attempt, first_generation=first_generation, what=request.what, log=log, reason=reason
        )
    except _SourceLimited as limited:
        _defer_to_next_run(row, limited.refusal)
    except ComputeEngineError as error:
        if isinstance(error, _TASK_ERRORS):
            raise
        _failed(row, error)
    else:
        _take(row, request, state)


def _failed(row: Submission, error: ComputeEngineError) -> None:
    """End a row on an error about its instance.

    :param row: the instance's row.
    :param error: the error about it.
    """
    row.finish(FAILED, str(error))


def _defer_to_next_run(row: Submission, refusal: SourceLimitReached) -> None:
    """End a row the per-source limit refused: deferred to the next run, saying when a try is allowed.

    :param row: the instance's row.
    :param refusal: the create flow's refusal (its message names the operation, the code and the moment).
    """
    row.finish(DEFERRED, f"{refusal}; not retried into the limit in this run, the next run backs it up")


def _take(row: Submission, request: CreateRequest, state: CreateState) -> None:
    """Record a state the create flow returned: an operation running, an image READY, or one starting.

    :param row: the instance's row.
    :param request: its create request.
    :param state: where the create flow says it stands.
    """
    row.replayed, row.reused, row.sent = state.replayed, state.reused, True
    state.count_made(request)
    if state.operation_pending:
        row.operation = str((state.operation or {}).get("name"))
        return
    row.operation = None
    resource = state.resource or {}
    readiness = request.target.readiness(resource)
    if readiness is Readiness.READY:
        row.finish(SUCCEEDED)
    elif readiness is Readiness.FINAL:
        row.finish(FAILED, str(request.target.not_usable(request, resource.get("status"))))


def read_outcomes(hook: ComputeEngineMachineImageHook, fleet: FleetBackup, *, is_retry: bool, log: Log) -> None:
    """Settle what finished among the instances in flight, resubmitting what the create flow's rules allow.

    READY images come from one label list; the operations of the rest are read by name, 50 per call,
    and a DONE one goes through :func:`~airflow_machine_images.flows.create.finish_operation` (its
    failure, a taken name, an image gone) for that instance alone.

    :param hook: the sync hook.
    :param fleet: the run.
    :param is_retry: this is not the task's first try.
    :param log: the task's logger.
    """
    settle_ready_images(hook, fleet, log)
    rows = fleet.in_flight()
    named = [row for row in rows if row.operation]
    operations = _operations_by_name(hook, fleet.project_id, [str(row.operation) for row in named])
    for row in rows:
        request = fleet.request(row)
        state = CreateState(row.generation, request.request_ids(row.generation), replayed=row.replayed)
        try:
            if row.operation is None:  # an adopted image still on its way: read it
                _take(row, request, replace(state, resource=request.target.get(hook, request), reused=True))
                continue
            operation = operations.get(row.operation) or _operation_or_none(hook, fleet.project_id, row.operation)
            if operation is None:  # expired or never there: the image decides
                _take(
                    row,
                    request,
                    create.read_back(hook, request, replace(state, operation={"name": row.operation}), log),
                )
            elif operation.get("status") == "DONE":
                _take(
                    row,
                    request,
                    create.finish_operation(hook, request, replace(state, operation=operation), operation, log),
                )
        except ResubmissionNeeded as why:
            _resubmit(hook, fleet, row, why, is_retry=is_retry, log=log)
        except ComputeEngineError as error:
            if isinstance(error, _TASK_ERRORS):
                raise
            _failed(row, error)


def _resubmit(
    hook: ComputeEngineMachineImageHook,
    fleet: FleetBackup,
    row: Submission,
    why: ResubmissionNeeded,
    *,
    is_retry: bool,
    log: Log,
) -> None:
    """Move one instance to its next generation (within the create flow's bounds), unless its failure
    was the per-source limit.

    :param hook: the sync hook.
    :param fleet: the run.
    :param row: the instance's row.
    :param why: why the create flow asks for a new submission.
    :param is_retry: this is not the task's first try.
    :param log: the task's logger.
    """
    if isinstance(why, SourceLimitReached):
        _defer_to_next_run(row, why)
        return
    row.sent, row.operation = False, None
    _submit_row(hook, fleet, row, first_generation=row.generation + 1, reason=why, is_retry=is_retry, log=log)


def _operations_by_name(
    hook: ComputeEngineMachineImageHook, project_id: str, names: list[str]
) -> dict[str, dict[str, Any]]:
    """The operations named, read with chunked name filters (50 per call); those not listed are left out.

    :param hook: the sync hook.
    :param project_id: the project of the (global) operations.
    :param names: the operation names.
    """
    found: dict[str, dict[str, Any]] = {}
    ordered = sorted(set(names))
    for start in range(0, len(ordered), NAMES_PER_CALL):
        chunk = ordered[start : start + NAMES_PER_CALL]
        filter_ = " OR ".join(f'(name = "{name}")' for name in chunk)
        for operation in hook.list_operations(project_id=project_id, filter_=filter_):
            if operation.get("name") in chunk:
                found[str(operation["name"])] = operation
    return found


def _operation_or_none(hook: ComputeEngineMachineImageHook, project_id: str, name: str) -> dict[str, Any] | None:
    """One operation a list left out, read on its own (a list is no evidence of absence); None on a 404.

    :param hook: the sync hook.
    :param project_id: its project.
    :param name: its name.
    """
    try:
        return hook.get_operation(operation_name=name, project_id=project_id)
    except ResourceNotFoundError:
        return None


def wait_on_worker(
    hook: ComputeEngineMachineImageHook,
    fleet: FleetBackup,
    *,
    max_in_flight: int,
    poll_interval: float,
    deadline: float,
    is_retry: bool,
    log: Log,
) -> None:
    """Blocking mode: read outcomes and refill every ``poll_interval`` until nothing is left or the deadline.

    The same pieces as the deferrable mode (:func:`read_outcomes`, :func:`submit`), on this worker.

    :param hook: the sync hook.
    :param fleet: the run (its first inserts already sent).
    :param max_in_flight: the most inserts running at once.
    :param poll_interval: seconds between looks.
    :param deadline: the task's deadline (seconds since the epoch).
    :param is_retry: this is not the task's first try.
    :param log: the task's logger.
    """
    while fleet.in_flight() or fleet.unsent():
        remaining = deadline - time.time()
        if remaining <= 0:
            break
        time.sleep(min(poll_interval, remaining))
        read_outcomes(hook, fleet, is_retry=is_retry, log=log)
        submit(hook, fleet, limit=max_in_flight - len(fleet.in_flight()), is_retry=is_retry, log=log)
    give_up_at_deadline(fleet, log)


def give_up_at_deadline(fleet: FleetBackup, log: Log) -> None:
    """Fail every instance still pending at the task's deadline (its insert goes on on the server).

    :param fleet: the run.
    :param log: the task's logger.
    """
    late = [row for row in fleet.rows(status=PENDING)]
    for row in late:
        row.finish(FAILED, "not READY by the task's deadline (timeout); its insert, if sent, goes on on the server")
    if late:
        log.warning("Run %s: %d instance(s) not backed up by the task's deadline", fleet.run_label, len(late))
