"""``globalOperations`` and ``zoneOperations``: ``get``, ``wait`` (a long-poll) and ``list``.

Zonal operations behave as global ones, in their zone: the same handlers serve both, the scope
taken from the path (discovery documents, ``resources.zoneOperations``).
"""

from __future__ import annotations

import random
import threading
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_machine_images.emulator import errors
from airflow_machine_images.emulator.routing import RoutePattern

if TYPE_CHECKING:
    from airflow_machine_images.emulator.context import ApiContext
    from airflow_machine_images.emulator.resources import Operation
    from airflow_machine_images.emulator.routing import Call, Handler

__all__ = ["OperationHandlers"]


class OperationHandlers:
    """The ``globalOperations`` and ``zoneOperations`` methods.

    :param context: the state, links and shared steps.
    :param wait_deadline_seconds: how long a ``wait`` long-polls at most.
    :param early_wait_probability: chance a wait answers at once.
    :param seed: seed for early-wait draws.
    """

    ROUTES: ClassVar[tuple[RoutePattern, ...]] = (
        RoutePattern("global/operations", {"GET": "globalOperations.list"}),
        RoutePattern("global/operations/{operation}", {"GET": "globalOperations.get"}),
        RoutePattern("global/operations/{operation}/wait", {"POST": "globalOperations.wait"}),
        RoutePattern("zones/{zone}/operations", {"GET": "zoneOperations.list"}),
        RoutePattern("zones/{zone}/operations/{operation}", {"GET": "zoneOperations.get"}),
        RoutePattern("zones/{zone}/operations/{operation}/wait", {"POST": "zoneOperations.wait"}),
    )

    def __init__(
        self, context: ApiContext, *, wait_deadline_seconds: float, early_wait_probability: float, seed: int | None
    ) -> None:
        self._context = context
        self._state = context.state
        self.wait_deadline_seconds = wait_deadline_seconds
        self.early_wait_probability = early_wait_probability
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()

    def actions(self) -> dict[str, Handler]:
        """:return: the handler of each action of :attr:`ROUTES`."""
        return {
            "globalOperations.get": self.get,
            "globalOperations.wait": self.wait,
            "globalOperations.list": self.list_operations,
            "zoneOperations.get": self.get,
            "zoneOperations.wait": self.wait,
            "zoneOperations.list": self.list_operations,
        }

    def get(self, call: Call) -> dict[str, Any]:
        """``globalOperations.get`` / ``zoneOperations.get``. :param call: the request."""
        with self._state.session() as now:
            return self._context.render_operation(self._operation_or_404(call), now, call.version)

    def wait(self, call: Call) -> dict[str, Any]:
        """``globalOperations.wait`` / ``zoneOperations.wait``: long-poll until DONE or the deadline (or early).

        :param call: the request.
        """
        early = self._early(call)
        with self._state.session() as now:
            operation = self._operation_or_404(call)
            if not early:
                self._state.wait(operation, now + self.wait_deadline_seconds)
            now = self._state.clock.now()
            self._state.settle(now)
            return self._context.render_operation(operation, now, call.version)

    def list_operations(self, call: Call) -> dict[str, Any]:
        """``globalOperations.list`` / ``zoneOperations.list``: filtered, ordered, paged. :param call: the request."""
        with self._state.session() as now:
            zone = call.route.args.get("zone")
            operations = self._state.operations(call.project, zone)
            items = [self._context.render_operation(op, now, call.version) for op in operations]
        collection = "operations" if zone is None else f"zones/{zone}/operations"
        return self._context.page(call, items, "compute#operationList", collection)

    def _operation_or_404(self, call: Call) -> Operation:
        """:return: the operation the path names, in its scope (lock held). :raises ApiError: 404."""
        name, zone = call.route.args["operation"], call.route.args.get("zone")
        operation = self._state.operation(call.project, name, zone)
        if operation is None:
            scope = "global" if zone is None else f"zones/{zone}"
            raise errors.not_found(f"projects/{call.project}/{scope}/operations/{name}")
        return operation

    def _early(self, call: Call) -> bool:
        """Whether this wait answers at once: an ``early_wait`` fault, or a draw of ``early_wait_probability``."""
        if call.fault is not None and call.fault.kind == "early_wait":
            return True
        if self.early_wait_probability <= 0:
            return False
        with self._rng_lock:
            return self._rng.random() < self.early_wait_probability
