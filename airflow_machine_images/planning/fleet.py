"""Selecting a fleet: which instances of a project a label selector and a list filter pick. Pure, no I/O.

The instances come from ``instances.aggregatedList`` (every zone in one paged call), whose ``items``
map scopes (``zones/ZONE``) to ``{"instances": [...]}`` or to ``{"warning": ...}`` (discovery
documents, schemas ``InstanceAggregatedList`` and ``InstancesScopedList``). ``NO_RESULTS_ON_PAGE``
only says a scope is empty on this page. A scope or answer that could not be read completely
(``UNREACHABLE``, ``PARTIAL_SUCCESS``, ``LIST_OVERHEAD_QUOTA_EXCEED``, any code but
``NO_RESULTS_ON_PAGE`` as :mod:`~airflow_machine_images.api.list_warnings` reads them, or a non-empty
``unreachables``)
is not evidence that the zone has no selected instance: a backup run or a coverage check that went on
without it would silently skip machines, so :class:`FleetListing` records it and the operators fail
(the safe reading; no documentation says how often it happens).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from airflow_machine_images.api.list_warnings import HARMLESS_CODES
from airflow_machine_images.exceptions import MachineImageValidationError, MalformedResponseError
from airflow_machine_images.results import listed_instance_summary, listed_instances_summary
from airflow_machine_images.validation import (
    split_label_selector,
    validate_labels,
    validate_machine_image_name,
    validate_zone,
)
from airflow_machine_images.validation.primitives import show_value

__all__ = [
    "FleetListing",
    "InstanceSelector",
    "backup_image_name",
    "backup_kwargs",
]

#: The longest filter accepted (the URL of a GET must stay well within what servers take).
MAX_FILTER_CHARS: Final = 4096
#: A term of a list filter on labels (``labels.env = prod``, ``labels.env:*``, ``(labels.env eq prod)``).
_LABEL_TERM_PATTERN: Final = r"(?:^|[\s(])-?labels\."


@dataclass(frozen=True)
class InstanceSelector:
    """Which instances are selected: all of ``labels``, the ``filter``, and (if given) one of ``zones``.

    :param labels: every one of these labels, with these values.
    :param filter: a Compute Engine list filter on the Instance resource, e.g. ``status = RUNNING``.
    :param zones: only these zones (None: every zone).
    """

    labels: Mapping[str, str] = field(default_factory=dict)
    filter: str | None = None
    zones: tuple[str, ...] | None = None

    @classmethod
    def of(cls, label_selector: object, filter_: object, zones: object) -> InstanceSelector:
        """Validate the operators' arguments into a selector.

        :param label_selector: a dict, the text ``"key=value,key2=value2"``, or None.
        :param filter_: a list filter, or None.
        :param zones: a list of zone names (or their text, comma-separated), or None for every zone.
        :raises MachineImageValidationError: an argument breaks a rule (the message names it).
        """
        if isinstance(label_selector, str):
            label_selector = split_label_selector(label_selector)
        labels = validate_labels(label_selector if label_selector is not None else {}, "label_selector")
        if filter_ is not None:
            if not isinstance(filter_, str) or not filter_.strip():
                raise MachineImageValidationError("filter", "must be a non-empty list filter text", show_value(filter_))
            if len(filter_) > MAX_FILTER_CHARS:
                raise MachineImageValidationError("filter", f"must be at most {MAX_FILTER_CHARS} characters")
            filter_ = filter_.strip()
        chosen: tuple[str, ...] | None = None
        if isinstance(zones, str):  # a rendered template: "us-east1-b" or "us-east1-b,us-east1-c"
            zones = [zone.strip() for zone in zones.split(",") if zone.strip()]
        if zones is not None:
            if not isinstance(zones, Sequence) or not zones:
                raise MachineImageValidationError(
                    "zones", "must be a non-empty list of zone names, or None for every zone", show_value(zones)
                )
            chosen = tuple(dict.fromkeys(validate_zone(zone, f"zones[{n}]") for n, zone in enumerate(zones)))
        return cls(labels=labels, filter=filter_, zones=chosen)

    def server_filter(self) -> str | None:
        """The filter sent with ``instances.aggregatedList``: the user's ``filter`` only, never the labels.

        The labels are matched here (:meth:`selects`), on an answer the server did not narrow by them, as
        gcloud does: its filter rewriter never sends label terms to Compute Engine, because server-side
        label matching "is currently problematic" (googlecloudsdk ``api_lib/compute/filter_rewrite.py``).
        An instance the server wrongly left out of a label-filtered answer would never be backed up, and
        a coverage check asking the server the same question could not notice; matched here, it is either
        listed (and selected) or the listing says it is incomplete. The cost is the project's other
        instances on the pages, which are read and dropped: ``maxResults`` counts them too. A user
        ``filter`` is the user's own question to the server, sent as given.
        """
        return self.filter

    @property
    def filter_names_labels(self) -> bool:
        """Whether the user's ``filter`` has a ``labels.`` term: that much the server decides, unchecked."""
        return self.filter is not None and re.search(_LABEL_TERM_PATTERN, self.filter) is not None

    def selects(self, instance: Mapping[str, Any], zone: str) -> bool:
        """Whether an instance the server returned is within the labels and zones (re-checked here).

        :param instance: an Instance resource.
        :param zone: its zone.
        """
        labels = instance.get("labels") or {}
        if not isinstance(labels, Mapping):
            return False
        if self.zones is not None and zone not in self.zones:
            return False
        return all(labels.get(key) == value for key, value in self.labels.items())

    def describe(self) -> str:
        """The selector in words, for logs and errors."""
        parts = [f"labels {dict(self.labels)}"] if self.labels else []
        if self.filter:
            parts.append(f"filter {self.filter!r}")
        parts.append(f"zones {list(self.zones)}" if self.zones else "every zone")
        return ", ".join(parts)


