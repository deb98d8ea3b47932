"""``disks.get`` and ``disks.delete``: zonal persistent disks (what the real API does: :mod:`.disk_store`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow_machine_images.emulator import errors
from airflow_machine_images.emulator.errors import ApiError
from airflow_machine_images.emulator.routing import RoutePattern
from airflow_machine_images.emulator.validation import request_id

if TYPE_CHECKING:
    from airflow_machine_images.emulator.context import ApiContext
    from airflow_machine_images.emulator.disk_store import DiskStore
    from airflow_machine_images.emulator.resources import Disk, Operation
    from airflow_machine_images.emulator.routing import Call, Handler
    from airflow_machine_images.emulator.state import Origin

__all__ = ["DiskHandlers"]


class DiskHandlers:
    """The ``disks`` methods the package uses.

    :param context: the state, links and shared steps.
    :param disks: the disks.
    """

    ROUTES: ClassVar[tuple[RoutePattern, ...]] = (
        RoutePattern("zones/{zone}/disks/{disk}", {"GET": "disks.get", "DELETE": "disks.delete"}),
    )

    def __init__(self, context: ApiContext, disks: DiskStore) -> None:
        self._context = context
        self._state = context.state
        self._disks = disks

    def actions(self) -> dict[str, Handler]:
        """:return: the handler of each action of :attr:`ROUTES`."""
        return {"disks.get": self.get, "disks.delete": self.delete}

    def get(self, call: Call) -> dict[str, Any]:
        """``disks.get`` (by name or numeric id). :param call: the request."""
        with self._state.session() as now:
            return self._disk_or_404(call).render(self._context.links, call.version, now)

    def delete(self, call: Call) -> dict[str, Any]:
        """``disks.delete`` (by name or numeric id): replay a remembered requestId, else start deleting a disk
        no instance uses (400 ``resourceInUseByAnotherResource`` otherwise).

        :param call: the request.
        """

        def start_deleting(now: float, origin: Origin) -> Operation:
            disk = self._disk_or_404(call)
            if disk.operation is not None:
                raise ApiError(400, "resourceNotReady", f"The resource '{disk.path}' is not ready")
            if disk.users:
                raise ApiError(
                    400,
                    "resourceInUseByAnotherResource",
                    f"The disk resource '{disk.path}' is already being used by '{disk.users[0]}'",
                )
            return self._disks.delete(disk, now=now, origin=origin)

        return self._context.start_once(call, request_id(call), start_deleting)

    def _disk_or_404(self, call: Call) -> Disk:
        """:return: the disk the path names (lock held). :raises ApiError: 404."""
        zone, name = call.route.args["zone"], call.route.args["disk"]
        disk = self._disks.get(call.project, zone, name)
        if disk is None:
            raise errors.not_found(f"projects/{call.project}/zones/{zone}/disks/{name}")
        return disk
