"""Instances restored from a machine image in the create flow: inserted, read back, checked against the image.

:class:`RestoredInstanceTarget` is the :class:`~airflow_machine_images.flows.create.CreateTarget` of
``instances.insert`` with ``sourceMachineImage``; the steps themselves live in
:mod:`airflow_machine_images.flows.create`. An instance counts as the restore only when it carries the
restore labels, names the requested image as its source (compared in canonical form: a project number
is resolved, :class:`ImageProjects`) and was restored by the same DAG (``restore-dag``): a restore never
adopts, and so never hands to its cleanup, an instance another DAG restored. Before the first insert, a
restore across projects is refused unless it replaces what the image would carry across
(:func:`~airflow_machine_images.bodies.instance.check_cross_project`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Final

from airflow_machine_images.bodies.instance import (
    RESTORE_DAG_LABEL,
    RESTORE_ID_LABEL,
    check_cross_project,
    is_restored,
    labels_of,
)
from airflow_machine_images.exceptions import (
    InstanceConflictError,
    InstanceNotRunningError,
    MalformedResponseError,
    PermissionDeniedError,
    ResourceNotFoundError,
    failing_on_bad_input,
)
from airflow_machine_images.flows.create import Readiness
from airflow_machine_images.flows.request_ids import dag_key
from airflow_machine_images.results import restored_instance_summary
from airflow_machine_images.validation import MachineImageValidationError, parse_machine_image_ref

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_machine_images.exceptions import ComputeEngineError
    from airflow_machine_images.flows.create import CreateRequest, CreateState
    from airflow_machine_images.hooks.sync import ComputeEngineMachineImageHook
    from airflow_machine_images.logs import TaskLogger as Log

#: Instance states on the way to RUNNING (Compute Engine docs, "VM instance life cycle").
STARTING_STATES: Final = frozenset({"PENDING", "PROVISIONING", "STAGING"})


@dataclass
class ImageProjects:
    """The project id of a machine image given by project number, looked up at most once per try.

    Compute Engine takes a project number wherever a project id goes and answers with the id
    (:mod:`airflow_machine_images.flows.source_names` has the sources); one ``machineImages.get`` on the
    number gives the image's ``selfLink``, and so its project id.

    :param resolved: (project, image) -> its project id, or None when the image could not be read.
    :param why_unknown: (project, image) -> why it could not be read.
    """

    resolved: dict[tuple[str, str], str | None] = field(default_factory=dict)
    why_unknown: dict[tuple[str, str], str] = field(default_factory=dict)

    def canonical(self, hook: ComputeEngineMachineImageHook, project: str, name: str) -> str | None:
        """The image's project id: ``project`` itself unless it is a number (no API call), else as read.

        :param hook: reads the image.
        :param project: the project as given (id or number).
        :param name: the image's name.
        :return: the project id, or None when a number could not be resolved (see :attr:`why_unknown`).
        """
        if not project.isdigit():
            return project
        key = (project, name)
        if key not in self.resolved:
            found: str | None = None
            try:
                image = hook.get_machine_image(name=name, project_id=project)
                found = parse_machine_image_ref(image.get("selfLink"), default_project=None, parameter="selfLink")[0]
            except (ResourceNotFoundError, PermissionDeniedError, MalformedResponseError) as error:
                self.why_unknown[key] = f"machineImages.get of projects/{project}/global/machineImages/{name}: {error}"
            except MachineImageValidationError as error:
                self.why_unknown[key] = f"machineImages.get answered an unreadable selfLink ({error})"
            self.resolved[key] = None if found is None or found.isdigit() else found
        return self.resolved[key]


@dataclass(frozen=True)
class RestoredInstanceTarget:
    """A new instance restored from a machine image, for the create flow.

    :param zone: the new instance's zone.
    :param image_project: the source machine image's project (id, or number).
    :param image_name: the source machine image's name.
    :param dag_id: the restoring task's DAG: an existing instance is adopted only if that DAG restored it.
    :param images: the image's project id, when given by number (looked up once per try).
    """

    zone: str
    image_project: str
    image_name: str
    dag_id: str = ""
    images: ImageProjects = field(default_factory=ImageProjects, compare=False, repr=False)

    kind: ClassVar[str] = "Instance"
    #: The resource collection a 409 names (``projects/P/zones/Z/instances/NAME``).
    collection: ClassVar[str] = "instances"
    ready_status: ClassVar[str] = "RUNNING"
    #: PROVISIONING/STAGING last seconds after the operation: read often, on the worker.
    max_poll_interval: ClassVar[float] = 5.0
    #: No per-source limit is documented for instances restored from an image.
    source_limited: ClassVar[bool] = False

    @property
    def source_machine_image(self) -> str:
        """The image as a partial URL: ``projects/P/global/machineImages/N``."""
        return f"projects/{self.image_project}/global/machineImages/{self.image_name}"

    def insert(
        self, hook: ComputeEngineMachineImageHook, request: CreateRequest, request_id: str, log: Log
    ) -> Mapping[str, Any]:
        """``instances.insert`` of the request's body from the machine image, once :meth:`preflight` allows it."""
        self.preflight(hook, request, log)
        return hook.insert_instance(
            zone=self.zone,
            body=request.body,
            source_machine_image=self.source_machine_image,
            request_id=request_id,
            project_id=request.project_id,
        )

    def get(self, hook: ComputeEngineMachineImageHook, request: CreateRequest) -> Mapping[str, Any]:
        """``instances.get`` of the request's instance."""
        return hook.get_instance(zone=self.zone, name=request.name, project_id=request.project_id)

    def preflight(self, hook: ComputeEngineMachineImageHook, request: CreateRequest, log: Log) -> None:
        """Before an insert: refuse a restore across projects that would carry across what Compute Engine refuses.

        The image's project is compared in canonical form: given by number, it is resolved by one
        ``machineImages.get`` (cached); one that cannot be read is taken for another project (the safe reading:
        the arguments a cross-project restore needs are then asked for).

        :raises AirflowFailException: naming the argument to set (never retried: the input stays as it is).
        """
        canonical = self.images.canonical(hook, self.image_project, self.image_name)
        if canonical is None:
            log.warning(
                "Cannot tell the project id of %s (%s); taking it for another project than %s",
                self.source_machine_image,
                self.images.why_unknown.get((self.image_project, self.image_name)),
                request.project_id,
            )
        with failing_on_bad_input():
            check_cross_project(
                request.body, image_project=canonical or self.image_project, project_id=request.project_id
            )

    def check_source(
        self, hook: ComputeEngineMachineImageHook, request: CreateRequest, resource: Mapping[str, Any], log: Log
    ) -> None:
        """Fail, naming both, unless the instance is a restore (labels) of the requested machine image, by this DAG.

        Images are compared as (project id, name): a project given by number is resolved first
        (:class:`ImageProjects`). When it cannot be resolved, an instance carrying this task instance's
        ``restore-id`` was made by one of its own inserts, which sent this image: it is kept (with a warning).

        :raises InstanceConflictError: it is another instance, or another DAG's restore.
        """
        existing = resource.get("sourceMachineImage")
        labels = labels_of(resource)
        same = self._same_image(hook, existing)
        if same is None:
            same = labels.get(RESTORE_ID_LABEL) == request.owner_key
            log.warning(
                "Cannot compare %s with %s (%s); %s",
                existing,
                self.source_machine_image,
                self.images.why_unknown.get((self.image_project, self.image_name)),
                "it carries this task instance's restore-id, so it is kept" if same else "taken for another image",
            )
        if not (same and is_restored(resource)):
            raise InstanceConflictError(
                f"Instance {request.name} in {request.project_id}/{self.zone} exists but is not a restore of "
                f"{self.source_machine_image} (its source: {existing!r}, labels "
                f"{sorted(labels.items())}); choose another name or delete it."
            )
        if self.dag_id and labels.get(RESTORE_DAG_LABEL) != dag_key(self.dag_id):
            raise InstanceConflictError(
                f"Instance {request.name} in {request.project_id}/{self.zone} is a restore of {self.image_name}, but "
                f"not by DAG {self.dag_id!r} (airflow-dag={labels.get('airflow-dag')!r}): a restore adopts only what "
                "its own DAG restored, so its cleanup can never delete another DAG's instance; choose another name."
            )

    def _same_image(self, hook: ComputeEngineMachineImageHook, existing: object) -> bool | None:
        """Whether ``existing`` (an instance's ``sourceMachineImage``) is the requested image; None: cannot tell."""
        try:
            found = parse_machine_image_ref(existing, default_project=None)
        except MachineImageValidationError:
            return False
        if found == (self.image_project, self.image_name):
            return True
        if found[1] != self.image_name or not (self.image_project.isdigit() or found[0].isdigit()):
            return False
        mine = self.images.canonical(hook, self.image_project, self.image_name)
        theirs = self.images.canonical(hook, found[0], found[1])
        return None if mine is None or theirs is None else mine == theirs

    def readiness(self, resource: Mapping[str, Any]) -> Readiness:
        """RUNNING is ready; PENDING, PROVISIONING and STAGING are on the way; anything else is final."""
        status = resource.get("status")
        if status == "RUNNING":
            return Readiness.READY
        return Readiness.STARTING if status in STARTING_STATES else Readiness.FINAL

    def not_usable(self, request: CreateRequest, status: object) -> ComputeEngineError:
        """:class:`InstanceNotRunningError`: it stopped, was suspended or is being deleted."""
        return InstanceNotRunningError(
            f"Restored instance {request.name} is {status}; it will not become RUNNING by itself."
        )

    def conflict(self, message: str) -> ComputeEngineError:
        """:class:`InstanceConflictError`."""
        return InstanceConflictError(message)

    def taken_hint(self, request: CreateRequest, taken: str) -> str:
        """What to do when a 409 names ``taken``, another resource than the instance (a disk, an address)."""
        name = taken.rstrip("/").rsplit("/", 1)[-1]
        if "/disks/" in taken:
            return (
                f"An instance restored from a machine image gets disks named after it ({request.name} for the boot "
                f"disk, {request.name}-N for the others): a disk left behind by an earlier instance of that name is in "
                f"the way. Delete it if nothing needs it (gcloud compute disks delete {name} --zone {self.zone}), or "
                "choose another instance name."
            )
        return f"Delete {taken} if nothing needs it, or choose another instance name."

    def where(self, request: CreateRequest) -> str:
        """``in P/ZONE``."""
        return f"in {request.project_id}/{self.zone}"

    def announce(self, request: CreateRequest) -> str:
        """``Restoring IMAGE into instance NAME in P/ZONE``."""
        return f"Restoring {self.source_machine_image} into instance {request.name} in {request.project_id}/{self.zone}"

    def same_origin(self, request: CreateRequest) -> str:
        """``restored from IMAGE``."""
        return f"restored from {self.image_name}"

    def describe(self, resource: Mapping[str, Any]) -> str:
        """Status and self link."""
        return f"{resource.get('status')}: {resource.get('selfLink')}"

    def summary(self, request: CreateRequest, state: CreateState) -> dict[str, Any]:
        """:func:`~airflow_machine_images.results.restored_instance_summary` of the state."""
        return restored_instance_summary(
            project_id=request.project_id,
            zone=self.zone,
            name=request.name,
            source_machine_image=self.source_machine_image,
            request_id=state.request_id,
            operation=state.operation,
            instance=state.resource,
            reused=state.reused,
            replayed=state.replayed,
            restore_id=request.owner_key,
        )
