"""``instances.aggregatedList``: a project's instances of every zone, one map entry per zone scope.

What the real API answers (discovery documents ``compute.v1.json``/``compute.beta.json``, schemas
``InstanceAggregatedList`` and ``InstancesScopedList``): ``items`` maps a scope (``zones/ZONE``) to
``{"instances": [...]}``, or, for a scope without results on the page, to ``{"warning": {"code":
"NO_RESULTS_ON_PAGE", "message": ..., "data": [{"key": "scope", "value": "zones/ZONE"}]}}`` ("Informational
warning which replaces the list of instances when the list is empty"). ``maxResults`` counts instances
over all scopes and every page names every scope. A zone that cannot be read answers its scope with a
warning of code ``UNREACHABLE`` and is listed in ``unreachables`` (the emulator's control API chooses
such zones). Every scope is a zone Compute Engine has (:mod:`.zones`): nothing can be seeded in another.

A ``label_filter_drop`` fault (:class:`LabelFilterDrop`) makes an answer whose filter has a ``labels.`` term
leave instances out without saying so: the failure mode gcloud's filter rewriter guards against by never
sending label terms to the server ("server side labels matching is currently problematic",
``googlecloudsdk/api_lib/compute/filter_rewrite.py``). How often, if ever, the real service does it is not
documented; the fault lets a test show that a caller matching labels itself is not fooled.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_machine_images.emulator.filters import sort_resources
from airflow_machine_images.emulator.paging import ListQuery

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from airflow_machine_images.emulator.resources import Instance, Links

__all__ = ["KNOWN_ZONES", "LabelFilterDrop", "aggregated_instances", "label_filtered"]

#: A term of a list filter on labels (``labels.env = prod``, ``(labels.env eq prod)``, ``-labels.env:*``).
_LABEL_TERM = re.compile(r"(?:^|[\s(])-?labels\.")


def label_filtered(filter_text: str | None) -> bool:
    """:param filter_text: a request's ``filter``. :return: whether it has a ``labels.`` term."""
    return bool(filter_text) and _LABEL_TERM.search(str(filter_text)) is not None


@dataclass(frozen=True)
class LabelFilterDrop:
    """Which instances a label-filtered answer leaves out.

    :param names: these instances (None: ``fraction`` of those it should hold, at least one, by name order).
    :param fraction: the share left out when no names are given.
    """

    names: list[str] | None
    fraction: float

    def kept(self, selected: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
        """:param selected: (zone, instance) pairs the filter selects. :return: those the answer still holds."""
        if self.names is not None:
            return [(zone, item) for zone, item in selected if item.get("name") not in self.names]
        count = min(len(selected), max(1, math.ceil(self.fraction * len(selected)))) if selected else 0
        gone = {
            str(item.get("name")) for _, item in sorted(selected, key=lambda pair: str(pair[1].get("name")))[:count]
        }
        return [(zone, item) for zone, item in selected if item.get("name") not in gone]


#: Zones every project sees, whether or not it has instances there (a few of :data:`.zones.ZONES`; the
#: zones of every instance the emulator holds, all of them in :data:`.zones.ZONES`, are added).
KNOWN_ZONES = frozenset(
    {
        "us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f", "us-east1-b", "us-east1-c",
        "us-east1-d", "europe-west1-b", "europe-west1-c", "europe-west1-d", "asia-east1-a", "asia-east1-b",
    }
)  # fmt: skip


def _warning(code: str, message: str, scope: str) -> dict[str, Any]:
    return {"code": code, "message": message, "data": [{"key": "scope", "value": scope}]}


def aggregated_instances(
    instances: Iterable[Instance],
    *,
    zones: Iterable[str],
    query: Mapping[str, str],
    project: str,
    version: str,
    links: Links,
    unreachable: frozenset[str],
    now: float | None = None,
    drop: LabelFilterDrop | None = None,
) -> dict[str, Any]:
    """One page of ``instances.aggregatedList``.

    :param instances: the project's instances.
    :param zones: zones in use anywhere (their scopes appear besides :data:`KNOWN_ZONES`).
    :param query: the query parameters (filter, orderBy, maxResults, pageToken).
    :param project: the request's project.
    :param version: the API version.
    :param links: link builder.
    :param unreachable: zones that answer UNREACHABLE.
    :param now: ``time.monotonic()``, for the status of instances going through an operation.
    :param drop: a ``label_filter_drop`` fault's choice of instances to leave out silently (None: none).
    :return: the InstanceAggregatedList JSON.
    """
    listing = ListQuery.read(query, "aggregated")
    readable = [i for i in instances if i.zone not in unreachable]
    rendered = [(i.zone, i.render(links, version, now)) for i in sorted(readable, key=lambda i: (i.zone, i.name))]
    selected = [(zone, item) for zone, item in rendered if listing.predicate(item)]
    if drop is not None:
        selected = drop.kept(selected)
    if listing.order is not None:
        zone_of = {id(item): zone for zone, item in selected}
        ordered = sort_resources([item for _, item in selected], listing.order)
        selected = [(zone_of[id(item)], item) for item in ordered]
    page = selected[listing.offset : listing.offset + listing.size]
    scopes: dict[str, dict[str, Any]] = {}
    for zone in sorted({*KNOWN_ZONES, *zones}):
        scope = f"zones/{zone}"
        if zone in unreachable:
            scopes[scope] = {"warning": _warning("UNREACHABLE", f"The resource '{scope}' is unreachable.", scope)}
            continue
        found = [item for item_zone, item in page if item_zone == zone]
        scopes[scope] = (
            {"instances": found}
            if found
            else {
                "warning": _warning(
                    "NO_RESULTS_ON_PAGE", f"There are no results for scope '{scope}' on this page.", scope
                )
            }
        )
    path = f"projects/{project}/aggregated/instances"
    out: dict[str, Any] = {"kind": "compute#instanceAggregatedList", "id": path, "items": scopes}
    token = listing.next_token(len(selected))
    if token is not None:
        out["nextPageToken"] = token
    out["selfLink"] = links.url(version, path)
    if unreachable:
        out["unreachables"] = [f"zones/{zone}" for zone in sorted(unreachable)]
    return out
