"""What every handler module shares: the state, selfLinks, requestId replays, operation answers, list pages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_machine_images.emulator.filters import sort_resources
from airflow_machine_images.emulator.paging import ListQuery
from airflow_machine_images.emulator.resources import OperationFailure
from airflow_machine_images.emulator.state import Origin

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_machine_images.emulator.faults import Fault
    from airflow_machine_images.emulator.options import EmulatorOptions
    from airflow_machine_images.emulator.resources import Links, Operation
    from airflow_machine_images.emulator.routing import Call
    from airflow_machine_images.emulator.state import ComputeState

__all__ = ["ApiContext"]


def _caller(project: str) -> str:
    """:param project: the request's project. :return: the ``user`` of the operations it starts."""
    return f"emulator-user@{project}.iam.gserviceaccount.com"


@dataclass(frozen=True)
class ApiContext:
    """The shared side of the handler modules.

    :param state: the state (lock, operations, requestIds).
    :param links: selfLink builder.
    :param give_back: returns a scripted fault that had no effect (an ``operation_error`` on a replay).
    :param options: the standing options in force (the per-source machine-image limit is read at insert).
    """

    state: ComputeState
    links: Links
    give_back: Callable[[Fault], None] | None = None
    options: Callable[[], EmulatorOptions] | None = None

    def render_operation(self, operation: Operation, now: float, version: str) -> dict[str, Any]:
        """:param operation: the operation. :param now: ``time.monotonic()``. :param version: the request's.
        :return: the Operation JSON as of ``now``."""
        return operation.render(now, self.state.clock, self.links, version)

    def start_once(
        self, call: Call, request_id: str | None, start: Callable[[float, Origin], Operation]
    ) -> dict[str, Any]:
        """Start an operation, unless the requestId is remembered: then answer the operation it started.

        A replayed request makes no operation: an ``operation_error`` fault waits for the next that does.

        :param call: the request.
        :param request_id: its requestId (None: no replay).
        :param start: checks what the request names and starts the operation (lock held), given ``now``
            and the operation's origin; raises the request's ApiError.
        :return: the Operation JSON.
        """
        with self.state.session() as now:
            original = self.state.remembered(call.project, request_id, now)
            if original is not None:
                if call.fault is not None and call.fault.kind == "operation_error" and self.give_back is not None:
                    self.give_back(call.fault)
                return self.render_operation(original, now, call.version)
            return self.render_operation(start(now, self._origin(call, request_id)), now, call.version)

    @staticmethod
    def _origin(call: Call, request_id: str | None) -> Origin:
        """:return: the origin of the operation ``call`` starts: the user, the requestId, and the failure an
        ``operation_error`` fault asks for."""
        fault = call.fault
        failure = None
        if fault is not None and fault.kind == "operation_error":
            failure = OperationFailure(
                fault.error_code,
                fault.operation_error_message(),
                fault.http_error_status_code,
                fault.http_error_message,
            )
        return Origin(_caller(call.project), request_id, failure)

    def page(self, call: Call, items: list[dict[str, Any]], kind: str, collection: str) -> dict[str, Any]:
        """Filter, order and page rendered items into a ``*List`` answer.

        :param call: the request (filter, orderBy, maxResults, pageToken).
        :param items: every rendered resource of the collection.
        :param kind: the list kind.
        :param collection: ``machineImages`` or ``operations`` (global), or ``zones/Z/operations``.
        :return: the list JSON.
        """
        listing = ListQuery.read(call.query)
        selected = sort_resources([item for item in items if listing.predicate(item)], listing.order)
        page = selected[listing.offset : listing.offset + listing.size]
        scope = collection if "/" in collection else f"global/{collection}"  # zones/Z/operations
        path = f"projects/{call.project}/{scope}"
        out: dict[str, Any] = {"kind": kind, "id": path}
        if page:
            out["items"] = page
        token = listing.next_token(len(selected))
        if token is not None:
            out["nextPageToken"] = token
        out["selfLink"] = self.links.url(call.version, path)
        return out
