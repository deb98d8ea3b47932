"""The emulated Compute Engine REST surface: every handler module's routes, and the checks all methods share.

A resource is one handler module (its :class:`~.routing.RoutePattern` list and a handler per action:
:mod:`.machine_images`, :mod:`.instances`, :mod:`.disks`, :mod:`.operations`, :mod:`.serial_console`) over one store
(:mod:`.machine_image_store`, :mod:`.instance_store`, :mod:`.disk_store`); :class:`EmulatedApi` routes to
them after checking what every method checks (query parameters, the project and path parameters, a
zone it does not have, a project number standing for its id).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow_machine_images.emulator import errors
from airflow_machine_images.emulator.disks import DiskHandlers
from airflow_machine_images.emulator.errors import ApiError
from airflow_machine_images.emulator.instances import InstanceHandlers
from airflow_machine_images.emulator.machine_images import MachineImageHandlers
from airflow_machine_images.emulator.operations import OperationHandlers
from airflow_machine_images.emulator.routing import Route, RoutePattern, match_route
from airflow_machine_images.emulator.schema import NAME_PATTERN, NAME_RE, PROJECT_RE, query_params
from airflow_machine_images.emulator.serial_console import SerialConsoles, SerialPortHandlers
from airflow_machine_images.emulator.zones import check_zone

if TYPE_CHECKING:
    from airflow_machine_images.emulator.context import ApiContext
    from airflow_machine_images.emulator.disk_store import DiskStore
    from airflow_machine_images.emulator.instance_store import InstanceStore
    from airflow_machine_images.emulator.machine_image_store import MachineImageStore
    from airflow_machine_images.emulator.routing import Call, Handler

__all__ = ["ROUTES", "EmulatedApi", "route"]

#: Every path the API serves (below ``/compute/VERSION/projects/PROJECT/``), from each handler module.
ROUTES: tuple[RoutePattern, ...] = (
    *MachineImageHandlers.ROUTES,
    *OperationHandlers.ROUTES,
    *InstanceHandlers.ROUTES,
    *DiskHandlers.ROUTES,
    *SerialPortHandlers.ROUTES,
)
_RESOURCE_ID = re.compile(rf"{NAME_PATTERN}|[1-9][0-9]{{0,19}}")


def route(method: str, path: str) -> Route:
    """Map a method and path to an action (see :func:`~.routing.match_route`).

    :param method: the HTTP method.
    :param path: the URL path (percent-encoded, without query).
    :return: the route (``unknown`` with a 404 or 405 error when nothing matches).
    """
    return match_route(ROUTES, method, path)


class EmulatedApi:
    """Answers routed requests from the stores, through the handler modules.

    :param context: the state, links and fault give-back every handler module shares.
    :param images: the machine images.
    :param instances: the instances.
    :param disks: the disks.
    :param consoles: the instances' serial consoles.
    :param wait_deadline_seconds: how long ``globalOperations.wait`` long-polls at most.
    :param early_wait_probability: chance a wait answers at once.
    :param seed: seed for early-wait draws.
    """

    def __init__(
        self,
        context: ApiContext,
        images: MachineImageStore,
        instances: InstanceStore,
        disks: DiskStore,
        consoles: SerialConsoles,
        *,
        wait_deadline_seconds: float,
        early_wait_probability: float,
        seed: int | None,
    ) -> None:
        self._state = context.state
        self.machine_images = MachineImageHandlers(context, images, instances)
        self.operations = OperationHandlers(
            context,
            wait_deadline_seconds=wait_deadline_seconds,
            early_wait_probability=early_wait_probability,
            seed=seed,
        )
        self.instances = InstanceHandlers(context, instances, images)
        self.disks = DiskHandlers(context, disks)
        self.serial_ports = SerialPortHandlers(context, instances, consoles)
        self._handlers: dict[str, Handler] = {
            **self.machine_images.actions(),
            **self.operations.actions(),
            **self.instances.actions(),
            **self.disks.actions(),
            **self.serial_ports.actions(),
        }

    def call(self, call: Call) -> dict[str, Any]:
        """Do what the request asks.

        :param call: the routed request.
        :return: the JSON answer (HTTP 200).
        :raises ApiError: for every error answer.
        """
        _check_path_and_query(call)
        # A project number goes wherever a project id does (the discovery documents' ``project`` pattern
        # allows ``[0-9]{1,19}``); answers name the project by id, as Compute Engine's do (a Terraform
        # maintainer: APIs "accept either and return the id", terraform-provider-google issue 11454).
        with self._state.session():
            project_id = self._state.project_id(call.project)
        if project_id is None:
            raise errors.not_found(f"projects/{call.project}")
        if project_id != call.project:
            call.route = replace(call.route, project=project_id)
        return self._handlers[call.route.action](call)


def _check_path_and_query(call: Call) -> None:
    """What every method checks first: a known route, declared query parameters, well-formed path parameters.

    :param call: the routed request.
    :raises ApiError: the route's 404/405, or a 400.
    """
    route_ = call.route
    if route_.error is not None:
        raise route_.error
    allowed = query_params(route_.version, route_.action)
    for name in call.query:
        if name not in allowed and not name.startswith("$"):
            raise errors.invalid(
                f'Invalid JSON payload received. Unknown name "{name}": Cannot bind query parameter. '
                f"Field '{name}' could not be found in request message."
            )
    if not PROJECT_RE.fullmatch(route_.project):
        raise _bad_parameter(route_.project, PROJECT_RE.pattern)
    for key, value in route_.args.items():
        pattern = NAME_RE if key == "zone" else _RESOURCE_ID
        if not pattern.fullmatch(value):
            raise _bad_parameter(value, pattern.pattern)
        if key == "zone":
            check_zone(value)  # a well-formed name of no zone (a region): 400 "Unknown zone"


def _bad_parameter(value: str, pattern: str) -> ApiError:
    return ApiError(
        400,
        "invalidParameter",
        f"Invalid value '{value}'. Values must match the following regular expression: '{pattern}'",
    )
