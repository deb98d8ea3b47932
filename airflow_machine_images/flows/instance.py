"""Instances restored from a machine image in the create flow: inserted, read back, checked against the image.

:class:`RestoredInstanceTarget` is the :class:`~airflow_machine_images.flows.create.CreateTarget` of
``instances.insert`` with ``sourceMachineImage``; the steps themselves live in
:mod:`airflow_machine_images.flows.create`. An instance counts as the restore only when it carries the
restore labels and names the requested image as its source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final

from airflow_machine_images.bodies.instance import RESTORED_BY_LABEL, RESTORED_BY_VALUE, is_restored
from airflow_machine_images.exceptions import InstanceConflictError, InstanceNotRunningError, NotARestoredInstanceError
from airflow_machine_images.flows.create import Readiness
from airflow_machine_images.results import restored_instance_delete_summary, restored_instance_summary
from airflow_machine_images.validation import MachineImageValidationError, parse_machine_image_ref

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_machine_images.exceptions import ComputeEngineError
    from airflow_machine_images.flows.create import CreateRequest, CreateState
    from airflow_machine_images.flows.delete import DeleteRequest, Deletion
    from airflow_machine_images.hooks.sync import ComputeEngineMachineImageHook
    from airflow_machine_images.logs import TaskLogger as Log

#: Instance states on the way to RUNNING (Compute Engine docs, "VM instance life cycle").
STARTING_STATES: Final = frozenset({"PENDING", "PROVISIONING", "STAGING"})


@dataclass(frozen=True)
class RestoredInstanceTarget:
    """A new instance restored from a machine image, for the create flow.

    :param zone: the new instance's zone.
    :param image_project: the source machine image's project.
    :param image_name: the source machine image's name.
    """

    zone: str
    image_project: str
    image_name: str

    kind: ClassVar[str] = "Instance"
    ready_status: ClassVar[str] = "RUNNING"
    #: PROVISIONING/STAGING last seconds after the operation: read often, on the worker.
    max_poll_interval: ClassVar[float] = 5.0

    @property
    def source_machine_image(self) -> str:
        """The image as a partial URL: ``projects/P/global/machineImages/N``."""
        return f"projects/{self.image_project}/global/machineImages/{self.image_name}"

    def insert(
        self, hook: ComputeEngineMachineImageHook, request: CreateRequest, request_id: str, log: Log
    ) -> Mapping[str, Any]:
        """``instances.insert`` of the request's body from the machine image."""
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

    def check_source(
        self, hook: ComputeEngineMachineImageHook, request: CreateRequest, resource: Mapping[str, Any], log: Log
    ) -> None:
        """Fail, naming both, unless the instance is a restore (labels) of the requested machine image.

        :raises InstanceConflictError: it is another instance.
        """
        existing = resource.get("sourceMachineImage")
        try:
            same = parse_machine_image_ref(existing, default_project=None) == (self.image_project, self.image_name)
        except MachineImageValidationError:
            same = False
        if not (same and is_restored(resource)):
            raise InstanceConflictError(
                f"Instance {request.name} in {request.project_id}/{self.zone} exists but is not a restore of "
                f"{self.source_machine_image} (its source: {existing!r}, labels "
                f"{sorted((resource.get('labels') or {}).items())}); choose another name or delete it."
            )

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
        )


@dataclass(frozen=True)
class RestoredInstanceDeleteTarget:
    """An instance a restore made, for the delete flow: read, refused unless restored, deleted by id.

    A restore drill deletes its scratch instance at the end; a mistyped name must never delete a
    production instance. So the instance is read first and refused (a permanent error, never retried)
    unless it carries the restore labels (:func:`~airflow_machine_images.bodies.instance.is_restored`),
    and the delete names it by the numeric id just read (``instances.delete`` takes a name or an id:
    the path parameter's pattern in both discovery documents allows both): an instance created under
    the same name in between is a different id, and is not touched.

    :param zone: the instance's zone.
    """

    zone: str

    kind: ClassVar[str] = "Instance"
    by_identity: ClassVar[bool] = True

    def get(self, hook: ComputeEngineMachineImageHook, request: DeleteRequest) -> Mapping[str, Any]:
        """``instances.get`` of the request's instance."""
        return hook.get_instance(zone=self.zone, name=request.name, project_id=request.project_id)

    def check(self, request: DeleteRequest, resource: Mapping[str, Any]) -> None:
        """Refuse an instance without the restore labels.

        :raises NotARestoredInstanceError: nothing is deleted.
        """
        if not is_restored(resource):
            raise NotARestoredInstanceError(
                f"Refusing to delete instance {request.name} in {request.project_id}/{self.zone}: it does not carry "
                f"the restore labels ({RESTORED_BY_LABEL}={RESTORED_BY_VALUE} and restored-from), so it was not made "
                "by ComputeEngineRestoreMachineImageOperator. Nothing was deleted."
            )

    def delete(
        self, hook: ComputeEngineMachineImageHook, request: DeleteRequest, identity: str, request_id: str
    ) -> Mapping[str, Any]:
        """``instances.delete`` of ``identity`` (the numeric id just checked)."""
        return hook.delete_instance(zone=self.zone, name=identity, request_id=request_id, project_id=request.project_id)

    def where(self, request: DeleteRequest) -> str:
        """``in P/ZONE``."""
        return f"in {request.project_id}/{self.zone}"

    def summary(self, request: DeleteRequest, deletion: Deletion) -> dict[str, Any]:
        """:func:`~airflow_machine_images.results.restored_instance_delete_summary` of the delete."""
        return restored_instance_delete_summary(
            project_id=request.project_id,
            zone=self.zone,
            name=request.name,
            instance_id=deletion.resource_id,
            operation=deletion.operation,
            request_id=deletion.request_id,
        )
