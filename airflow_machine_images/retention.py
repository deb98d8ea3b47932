"""Which machine images a retention policy keeps and which it deletes: pure planning, no I/O.

The rules, all enforced here and re-checked on the images the server returned:

* only images matching the selector (every label of ``label_selector``, and ``name_prefix``) are
  considered; the server-side filter narrows the list, this module decides;
* images that are not READY are never deleted (one being created, uploaded, deleted, or INVALID);
* per source instance, the newest READY image is always kept, plus the newest ``keep_last`` READY
  images and every image younger than ``max_age``; the rest is deleted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from airflow_machine_images.compute_api import parse_timestamp
from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.validation import parse_source_instance, validate_labels
from airflow_machine_images.validation.primitives import show_value


@dataclass(frozen=True)
class RetentionPolicy:
    """What to select and what to keep.

    :param label_selector: images must carry all of these labels.
    :param name_prefix: images' names must start with this.
    :param keep_last: keep the newest N READY images of each source instance (N >= 1).
    :param max_age: keep images younger than this.
    """

    label_selector: Mapping[str, str] = field(default_factory=dict)
    name_prefix: str | None = None
    keep_last: int | None = None
    max_age: timedelta | None = None

    def __post_init__(self) -> None:
        labels = validate_labels(dict(self.label_selector or {}), "label_selector")
        object.__setattr__(self, "label_selector", labels)
        if not labels and not self.name_prefix:
            raise MachineImageValidationError(
                "label_selector",
                "give a label_selector and/or a name_prefix: an empty selector would select every image in the project",
            )
        if self.name_prefix is not None and (
            not isinstance(self.name_prefix, str)
            or not _PREFIX_CHARS.issuperset(self.name_prefix)
            or not self.name_prefix
        ):
            raise MachineImageValidationError(
                "name_prefix", "must be a non-empty prefix of lowercase letters, digits and hyphens"
            )
        if self.keep_last is None and self.max_age is None:
            raise MachineImageValidationError("keep_last", "give keep_last and/or max_age: what should be kept?")
        if self.keep_last is not None and (
            isinstance(self.keep_last, bool) or not isinstance(self.keep_last, int) or self.keep_last < 1
        ):
            why = " (keep_last=0 would delete every image of a source)" if self.keep_last == 0 else ""
            raise MachineImageValidationError("keep_last", f"must be an integer >= 1{why}", show_value(self.keep_last))
        if self.max_age is not None and (not isinstance(self.max_age, timedelta) or self.max_age <= timedelta(0)):
            raise MachineImageValidationError("max_age", "must be a positive duration (max_age=0 keeps nothing young)")

    def server_filter(self) -> str:
        """A Compute list filter narrowing the list to the selector's labels (or, alone, the prefix)."""
        if self.label_selector:
            return " AND ".join(f'(labels.{key} = "{value}")' for key, value in sorted(self.label_selector.items()))
        return f"name eq '{self.name_prefix}.*'"

    def selects(self, image: Mapping[str, Any]) -> bool:
        """Whether ``image`` is within the selector (checked here, whatever the server returned).

        :param image: a MachineImage resource.
        """
        labels = image.get("labels") or {}
        name = image.get("name")
        if not isinstance(name, str) or not isinstance(labels, Mapping):
            return False
        if self.name_prefix and not name.startswith(self.name_prefix):
            return False
        return all(labels.get(key) == value for key, value in self.label_selector.items())


_PREFIX_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


@dataclass
class RetentionPlan:
    """The decision for every selected image.

    :param delete: names to delete.
    :param keep: names kept because of the policy (newest, keep_last, max_age).
    :param not_ready: names left alone because they are not READY.
    :param by_source: per source instance, ``{"keep": [...], "delete": [...]}`` (newest first).
    """

    delete: list[str] = field(default_factory=list)
    keep: list[str] = field(default_factory=list)
    not_ready: list[str] = field(default_factory=list)
    by_source: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (the operator's XCom)."""
        return {"delete": self.delete, "keep": self.keep, "not_ready": self.not_ready, "by_source": self.by_source}


def created_at(image: Mapping[str, Any]) -> datetime | None:
    """An image's ``creationTimestamp`` as an aware datetime, or None if absent or unreadable.

    :param image: a MachineImage resource.
    """
    return parse_timestamp(image.get("creationTimestamp"))


def source_key(image: Mapping[str, Any]) -> str:
    """The image's source instance as ``projects/P/zones/Z/instances/I`` (raw text if unreadable).

    :param image: a MachineImage resource.
    """
    raw = image.get("sourceInstance")
    try:
        return parse_source_instance(raw, default_project=None).partial_url
    except MachineImageValidationError:
        return str(raw)


def plan_retention(images: Iterable[Mapping[str, Any]], policy: RetentionPolicy, now: datetime) -> RetentionPlan:
    """Decide, per source instance, which selected images to keep and which to delete.

    An image without a readable creation time is kept (we cannot tell its age).

    :param images: the images listed from the project (anything outside the selector is ignored).
    :param policy: what to select and keep.
    :param now: the current time (aware).
    """
    plan = RetentionPlan()
    ready_by_source: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for image in images:
        if not policy.selects(image):
            continue
        name = str(image["name"])
        when = created_at(image)
        if image.get("status") != "READY":
            plan.not_ready.append(name)
        elif when is None:
            plan.keep.append(name)
        else:
            ready_by_source[source_key(image)].append((when, name))
    for source, dated in sorted(ready_by_source.items()):
        dated.sort(reverse=True)  # newest first
        keep_count = policy.keep_last or 1  # the newest READY image of a source is always kept
        decision: dict[str, list[str]] = {"keep": [], "delete": []}
        for index, (when, name) in enumerate(dated):
            young = policy.max_age is not None and now - when < policy.max_age
            decision["keep" if (young or index < keep_count) else "delete"].append(name)
        plan.by_source[source] = decision
        plan.keep.extend(decision["keep"])
        plan.delete.extend(decision["delete"])
    plan.keep.sort()
    plan.delete.sort()
    plan.not_ready.sort()
    return plan
