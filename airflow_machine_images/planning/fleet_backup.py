"""Planning a fleet backup: which instance gets which image, and what the outcomes mean. Pure, no I/O.

The fleet backup operator (:mod:`airflow_machine_images.operators.fleet_backup`) backs up many
instances in one task. What it decides without asking the API lives here:

* which instances (:func:`read_instances`: the list operator's XCom, or references as text), and
  the image each one gets (:func:`plan_backups`, from a per-instance name template);
* the outcome of each instance (``succeeded``, ``failed``, or ``deferred`` to the next run when the
  per-source limit refused it: the create flow recognises that refusal,
  :mod:`airflow_machine_images.flows.source_limit`);
* whether the task succeeds (:class:`FleetPolicy`: any failure fails it, or a minimum share of
  instances backed up);
* when the triggerer may hand the run back (:class:`RunProgress`, over the run's images listed by label).
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.validation import InstanceRef, parse_source_instance, validate_machine_image_name
from airflow_machine_images.validation.primitives import show_value

__all__ = [
    "DEFAULT_IMAGE_NAME",
    "DEFERRED",
    "FAILED",
    "FINAL_STATUSES",
    "PENDING",
    "SUCCEEDED",
    "BackupItem",
    "FleetPolicy",
    "RunProgress",
    "check_image_name_template",
    "plan_backups",
    "read_instances",
    "render_image_name",
]

#: The default image name: the instance, this task instance's run token, 6 hex digits of the instance's path.
DEFAULT_IMAGE_NAME: Final = "{instance}-{run}-{hash}"
#: What an image name template may say, besides literal text.
PLACEHOLDERS: Final = ("instance", "zone", "project", "hash", "run")
_PLACEHOLDER_PATTERN: Final = r"\{([^{}]*)\}"

#: Outcomes of one instance: an image READY, not backed up (failed), or left to the next run (deferred).
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
DEFERRED: Final = "deferred"
#: Not finished yet (the insert's operation is running, or the instance is still to be submitted).
PENDING: Final = "pending"
FINAL_STATUSES: Final = frozenset({SUCCEEDED, FAILED, DEFERRED})
#: ``fail_on`` values: any failure fails the task, or a share of instances backed up below ``min_success_fraction``.
FAIL_ON_CHOICES: Final = ("any", "fraction")
#: Image statuses on the way to READY (MachineImage ``status`` in the discovery documents).
CREATING_STATUSES: Final = frozenset({"CREATING", "UPLOADING"})


@dataclass(frozen=True)
class BackupItem:
    """One instance and the machine image it gets.

    :param source: the instance.
    :param image: the image's name.
    """

    source: InstanceRef
    image: str

    @property
    def instance(self) -> str:
        """The instance as ``projects/P/zones/Z/instances/I`` (the key of every row)."""
        return self.source.partial_url


def read_instances(value: object, default_project: str, parameter: str = "instances") -> list[InstanceRef]:
    """The instances to back up, from the list operator's XCom or references, sorted and without repeats.

    :param value: a list of the list operator's dicts (``source_instance``), of this operator's rows
        (``instance``), or of references (``ZONE/NAME``, ``projects/P/zones/Z/instances/I``, a URL); or
        that list as rendered text (JSON, or a Python literal).
    :param default_project: the project of ``ZONE/NAME`` references.
    :param parameter: the argument named in errors.
    :raises MachineImageValidationError: not a list, or an entry that names no instance.
    """
    if isinstance(value, str):
        value = _parse_text(value, parameter)
    if isinstance(value, Mapping) or not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise MachineImageValidationError(
            parameter, "must be a list of instances (the list operator's XCom, or references)", show_value(value)
        )
    refs: dict[str, InstanceRef] = {}
    for index, entry in enumerate(value):
        where = f"{parameter}[{index}]"
        if isinstance(entry, Mapping):
            entry = entry.get("source_instance", entry.get("instance"))
        ref = parse_source_instance(entry, default_project=default_project, parameter=where)
        refs.setdefault(ref.partial_url, ref)
    return [refs[key] for key in sorted(refs)]


def _parse_text(text: str, parameter: str) -> object:
    """A list rendered to text by a template: JSON, else a Python literal (``str()`` of a list)."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise MachineImageValidationError(parameter, "must be a list of instances", show_value(text)) from None


def check_image_name_template(template: object, parameter: str = "image_name") -> str:
    """Check that a template uses only the known placeholders (``{instance}``, ``{zone}``, ``{project}``,
    ``{hash}``, ``{run}``); Jinja's ``{{ ... }}`` is rendered before this.

    :param template: the template.
    :param parameter: the argument named in errors.
    """
    if not isinstance(template, str) or not template.strip():
        raise MachineImageValidationError(parameter, "must be a non-empty text", show_value(template))
    unknown = sorted({m for m in re.findall(_PLACEHOLDER_PATTERN, template) if m not in PLACEHOLDERS})
    if unknown:
        raise MachineImageValidationError(
            parameter,
            f"may only use the placeholders {', '.join('{' + p + '}' for p in PLACEHOLDERS)}",
            show_value(template),
        )
    return template


