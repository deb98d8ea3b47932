"""The sync hook's instance, disk and serial console methods (``instances.*``, ``disks.*``).

A mixin of :class:`~airflow_machine_images.hooks.sync.ComputeEngineMachineImageHook`: each method is a thin
call of the :class:`~airflow_machine_images.api.calls.ComputeApi` builder, sent by the hook's
``execute_call`` (retries, answer mapping); names are checked by the operators and triggers that take them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_machine_images.api.calls import ApiCall, ComputeApi


class InstanceHookMethods:
    """``instances.insert/get/delete/setDeletionProtection/getSerialPortOutput`` and ``disks.get/delete``."""

    if TYPE_CHECKING:

        @property
        def api(self) -> ComputeApi: ...

        def resolve_project_id(self, project_id: str | None) -> str: ...

        def execute_call(self, call: ApiCall, *, deadline: float | None = None) -> dict[str, Any]: ...

    # ------------------------------------------------------------------ instances

    def insert_instance(
        self,
        *,
        zone: str,
        body: Mapping[str, Any],
        source_machine_image: str,
        request_id: str,
        project_id: str | None = None,
    ) -> dict[str, Any]:
        """Start creating an instance from a machine image; return the zonal insert Operation.

        :param zone: the new instance's zone.
        :param body: the Instance resource (``name`` required).
        :param source_machine_image: the image as a partial or full URL (``projects/P/global/machineImages/N``).
        :param request_id: the UUID the server deduplicates repeats by.
        :param project_id: the project; defaults to the connection's.
        """
        project = self.resolve_project_id(project_id)
        call = self.api.insert_instance(
            project, zone, body, request_id=request_id, source_machine_image=source_machine_image
        )
        return self.execute_call(call)

    def get_instance(self, *, zone: str, name: str, project_id: str | None = None) -> dict[str, Any]:
        """Return an instance (``instances.get``): its ``name``, numeric ``id``, ``selfLink``, ``status``.

        Also used to learn the canonical form (project id, instance name) of a source instance given by
        project number or numeric id (:mod:`airflow_machine_images.flows.source_names`).

        :param zone: its zone.
        :param name: its name or numeric id.
        :param project_id: its project, id or number; defaults to the connection's.
        :raises ResourceNotFoundError: no such instance.
        :raises PermissionDeniedError: the caller lacks ``compute.instances.get``.
        """
        return self.execute_call(self.api.get_instance(self.resolve_project_id(project_id), zone, name))

    def delete_instance(
        self, *, zone: str, name: str, request_id: str, project_id: str | None = None
    ) -> dict[str, Any]:
        """Start deleting an instance (its auto-delete disks with it); return the zonal delete Operation.

        :param zone: its zone.
        :param name: its name or numeric id.
        :param request_id: the UUID the server deduplicates repeats by.
        :param project_id: the project; defaults to the connection's.
        """
        call = self.api.delete_instance(self.resolve_project_id(project_id), zone, name, request_id=request_id)
        return self.execute_call(call)

    def set_instance_deletion_protection(
        self, *, zone: str, name: str, protect: bool, request_id: str, project_id: str | None = None
    ) -> dict[str, Any]:
        """Set or clear an instance's ``deletionProtection``; return the zonal Operation.

        :param zone: its zone.
        :param name: its name or numeric id.
        :param protect: the new value.
        :param request_id: the UUID the server deduplicates repeats by.
        :param project_id: the project; defaults to the connection's.
        """
        call = self.api.set_deletion_protection(
            self.resolve_project_id(project_id), zone, name, protect=protect, request_id=request_id
        )
        return self.execute_call(call)

    # ------------------------------------------------------------------ disks

    def get_disk(self, *, zone: str, name: str, project_id: str | None = None) -> dict[str, Any]:
        """Return a zonal persistent disk (``disks.get``): its ``id``, ``users``, ``creationTimestamp``.

        :param zone: its zone.
        :param name: its name or numeric id.
        :param project_id: its project; defaults to the connection's.
        :raises ResourceNotFoundError: no such disk.
        """
        return self.execute_call(self.api.get_disk(self.resolve_project_id(project_id), zone, name))

    def delete_disk(self, *, zone: str, name: str, request_id: str, project_id: str | None = None) -> dict[str, Any]:
        """Start deleting a disk (permanent); return the zonal delete Operation.

        :param zone: its zone.
        :param name: its name or numeric id.
        :param request_id: the UUID the server deduplicates repeats by.
        :param project_id: the project; defaults to the connection's.
        """
        call = self.api.delete_disk(self.resolve_project_id(project_id), zone, name, request_id=request_id)
        return self.execute_call(call)

    # ------------------------------------------------------------------ serial console

    def get_serial_port_output(
        self, *, zone: str, name: str, start: int, port: int = 1, project_id: str | None = None
    ) -> dict[str, Any]:
        """One ``instances.getSerialPortOutput``: the console from byte ``start`` on (``contents``, ``start``,
        ``next``; see :mod:`airflow_machine_images.api.serial_console`).

        :param zone: the instance's zone.
        :param name: its name or numeric id.
        :param start: the first byte wanted (the previous answer's ``next``; 0 for the beginning).
        :param port: the serial port, 1 to 4.
        :param project_id: its project; defaults to the connection's.
        :raises ResourceNotFoundError: no such instance.
        """
        call = self.api.get_serial_port_output(self.resolve_project_id(project_id), zone, name, port=port, start=start)
        return self.execute_call(call)