@dataclass
class FleetListing:
    """The instances gathered from the pages of one ``instances.aggregatedList`` walk.

    :param project_id: the project listed.
    :param selector: what is selected.
    :param instances: the selected instances, as
        :func:`~airflow_machine_images.results.listed_instance_summary` dicts (by source instance).
    :param incomplete: the scopes (or ``answer``) that could not be read completely, with why.
    :param pages: pages taken.
    """

    project_id: str
    selector: InstanceSelector
    instances: dict[str, dict[str, Any]] = field(default_factory=dict)
    incomplete: dict[str, str] = field(default_factory=dict)
    pages: int = 0

    def take(self, page: Mapping[str, Any]) -> None:
        """Read one page: select its instances, note incomplete scopes.

        :param page: an InstanceAggregatedList answer.
        :raises MalformedResponseError: the page is not shaped like one.
        """
        self.pages += 1
        top = page.get("warning")
        if isinstance(top, Mapping) and top.get("code") not in HARMLESS_CODES:
            self.incomplete["answer"] = _why(top)
        for scope in page.get("unreachables") or []:
            self.incomplete.setdefault(str(scope), "UNREACHABLE")
        items = page.get("items") or {}
        for scope, scoped in items.items():
            if not isinstance(scoped, Mapping):
                raise MalformedResponseError(f"instances.aggregatedList: scope {str(scope)[:80]!r} is not an object")
            warning = scoped.get("warning")
            if isinstance(warning, Mapping) and warning.get("code") not in HARMLESS_CODES:
                # Any code but NO_RESULTS_ON_PAGE may mean left-out instances, known or not (list_warnings.py).
                self.incomplete[str(scope)] = _why(warning)
            if not str(scope).startswith("zones/"):
                continue
            zone = str(scope)[len("zones/") :]
            listed = scoped.get("instances") or []
            if not isinstance(listed, list):
                raise MalformedResponseError(
                    f"instances.aggregatedList: scope {scope!r} has 'instances' that is not a list"
                )
            for instance in listed:
                if not isinstance(instance, Mapping) or not isinstance(instance.get("name"), str):
                    raise MalformedResponseError(
                        f"instances.aggregatedList: scope {scope!r} has an instance without a name"
                    )
                if self.selector.selects(instance, zone):
                    entry = listed_instance_summary(self.project_id, zone, instance)
                    self.instances[entry["source_instance"]] = entry

    def blocking_incomplete(self) -> dict[str, str]:
        """The incomplete scopes that matter: all, or only those of the chosen zones."""
        zones = self.selector.zones
        if zones is None:
            return dict(self.incomplete)
        return {
            scope: why
            for scope, why in self.incomplete.items()
            if scope == "answer" or not scope.startswith("zones/") or scope[len("zones/") :] in zones
        }

    def selected(self) -> list[dict[str, Any]]:
        """The selected instances, by zone and name (the list operator's XCom)."""
        return listed_instances_summary(self.instances.values())


def _why(warning: Mapping[str, Any]) -> str:
    message = str(warning.get("message") or "")[:200]
    return f"{warning.get('code')}" + (f": {message}" if message else "")


def backup_image_name(instance: Mapping[str, Any], suffix: str) -> str:
    """A machine image name for a backup of ``instance``: ``NAME-SUFFIX-HASH``.

    The 6 hex digits of a SHA-256 of the instance's full path keep two instances of the same name (in
    other zones or projects, imaged into one backup project) apart; the name is cut to fit 63 characters.

    :param instance: one instance the list operator returned (``name``, ``source_instance``).
    :param suffix: e.g. the run date ``20260520``.
    """
    digest = hashlib.sha256(str(instance["source_instance"]).encode()).hexdigest()[:6]
    tail = f"-{suffix}-{digest}" if suffix else f"-{digest}"
    name = f"{str(instance['name'])[: 63 - len(tail)].rstrip('-')}{tail}"
    return validate_machine_image_name(name, "name")


def backup_kwargs(
    instances: Sequence[Mapping[str, Any]], suffix: str, labels: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """The ``expand_kwargs`` of :class:`~airflow_machine_images.operators.ComputeEngineInsertMachineImageOperator`
    for instances the list operator returned: ``{"name", "source_instance"}`` (and ``labels`` if given).

    The list operator's own dicts cannot be expanded as they are: ``zone`` and ``status`` are no argument
    of the insert operator, ``name`` is the instance's (an image needs its own, per run), and
    ``project_id`` is the instance's project, where the images would then be made instead of the
    backup project set on ``.partial()``.

    :param instances: the list operator's return value.
    :param suffix: what makes the names of this run's images unique, e.g. the run date.
    :param labels: labels for every image (leave out when ``.partial()`` sets them).
    """
    out = []
    for instance in instances:
        kwargs: dict[str, Any] = {
            "name": backup_image_name(instance, suffix),
            "source_instance": str(instance["source_instance"]),
        }
        if labels is not None:
            kwargs["labels"] = dict(labels)
        out.append(kwargs)
    return out