def render_image_name(template: str, source: InstanceRef, run: str, parameter: str = "image_name") -> str:
    """The image name of ``source``: the placeholders filled in, the instance name cut to fit 63 characters.

    :param template: a checked template (:func:`check_image_name_template`).
    :param source: the instance.
    :param run: the run token (the first 8 hex digits of the task-instance key).
    :param parameter: the argument named in errors.
    :raises MachineImageValidationError: the result is no valid machine image name.
    """
    values = {
        "zone": source.zone,
        "project": source.project,
        "hash": hashlib.sha256(source.partial_url.encode()).hexdigest()[:6],
        "run": run,
    }
    rest = re.sub(_PLACEHOLDER_PATTERN, lambda m: values.get(m.group(1), m.group(0)), template)
    room = 63 - (len(rest) - rest.count("{instance}") * len("{instance}"))
    instance = source.instance[: max(1, room // max(1, rest.count("{instance}")))].rstrip("-")
    name = rest.replace("{instance}", instance)
    try:
        return validate_machine_image_name(name, parameter)
    except MachineImageValidationError:
        raise MachineImageValidationError(
            parameter, f"gives {name!r} for instance {source.partial_url}, which is no valid machine image name"
        ) from None


def plan_backups(sources: Sequence[InstanceRef], template: str, run: str) -> list[BackupItem]:
    """One image per instance, in the order given.

    :param sources: the instances (no repeats).
    :param template: the image name template.
    :param run: the run token.
    :raises MachineImageValidationError: a name is invalid, or two instances would get the same name.
    """
    items: list[BackupItem] = []
    owners: dict[str, str] = {}
    for source in sources:
        name = render_image_name(template, source, run)
        if name in owners:
            raise MachineImageValidationError(
                "image_name",
                f"gives {name!r} for both {owners[name]} and {source.partial_url}; add {{hash}} or {{zone}}",
            )
        owners[name] = source.partial_url
        items.append(BackupItem(source, name))
    return items


@dataclass(frozen=True)
class FleetPolicy:
    """Whether a fleet backup succeeded.

    :param fail_on: ``"any"``: any failed instance fails the task; ``"fraction"``: the task fails when
        the share of instances backed up is below ``min_success_fraction``. Deferred instances (the
        per-source limit) are no failures: the next run backs them up.
    :param min_success_fraction: the least share of succeeded among succeeded and failed (0 < x <= 1).
    """

    fail_on: str = "any"
    min_success_fraction: float = 1.0

    def verdict(self, counts: Mapping[str, int]) -> str | None:
        """Why the task fails, or None if it succeeds.

        :param counts: instances per outcome.
        """
        succeeded, failed = counts.get(SUCCEEDED, 0), counts.get(FAILED, 0)
        if self.fail_on == "any":
            return f"{failed} instance(s) failed (fail_on='any')" if failed else None
        decided = succeeded + failed
        share = succeeded / decided if decided else 1.0
        if share < self.min_success_fraction:
            return (
                f"{succeeded} of {decided} instance(s) backed up ({share:.1%}), below min_success_fraction "
                f"{self.min_success_fraction:.1%}"
            )
        return None


@dataclass
class RunProgress:
    """What the triggerer knows of one run's images, from lists of the images carrying its label.

    The trigger hands the run back to the task once no image of it is on the way to READY and either
    the run's images account for every insert it waits for (``expected``) or the lists have said the
    same for ``settle_cycles`` cycles in a row (an insert that failed before any list saw its image
    leaves nothing to count). Refill rounds hand back earlier, once at most ``pending_at_most`` are
    on the way. A list that warns of missing items is no evidence either way; after
    ``max_warned_cycles`` of them in a row the run is handed back all the same. The task reads the
    exact outcomes itself (and defers again if anything is still on the way), so handing back early
    costs a look, never a wrong result.

    :param expected: images the run expects to see (READY ones already made included).
    :param pending_at_most: hand back once this few are on the way (0: only when none is).
    :param settle_cycles: cycles with nothing on the way and nothing new before handing back anyway.
    :param max_warned_cycles: warned lists in a row before handing back for the task to look by name.
    """

    expected: int
    pending_at_most: int = 0
    settle_cycles: int = 2
    max_warned_cycles: int = 6
    seen: dict[str, str] = field(default_factory=dict)
    quiet_cycles: int = 0
    warned_cycles: int = 0
    pending: int = 0

    def take(self, images: Mapping[str, str], complete: bool) -> bool:
        """Take one listing (image name -> status); whether the run may be handed back now.

        An image that was on the way and is gone failed (a failed insert leaves no image): it stays
        counted among those seen.

        :param images: the run's images this cycle listed.
        :param complete: the listing carried no warning that items may be missing.
        """
        known = len(self.seen)
        self.seen.update(images)
        self.pending = sum(1 for status in images.values() if status in CREATING_STATUSES)
        if not complete:  # a partial list is no evidence that nothing is on the way
            self.quiet_cycles, self.warned_cycles = 0, self.warned_cycles + 1
            return self.warned_cycles >= self.max_warned_cycles
        self.warned_cycles = 0
        if self.pending_at_most and self.pending <= self.pending_at_most:
            return True
        if self.pending:
            self.quiet_cycles = 0
            return False
        self.quiet_cycles = self.quiet_cycles + 1 if len(self.seen) == known else 1
        return len(self.seen) >= self.expected or self.quiet_cycles >= self.settle_cycles
