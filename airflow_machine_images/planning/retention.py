"""Which machine images a retention policy keeps and which it deletes: pure planning, no I/O.

The rules, all enforced here and re-checked on the images the server returned:

* only images matching the selector (every label of ``label_selector``, and ``name_prefix``) are
  considered; the server-side filter narrows the list, this module decides;
* only images this package made (``managed-by=airflow``, a default label of the insert operator) are
  pruned, unless the policy opts in to others (``include_unmanaged``); the others are reported
  (``unmanaged``) and left alone;
* images that are not READY are never deleted (one being created, uploaded, deleted, or INVALID);
* per source instance, the newest READY image is always kept, plus what the counting rules keep
  (``keep_last`` and the grandfather-father-son rules ``keep_daily``, ``keep_weekly``, ``keep_monthly``,
  ``keep_yearly``, with restic's semantics: :mod:`airflow_machine_images.planning.gfs`) and every image
  younger than ``max_age``; an image kept by any rule stays, the rest is deleted. The plan says, per
  kept image, which rules keep it (:attr:`RetentionPlan.kept_by`).

The listing is not trusted to be a snapshot: a paged list read while images come and go can repeat
an entry (a page boundary shifts), leave one out, or show one image in two states. The plan is made
on distinct images (by id, else by name), so a repeated entry cannot push a kept image out of the
newest ``keep_last``; an image whose entries disagree, or a name listed under two ids, changed while
it was listed and is left alone (``skipped``) and not counted as a newer image either. ``keep_last``
keeps an image when fewer than ``keep_last`` distinct READY images of its source are strictly newer,
and a period rule keeps every image tied for the newest of its period, so the plan does not depend on
the order of the listing, and images made in the same instant are kept or deleted together: two
images tied for the newest are both the newest. Leaving entries out can only keep more (fewer images
are newer than any one, and a period can only move up among the most recent ones).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from airflow_machine_images.api.timestamps import parse_timestamp
from airflow_machine_images.bodies.labels import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from airflow_machine_images.exceptions import MachineImageValidationError, ResourceNotFoundError
from airflow_machine_images.planning.gfs import KeepCounts, keep_reasons
from airflow_machine_images.validation import parse_source_instance, validate_labels
from airflow_machine_images.validation.primitives import show_value


@dataclass(frozen=True)
class RetentionPolicy:
    """What to select and what to keep.

    :param label_selector: images must carry all of these labels.
    :param name_prefix: images' names must start with this.
    :param keep_last: keep the newest N READY images of each source instance (N >= 1).
    :param max_age: keep images younger than this.
    :param include_unmanaged: also prune selected images without ``managed-by=airflow`` (made by hand or by
        other tools); by default they are left alone.
    :param keep_daily: keep the newest image of each of the N most recent UTC days that have one.
    :param keep_weekly: the same per ISO week (Monday to Sunday, UTC).
    :param keep_monthly: the same per calendar month (UTC).
    :param keep_yearly: the same per calendar year (UTC).
    """

    label_selector: Mapping[str, str] = field(default_factory=dict)
    name_prefix: str | None = None
    keep_last: int | None = None
    max_age: timedelta | None = None
    include_unmanaged: bool = False
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    keep_yearly: int | None = None

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
        counts = self.counts  # checks every keep_* count
        if not counts.any and self.max_age is None:
            raise MachineImageValidationError(
                "keep_last",
                "give keep_last, keep_daily, keep_weekly, keep_monthly, keep_yearly and/or max_age: what should be "
                "kept?",
            )
        if self.max_age is not None and (not isinstance(self.max_age, timedelta) or self.max_age <= timedelta(0)):
            raise MachineImageValidationError("max_age", "must be a positive duration (max_age=0 keeps nothing young)")
        managed = labels.get(MANAGED_BY_LABEL, MANAGED_BY_VALUE)
        if managed != MANAGED_BY_VALUE and not self.include_unmanaged:
            raise MachineImageValidationError(
                f"label_selector[{MANAGED_BY_LABEL!r}]",
                f"selects images this package did not make ({MANAGED_BY_LABEL}={MANAGED_BY_VALUE} is the label it "
                "gives them); retention prunes those only with include_unmanaged=True",
                show_value(managed),
            )

    @property
    def counts(self) -> KeepCounts:
        """The counting rules (``keep_last`` and the period rules), checked."""
        return KeepCounts(self.keep_last, self.keep_daily, self.keep_weekly, self.keep_monthly, self.keep_yearly)

    def describe(self) -> str:
        """The keep rules, as arguments (``keep_last=3, keep_daily=7, max_age=30 days, 0:00:00``)."""
        rules = [self.counts.describe()] if self.counts.any else []
        if self.max_age is not None:
            rules.append(f"max_age={self.max_age}")
        return ", ".join(rules)

    def server_filter(self) -> str:
        """A Compute list filter narrowing the list to the selector's labels (or, alone, the prefix).

        Unmanaged images are listed too (not filtered out on the server) so that the plan can report them.
        """
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

    def may_prune(self, image: Mapping[str, Any]) -> bool:
        """Whether a selected ``image`` may be pruned: made by this package, or the policy includes the others.

        :param image: a MachineImage resource.
        """
        labels = image.get("labels")
        managed = isinstance(labels, Mapping) and labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE
        return managed or self.include_unmanaged


class MachineImageReader(Protocol):
    """What :func:`changed_since_listed` reads images with (the sync hook)."""

    def get_machine_image(self, *, name: str, project_id: str | None = None) -> dict[str, Any]:
        """Return a machine image.

        :param name: the image name.
        :param project_id: the project.
        """
        ...


_PREFIX_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
#: The reason an image younger than ``max_age`` is kept.
MAX_AGE = "max_age"
#: The reason an image whose creation time cannot be read is kept (its age is unknown).
NO_CREATION_TIME = "no creation time"


@dataclass
class RetentionPlan:
    """The decision for every selected image.

    :param delete: names to delete.
    :param keep: names kept because of the policy (newest, a counting rule, max_age, no creation time).
    :param not_ready: names left alone because they are not READY.
    :param skipped: names left alone because they changed while they were listed.
    :param unmanaged: selected names left alone because this package did not make them (no
        ``managed-by=airflow``, and the policy does not include them).
    :param by_source: per source instance, ``{"keep": [...], "delete": [...]}`` (newest first).
    :param guards: per source instance with deletions, the READY images whose existence justifies
        them (those a counting rule keeps, the newest at least): the operator re-reads them before deleting.
    :param listed: the entry each name of ``delete`` and ``guards`` was planned on.
    :param kept_by: per kept name, the rules that keep it: ``newest``, ``last``, ``daily:2026-05-20``,
        ``weekly:2026-W21``, ``monthly:2026-05``, ``yearly:2026``, ``max_age``, or ``no creation time``.
    """

    delete: list[str] = field(default_factory=list)
    keep: list[str] = field(default_factory=list)
    not_ready: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    unmanaged: list[str] = field(default_factory=list)
    by_source: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    guards: dict[str, list[str]] = field(default_factory=dict)
    listed: dict[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)
    kept_by: dict[str, list[str]] = field(default_factory=dict)


def created_at(image: Mapping[str, Any]) -> datetime | None:
    """An image's ``creationTimestamp`` as an aware datetime, or None if absent or unreadable.

    :param image: a MachineImage resource.
    """
    return parse_timestamp(image.get("creationTimestamp"))


def source_key(image: Mapping[str, Any]) -> str:
    """The image's source instance as ``projects/P/zones/Z/instances/I`` (raw text if unreadable).

    Taken as listed, with no ``instances.get``: Compute Engine names sources by project id and
    instance name (:mod:`airflow_machine_images.flows.source_names`), and a source it named two ways would
    only split into two groups that each keep their newest images: more kept, never fewer.

    :param image: a MachineImage resource.
    """
    raw = image.get("sourceInstance")
    try:
        return parse_source_instance(raw, default_project=None).partial_url
    except MachineImageValidationError:
        return str(raw)


def image_key(image: Mapping[str, Any]) -> str:
    """What tells images apart: the id (unique, never reused), else the name.

    :param image: a MachineImage resource.
    """
    image_id = image.get("id")
    if isinstance(image_id, (str, int)) and not isinstance(image_id, bool) and str(image_id):
        return f"id:{image_id}"
    return f"name:{image.get('name')}"


#: The fields an entry is planned on; two entries of one image that differ in any of them disagree.
_PLANNED_FIELDS = ("name", "status", "creationTimestamp", "sourceInstance", "labels")


def distinct_images(images: Iterable[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], set[str]]:
    """One entry per image (by :func:`image_key`), and the names whose entries disagree.

    Entries of one image that differ in what retention reads, and a name listed under more than one
    id (deleted and made again between two pages), mean the image changed while it was listed.

    :param images: the listed images, in any order, possibly repeated.
    :return: the distinct images (first entry of each, in listing order) and the changed names.
    """
    first: dict[str, Mapping[str, Any]] = {}
    changed: set[str] = set()
    keys_by_name: dict[str, set[str]] = defaultdict(set)
    for image in images:
        key = image_key(image)
        keys_by_name[str(image.get("name"))].add(key)
        seen = first.setdefault(key, image)
        if seen is not image and any(seen.get(f) != image.get(f) for f in _PLANNED_FIELDS):
            changed.update({str(seen.get("name")), str(image.get("name"))})
    changed.update(name for name, keys in keys_by_name.items() if len(keys) > 1)
    return list(first.values()), changed


def plan_retention(images: Iterable[Mapping[str, Any]], policy: RetentionPolicy, now: datetime) -> RetentionPlan:
    """Decide, per source instance, which selected images to keep and which to delete.

    An image without a readable creation time is kept (we cannot tell its age). Repeated entries
    count once; images that changed while listed are skipped (see the module docstring).

    :param images: the images listed from the project (anything outside the selector is ignored).
    :param policy: what to select and keep.
    :param now: the current time (aware).
    """
    plan = RetentionPlan()
    distinct, changed = distinct_images(images)
    ready_by_source: dict[str, list[tuple[datetime, str, Mapping[str, Any]]]] = defaultdict(list)
    for image in distinct:
        name = str(image.get("name"))
        if name in changed:
            if policy.selects(image) and name not in plan.skipped:
                plan.skipped.append(name)
            continue
        if not policy.selects(image):
            continue
        if not policy.may_prune(image):
            plan.unmanaged.append(name)
            continue
        when = created_at(image)
        if image.get("status") != "READY":
            plan.not_ready.append(name)
        elif when is None:
            plan.keep.append(name)
            plan.kept_by[name] = [NO_CREATION_TIME]
        else:
            ready_by_source[source_key(image)].append((when, name, image))
    for source, dated in sorted(ready_by_source.items()):
        dated.sort(key=lambda entry: (-entry[0].timestamp(), entry[1]))  # newest first; ties by name
        _decide_source(plan, source, dated, policy, now)
    plan.keep.sort()
    plan.delete.sort()
    plan.not_ready.sort()
    plan.skipped.sort()
    plan.unmanaged.sort()
    return plan


def _decide_source(
    plan: RetentionPlan,
    source: str,
    dated: list[tuple[datetime, str, Mapping[str, Any]]],
    policy: RetentionPolicy,
    now: datetime,
) -> None:
    """Add one source's decisions to ``plan``: what each rule keeps, the rest deleted, and the guards.

    The guards are the images a counting rule keeps (:data:`~airflow_machine_images.planning.gfs.NEWEST`,
    ``last``, a period): they are what makes the others deletable (the newer images of the same period,
    the more recent periods, the newer images ``keep_last`` counts). An image kept only by ``max_age``
    justifies nothing: were it gone, every other decision would be the same.

    :param plan: the plan being made.
    :param source: the source instance.
    :param dated: its READY images as (creation time, name, entry), newest first.
    :param policy: the policy.
    :param now: the current time (aware).
    """
    reasons = keep_reasons([(when, name) for when, name, _ in dated], policy.counts)
    decision: dict[str, list[str]] = {"keep": [], "delete": []}
    guards: list[str] = []
    for when, name, image in dated:
        kept_by = reasons[name]
        if kept_by:
            guards.append(name)
        if policy.max_age is not None and now - when < policy.max_age:
            kept_by = [*kept_by, MAX_AGE]
        if kept_by:
            decision["keep"].append(name)
            plan.kept_by[name] = kept_by
        else:
            decision["delete"].append(name)
            plan.listed[name] = image
    plan.by_source[source] = decision
    plan.keep.extend(decision["keep"])
    plan.delete.extend(decision["delete"])
    if decision["delete"]:
        plan.guards[source] = guards
        plan.listed.update((name, image) for _, name, image in dated if name in guards)


def changed_since_listed(
    hook: MachineImageReader, project_id: str, listed: Mapping[str, Any], policy: RetentionPolicy
) -> str | None:
    """Read an image again; say how it changed since it was listed, or None if it is as planned on.

    :param hook: reads one image (the sync hook).
    :param project_id: the project.
    :param listed: the entry the plan was made on.
    :param policy: the selector it must still match.
    """
    try:
        current = hook.get_machine_image(name=str(listed.get("name")), project_id=project_id)
    except ResourceNotFoundError:
        return "it is gone"
    return why_changed(listed, current, policy)


def why_changed(listed: Mapping[str, Any], current: Mapping[str, Any], policy: RetentionPolicy) -> str | None:
    """How an image read now differs from the entry it was planned on, or None if it is as planned on.

    Another id under the name (deleted and made again), another status, labels that no longer match the
    selector (or no longer say this package made it) and another creation time all mean the plan no longer
    speaks of this image.

    :param listed: the entry the plan was made on.
    :param current: the image as read now.
    :param policy: the selector it must still match.
    """
    before, now = listed.get("id"), current.get("id")
    if before is None or now is None or str(before) != str(now):
        return f"it was made again (id {now}, listed as {before})"
    if current.get("status") != "READY":
        return f"it is {str(current.get('status'))[:40]}"
    if not policy.selects(current) or not policy.may_prune(current):
        return "its labels no longer match the selector"
    if current.get("creationTimestamp") != listed.get("creationTimestamp"):
        return "its creation time differs"
    return None
