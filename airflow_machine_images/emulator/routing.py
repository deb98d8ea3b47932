"""From a method and path to an action: route patterns, the :class:`Route` they give, and the routed :class:`Call`.

Each handler module declares the paths it serves as :class:`RoutePattern` objects (below
``/compute/VERSION/projects/PROJECT/``); :func:`match_route` picks the one a request addresses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from airflow_machine_images.emulator.errors import ApiError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from airflow_machine_images.emulator.faults import Fault

__all__ = ["VERSIONS", "Call", "Handler", "Route", "RoutePattern", "match_route"]

VERSIONS = frozenset({"beta", "v1"})


@dataclass(frozen=True)
class Route:
    """What a request path and method address.

    :param action: e.g. ``machineImages.insert``; ``unknown`` when nothing matches.
    :param version: ``beta`` or ``v1``.
    :param project: the project of the path.
    :param args: the other path parameters (``machineImage``, ``operation``, ``zone``, ``instance``).
    :param error: the 404/405 to answer when nothing matches.
    """

    action: str
    version: str = "v1"
    project: str = ""
    args: dict[str, str] = field(default_factory=dict)
    error: ApiError | None = None


@dataclass(frozen=True)
class RoutePattern:
    """A path below ``/compute/VERSION/projects/PROJECT/`` and the action each HTTP method names there.

    :param path: e.g. ``zones/{zone}/instances/{instance}``: literal segments, and ``{name}`` for a
        path parameter (a non-empty segment, ``Route.args[name]``).
    :param methods: HTTP method -> action, e.g. ``{"GET": "instances.get"}``.
    """

    path: str
    methods: Mapping[str, str]

    def match(self, segments: list[str]) -> dict[str, str] | None:
        """:param segments: the decoded path segments after the project.
        :return: the path parameters, or None when the segments are not this path."""
        parts = self.path.split("/")
        if len(parts) != len(segments):
            return None
        args: dict[str, str] = {}
        for part, segment in zip(parts, segments, strict=True):
            if part.startswith("{"):
                if not segment:
                    return None
                args[part[1:-1]] = segment
            elif part != segment:
                return None
        return args


def match_route(patterns: Iterable[RoutePattern], method: str, path: str) -> Route:
    """Map a method and path to an action.

    :param patterns: the paths served (no two alike).
    :param method: the HTTP method.
    :param path: the URL path (percent-encoded, without query).
    :return: the route (``unknown`` with a 404 or 405 error when nothing matches).
    """
    parts = [unquote(segment) for segment in path.split("/")]
    not_found = Route("unknown", error=ApiError(404, "notFound", f"The requested URL {path} was not found."))
    if len(parts) < 6 or parts[:2] != ["", "compute"] or parts[2] not in VERSIONS or parts[3] != "projects":
        return not_found
    version, project, rest = parts[2], parts[4], parts[5:]
    for pattern in patterns:
        args = pattern.match(rest)
        if args is None:
            continue
        action = pattern.methods.get(method)
        if action is None:
            allowed = ", ".join(sorted(pattern.methods))
            return Route(
                "unknown",
                error=ApiError(405, "methodNotAllowed", f"Method {method} is not allowed here (allowed: {allowed})."),
            )
        return Route(action, version, project, args)
    return not_found


@dataclass
class Call:
    """One API request after routing.

    :param route: the route.
    :param query: query parameters.
    :param body: the parsed JSON body, or None when there was none.
    :param fault: the fault injected into it, if any.
    """

    route: Route
    query: dict[str, str]
    body: Any = field(repr=False)  # may hold customer-supplied keys
    fault: Fault | None = None

    @property
    def project(self) -> str:
        """:return: the path's project."""
        return self.route.project

    @property
    def version(self) -> str:
        """:return: the path's API version."""
        return self.route.version


#: What answers one action: the routed request in, the JSON answer (HTTP 200) out; errors are raised.
Handler = Callable[[Call], dict[str, Any]]
