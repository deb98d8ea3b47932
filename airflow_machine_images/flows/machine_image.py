"""Machine images in the create flow: how one is inserted, read back and checked against its source instance.

:class:`MachineImageTarget` is the :class:`~airflow_machine_images.flows.create.CreateTarget` of
``machineImages.insert``; the steps themselves live in :mod:`airflow_machine_images.flows.create`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Final

from airflow_machine_images.bodies.labels import OWNER_LABEL
from airflow_machine_images.exceptions import (
    ChangedSinceListedError,
    MachineImageConflictError,
    MachineImageNotUsableError,
)
from airflow_machine_images.flows.create import Readiness
from airflow_machine_images.flows.source_names import SourceNames, has_numbers
from airflow_machine_images.planning.retention import why_changed
from airflow_machine_images.results import delete_summary, machine_image_summary
from airflow_machine_images.validation import InstanceRef, MachineImageValidationError, parse_source_instance

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_machine_images.exceptions import ComputeEngineError
    from airflow_machine_images.flows.create import CreateRequest, CreateState
    from airflow_machine_images.flows.delete import DeleteRequest, Deletion
    from airflow_machine_images.hooks.sync import ComputeEngineMachineImageHook
    from airflow_machine_images.logs import TaskLogger as Log
    from airflow_machine_images.planning.retention import RetentionPolicy

#: Image statuses from which READY will not come (MachineImage ``status`` in the discovery documents).
UNUSABLE_IMAGE_STATES: Final = frozenset({"INVALID", "DELETING"})


@dataclass(frozen=True)
class MachineImageTarget:
    """A machine image of one source instance, for the create flow.

    :param source: the source instance.
    :param names: canonical forms of source instances given by number, looked up at most once per try
        (:mod:`airflow_machine_images.flows.source_names`).
    """

    source: InstanceRef
    names: SourceNames = field(default_factory=SourceNames, compare=False, repr=False)

    kind: ClassVar[str] = "Machine image"
    #: The resource collection a 409 names (``projects/P/global/machineImages/NAME``).
    collection: ClassVar[str] = "machineImages"
    ready_status: ClassVar[str] = "READY"
    zone: ClassVar[None] = None  # global: machine images and their operations
    max_poll_interval: ClassVar[None] = None
    #: One image of a source instance every 10 minutes, 6 in 60 (:mod:`airflow_machine_images.flows.source_limit`).
    source_limited: ClassVar[bool] = True

    def insert(
        self, hook: ComputeEngineMachineImageHook, request: CreateRequest, request_id: str, log: Log
    ) -> Mapping[str, Any]:
        """``machineImages.insert`` of the request's body from :meth:`source_to_send`."""
        return hook.insert_machine_image(
            body=request.body,
            source_instance=self.source_to_send(hook, log),
            request_id=request_id,
            project_id=request.project_id,
        )

    def get(self, hook: ComputeEngineMachineImageHook, request: CreateRequest) -> Mapping[str, Any]:
        """``machineImages.get`` of the request's image."""
        return hook.get_machine_image(name=request.name, project_id=request.project_id)

    def source_to_send(self, hook: ComputeEngineMachineImageHook, log: Log) -> str:
        """The ``sourceInstance`` to send: the canonical form (project id, instance name) of a source given
        by project number or numeric id, else the source as given (no API call).

        The canonical form is sent because (1) the read-back must compare the image's ``sourceInstance``
        with the source in canonical form anyway, so the one ``instances.get`` is made in this try either
        way and is cached; (2) ``projects/P/zones/Z/instances/NAME`` is the form the discovery document's
        ``sourceInstance`` text documents, while a numeric instance id there is not documented; (3) the
        image then names its source in one form whether the server translates numbers or echoes them
        (AIP-2510). When the instance cannot be read (403/404), the source goes as given and the server
        decides (a missing instance is its 404).

        :param hook: the hook.
        :param log: the task's logger.
        """
        given = self.source
        if not has_numbers(given):
            return given.partial_url
        canonical = self.names.canonical(hook, given)
        if canonical == given:
            log.warning("Sending source instance %s as given: %s", given.partial_url, self.names.why(given))
        else:
            log.info("Source instance %s is %s (instances.get); sending that", given.partial_url, canonical.partial_url)
        return canonical.partial_url

    def check_source(
        self, hook: ComputeEngineMachineImageHook, request: CreateRequest, resource: Mapping[str, Any], log: Log
    ) -> None:
        """Fail, naming both, if the image was made from another instance than requested.

        Sources are compared in canonical form (project id, zone, instance name): a source given by
        project number or numeric id is resolved by one ``instances.get`` (cached for the try), so it
        never meets a false conflict (:mod:`airflow_machine_images.flows.source_names`); sources without
        numbers are compared as they are, with no API call.

        When the comparison needs an instance that cannot be read (403: no ``compute.instances.get``;
        404: deleted since), the safe reading is taken: an image carrying this task instance's
        ``airflow-ti`` label was made by one of its own inserts, which sent this source, so it is kept
        (with a warning); any other image is a conflict, since adopting an image from an unproven source
        would report somebody else's backup as this one.

        :param hook: the hook (reads instances when a number is involved).
        :param request: the validated request.
        :param resource: the existing MachineImage.
        :param log: the task's logger.
        :raises MachineImageConflictError: the sources differ, or cannot be compared and the image is not ours.
        """
        existing = resource.get("sourceInstance")
        try:
            existing_ref: InstanceRef | None = parse_source_instance(existing, default_project=None)
        except MachineImageValidationError:
            existing_ref = None
        same = False if existing_ref is None else self.names.same_instance(hook, self.source, existing_ref)
        if same:
            return
        conflict = (
            f"Machine image {request.name} in project {request.project_id} exists but was made from "
            f"{existing!r}, not from {self.source.partial_url!r}"
        )
        if same is None and existing_ref is not None:
            why = self.names.why(self.source, existing_ref)
            if (resource.get("labels") or {}).get(OWNER_LABEL) == request.owner_key:
                log.warning(
                    "Cannot tell whether %s and %s name one instance (%s); machine image %s carries this task "
                    "instance's label, so one of its own inserts made it from this source: keeping it",
                    existing,
                    self.source.partial_url,
                    why,
                    request.name,
                )
                return
            raise MachineImageConflictError(
                f"{conflict}, or so it must be taken: the two cannot be compared ({why}) and the image was not "
                "made by this task instance; grant compute.instances.get, give the source by project id and "
                "instance name, or choose another name."
            )
        raise MachineImageConflictError(f"{conflict}; choose another name or delete it.")

    def readiness(self, resource: Mapping[str, Any]) -> Readiness:
        """READY is ready; INVALID and DELETING are final; CREATING and UPLOADING are on the way."""
        status = resource.get("status")
        if status == "READY":
            return Readiness.READY
        return Readiness.FINAL if status in UNUSABLE_IMAGE_STATES else Readiness.STARTING

    def not_usable(self, request: CreateRequest, status: object) -> ComputeEngineError:
        """:class:`MachineImageNotUsableError`: the image is INVALID or being deleted."""
        return MachineImageNotUsableError(f"Machine image {request.name} is {status}; it will not become READY.")

    def conflict(self, message: str) -> ComputeEngineError:
        """:class:`MachineImageConflictError`."""
        return MachineImageConflictError(message)

    def taken_hint(self, request: CreateRequest, taken: str) -> str:
        """What to do when a 409 names ``taken``, another resource than the image."""
        return f"Delete {taken} if nothing needs it, or choose another image name."

    def where(self, request: CreateRequest) -> str:
        """``in project P``."""
        return f"in project {request.project_id}"

    def announce(self, request: CreateRequest) -> str:
        """``Creating machine image NAME in project P from SOURCE``."""
        return f"Creating machine image {request.name} in project {request.project_id} from {self.source.partial_url}"

    def same_origin(self, request: CreateRequest) -> str:
        """``from the same source instance``."""
        return "from the same source instance"

    def describe(self, resource: Mapping[str, Any]) -> str:
        """Status, self link and size."""
        return f"{resource.get('status')}: {resource.get('selfLink')} ({resource.get('totalStorageBytes')} bytes)"

    def summary(self, request: CreateRequest, state: CreateState) -> dict[str, Any]:
        """:func:`~airflow_machine_images.results.machine_image_summary` of the state."""
        return machine_image_summary(
            project_id=request.project_id,
            name=request.name,
            request_id=state.request_id,
            operation=state.operation,
            image=state.resource,
            reused=state.reused,
            replayed=state.replayed,
        )


@dataclass(frozen=True)
class MachineImageDeleteTarget:
    """A machine image, for the delete flow: read, checked, and deleted by the numeric id read.

    The delete operator deletes the image it names (no other check); retention gives the entry its plan
    was made on and its policy, so the image is checked against them on the very read that precedes its
    delete (:func:`~airflow_machine_images.planning.retention.why_changed`): another id under the name (the
    image was deleted and made again), another status, labels or creation time is left alone.

    ``machineImages.delete`` takes the id in place of the name (the ``machineImage`` path pattern of both
    discovery documents allows ``[1-9][0-9]{0,19}``), so an image re-made under the name after the read is
    never the one deleted.

    :param planned: the entry a retention plan decided on (None: the delete operator's image).
    :param policy: the retention policy the image must still match (with ``planned``).
    """

    planned: Mapping[str, Any] | None = field(default=None, repr=False)
    policy: RetentionPolicy | None = None

    kind: ClassVar[str] = "Machine image"
    zone: ClassVar[None] = None

    def get(self, hook: ComputeEngineMachineImageHook, request: DeleteRequest) -> Mapping[str, Any]:
        """``machineImages.get`` of the request's image."""
        return hook.get_machine_image(name=request.name, project_id=request.project_id)

    def check(self, request: DeleteRequest, resource: Mapping[str, Any]) -> None:
        """Retention's image must be as planned; the delete operator's image needs no check (the caller named it).

        :raises ChangedSinceListedError: it changed since it was listed (nothing is deleted).
        """
        if self.planned is None or self.policy is None:
            return
        why = why_changed(self.planned, resource, self.policy)
        if why is not None:
            raise ChangedSinceListedError(f"{request.what}: {why} since the listing")

    def prepare(
        self,
        hook: ComputeEngineMachineImageHook,
        request: DeleteRequest,
        resource: Mapping[str, Any],
        generation: int,
        *,
        is_retry: bool,
        log: Log,
    ) -> tuple[dict[str, Any], ...]:
        """Nothing to prepare; an image leaves nothing behind."""
        return ()

    def delete(
        self, hook: ComputeEngineMachineImageHook, request: DeleteRequest, identity: str, request_id: str
    ) -> Mapping[str, Any]:
        """``machineImages.delete`` of ``identity`` (the numeric id just checked)."""
        return hook.delete_machine_image(name=identity, request_id=request_id, project_id=request.project_id)

    def clean_up(
        self,
        hook: ComputeEngineMachineImageHook,
        request: DeleteRequest,
        deletion: Deletion,
        *,
        is_retry: bool,
        log: Log,
    ) -> dict[str, Any]:
        """Nothing was left behind."""
        return {}

    def where(self, request: DeleteRequest) -> str:
        """``in project P``."""
        return f"in project {request.project_id}"

    def summary(self, request: DeleteRequest, deletion: Deletion) -> dict[str, Any]:
        """:func:`~airflow_machine_images.results.delete_summary` of the delete."""
        return delete_summary(
            request.project_id,
            request.name,
            deleted=deletion.deleted,
            operation=deletion.operation,
            request_id=deletion.request_id,
            image_id=deletion.resource_id,
        )
