"""Scripted and random faults: which request gets which misbehaviour."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from airflow_machine_images.emulator.options import LIST_WARNING_CODES
from airflow_machine_images.emulator.schema import ACTIONS as SCHEMA_ACTIONS

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "ACTIONS",
    "DEFAULT_RANDOM_KINDS",
    "FAULT_KINDS",
    "LIST_ACTIONS",
    "MUTATING_ACTIONS",
    "Fault",
    "FaultBook",
    "RandomFaults",
    "applicable",
    "random_kinds",
]

#: Every API action the emulator answers (as :data:`.schema.ACTIONS` lists them).
ACTIONS: tuple[str, ...] = tuple(SCHEMA_ACTIONS)
#: Actions that change state (the only ones random ``accept_then_drop`` picks).
MUTATING_ACTIONS = frozenset(
    {
        "machineImages.insert",
        "machineImages.delete",
        "machineImages.setLabels",
        "instances.insert",
        "instances.delete",
        "instances.setDeletionProtection",
        "disks.delete",
    }
)
#: Actions whose operation an ``operation_error`` fault can fail.
OPERATION_ERROR_ACTIONS = frozenset(
    {
        "machineImages.insert",
        "machineImages.delete",
        "instances.insert",
        "instances.delete",
        "instances.setDeletionProtection",
        "disks.delete",
    }
)
#: Actions that long-poll an operation (where ``early_wait`` applies).
WAIT_ACTIONS = frozenset({"globalOperations.wait", "zoneOperations.wait"})
FAULT_KINDS: tuple[str, ...] = (
    "status",
    "drop",
    "accept_then_drop",
    "slow",
    "early_wait",
    "operation_error",
    # 403 rateLimitExceeded with error.details, as a per-minute rate quota answers (Compute Engine docs,
    # "API rate limits"); with duration_seconds, every matching request for that long after the first.
    "rate_limit",
    # 403 with ErrorInfo CONCURRENT_OPERATIONS_QUOTA_EXCEEDED (Compute Engine docs, "Operations quota").
    "concurrent_operations",
    # A list answer leaving out omit_fraction of its items, with a warning (UNREACHABLE, PARTIAL_SUCCESS,
    # LIST_OVERHEAD_QUOTA_EXCEED: discovery documents, OperationList/MachineImageList "warning").
    "partial_list",
    # The next new operation carries warnings[] {code, message, data} (discovery: Operation.warnings).
    "operation_warning",
    # An instances.aggregatedList answer whose filter has a labels. term silently leaves out instances it
    # should hold (instance_names, else omit_fraction of them): the blind spot gcloud avoids by never
    # sending label terms ("server side labels matching is currently problematic", its filter_rewrite.py).
    "label_filter_drop",
)
#: Actions whose answers are lists (the only ones a ``partial_list`` fault applies to).
LIST_ACTIONS = frozenset({"machineImages.list", "globalOperations.list", "zoneOperations.list"})
#: Actions whose label-filtered answers a ``label_filter_drop`` fault thins.
LABEL_FILTER_ACTIONS = frozenset({"instances.aggregatedList"})
#: What random injection draws from unless told otherwise (the quota kinds are asked for by name).
DEFAULT_RANDOM_KINDS: tuple[str, ...] = FAULT_KINDS[:6]


def applicable(kind: str, action: str) -> bool:
    """Whether a fault kind means anything for an action (scripted faults skip requests where it does not).

    :param kind: a fault kind.
    :param action: an action name.
    :return: ``early_wait`` only for ``globalOperations.wait``; ``operation_error`` and
        ``operation_warning`` only for insert and delete; ``concurrent_operations`` only for the actions
        that change state; ``partial_list`` only for the list actions; ``label_filter_drop`` only for
        ``instances.aggregatedList``; every other kind for every known action.
    """
    if action not in ACTIONS:
        return False
    if kind == "early_wait":
        return action in WAIT_ACTIONS
    if kind in ("operation_error", "operation_warning"):
        return action in OPERATION_ERROR_ACTIONS
    if kind == "partial_list":
        return action in LIST_ACTIONS
    if kind == "label_filter_drop":
        return action in LABEL_FILTER_ACTIONS
    if kind == "concurrent_operations":
        return action in MUTATING_ACTIONS
    return True


def random_kinds(action: str, kinds: Iterable[str]) -> list[str]:
    """The kinds random injection may pick for an action.

    Like :func:`applicable`, and ``accept_then_drop`` only for actions that change state (on a read
    it would be a plain ``drop``).

    :param action: an action name.
    :param kinds: the kinds allowed by the caller.
    :return: the eligible kinds, in the caller's order.
    """
    return [
        kind
        for kind in kinds
        if applicable(kind, action) and (kind != "accept_then_drop" or action in MUTATING_ACTIONS)
    ]


#: What the service says in an operation's ``error.errors[].message`` for a code, where a source quotes it.
#: RESOURCE_OPERATION_RATE_EXCEEDED: "Operation rate exceeded for resource ... Too frequent operations from
#: the source resource" (googleapis/python-compute issue 279, COMPUTE_ENGINE_NOTES "Operations").
_OPERATION_ERROR_MESSAGES: dict[str, str] = {
    "RESOURCE_OPERATION_RATE_EXCEEDED": (
        "Operation rate exceeded for the resource. Too frequent operations from the source resource."
    ),
}


def operation_error_message(code: str) -> str:
    """The message of an operation that failed with ``code``: the service's wording where a source gives it,
    else one that only names the code (the emulator does not invent the service's wording for other codes).

    :param code: ``error.errors[].code``, e.g. ``QUOTA_EXCEEDED``.
    """
    return _OPERATION_ERROR_MESSAGES.get(code, f"The operation failed: {code}.")


@dataclass
class Fault:
    """A scripted misbehaviour for the next matching request(s).

    :param kind: one of :data:`FAULT_KINDS` (``status``, ``drop``, ``operation_error``, ``label_filter_drop``, ...).
    :param action: only requests of this action (None = any action the kind applies to).
    :param times: how many matching requests it hits (None = every one).
    :param status: the HTTP status of a ``status`` fault.
    :param retry_after_seconds: a ``status`` fault's ``Retry-After`` (rounded up to whole seconds).
    :param delay_seconds: how long a ``slow`` fault holds the answer back after doing the work.
    :param error_code: ``error.errors[].code`` of a failed operation (``operation_error``).
    :param error_message: ``error.errors[].message`` of a failed operation (None: the message the service
        words for ``error_code``, :func:`operation_error_message`).
    :param http_error_status_code: ``httpErrorStatusCode`` of a failed operation.
    :param duration_seconds: the fault hits every matching request for this long after its first hit
        (``times`` is then ignored): a rate-limit window that refills when it ends.
    :param http_error_message: ``httpErrorMessage`` of a failed operation (None: the status's phrase).
    :param omit_fraction: the share of a ``partial_list`` answer's items left out (0 < x < 1; at least one item).
    :param warning_code: a ``partial_list`` answer's ``warning.code`` (default ``UNREACHABLE``), or the
        ``warnings[].code`` of an ``operation_warning`` (default ``NOT_CRITICAL_ERROR``).
    :param warning_message: an ``operation_warning``'s message (None: a default).
    :param instance_names: the instances a ``label_filter_drop`` fault leaves out of a label-filtered
        answer (None: ``omit_fraction`` of those the answer should hold, at least one).
    """

    kind: str
    action: str | None = None
    times: int | None = 1
    status: int = 503
    retry_after_seconds: float | None = None
    delay_seconds: float = 0.0
    error_code: str = "RESOURCE_OPERATION_RATE_EXCEEDED"
    error_message: str | None = None
    http_error_status_code: int = 400
    duration_seconds: float | None = None
    http_error_message: str | None = None
    omit_fraction: float = 0.3
    warning_code: str | None = None
    warning_message: str | None = None
    instance_names: list[str] | None = None

    def __post_init__(self) -> None:
        """Reject faults that could never fire."""
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"Fault kind {self.kind!r} is not one of {', '.join(FAULT_KINDS)}")
        if self.action is not None and self.action not in ACTIONS:
            raise ValueError(f"Fault action {self.action!r} is not one of {', '.join(ACTIONS)}")
        if self.action is not None and not applicable(self.kind, self.action):
            raise ValueError(f"A {self.kind!r} fault cannot apply to {self.action}")
        if self.times is not None and self.times < 1:
            raise ValueError("Fault times must be at least 1 (or None for every matching request)")
        if not 100 <= self.status <= 599:
            raise ValueError(f"Fault status {self.status} is not an HTTP error status")
        if self.delay_seconds < 0:
            raise ValueError("Fault delay_seconds must not be negative")
        if self.duration_seconds is not None and self.duration_seconds <= 0:
            raise ValueError("Fault duration_seconds must be positive")
        if not 0.0 < self.omit_fraction < 1.0:
            raise ValueError("Fault omit_fraction must be above 0 and below 1")
        if self.instance_names is not None and (
            not isinstance(self.instance_names, list) or not all(isinstance(n, str) for n in self.instance_names)
        ):
            raise ValueError("Fault instance_names must be a list of instance names")
        if self.kind == "partial_list" and self.warning_code not in (None, *LIST_WARNING_CODES):
            raise ValueError(f"A partial_list fault's warning_code must be one of {', '.join(LIST_WARNING_CODES)}")

    def operation_error_message(self) -> str:
        """:return: the message of the failed operation: ``error_message``, else the one for ``error_code``."""
        return self.error_message if self.error_message is not None else operation_error_message(self.error_code)

    def matches(self, action: str) -> bool:
        """:param action: the request's action. :return: whether this fault hits it."""
        return (self.action is None or self.action == action) and applicable(self.kind, action)

    def to_json(self) -> dict[str, Any]:
        """:return: the fault as JSON (the body ``POST /_emulator/faults`` takes)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        """Build a fault from ``POST /_emulator/faults`` JSON.

        :param data: the dataclass fields by name.
        :return: the fault.
        :raises ValueError: on unknown fields or values.
        """
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"Unknown Fault fields: {', '.join(sorted(unknown))}")
        return cls(**data)


@dataclass
class RandomFaults:
    """Settings of random fault injection (see ``ComputeEngineEmulator.inject_random``).

    :param rate: the chance that an eligible request gets a fault.
    :param kinds: the kinds to choose from.
    :param actions: only these actions (None = all).
    :param statuses: the statuses a ``status`` fault picks from.
    :param retry_after_seconds: ``Retry-After`` sent with 429 and 503 (None = no header).
    :param slow_seconds: how long ``slow`` faults hold answers back.
    :param rng: the random source.
    :param error_code: the code ``operation_error`` faults fail operations with (None: the Fault default,
        ``RESOURCE_OPERATION_RATE_EXCEEDED``).
    """

    rate: float
    kinds: tuple[str, ...]
    actions: frozenset[str] | None
    statuses: tuple[int, ...]
    retry_after_seconds: float | None
    slow_seconds: float
    rng: random.Random = field(default_factory=random.Random)
    error_code: str | None = None

    def __post_init__(self) -> None:
        """Reject settings that make no sense."""
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        bad = [kind for kind in self.kinds if kind not in FAULT_KINDS]
        if bad:
            raise ValueError(f"Unknown fault kinds: {', '.join(bad)}")
        if self.actions is not None and not self.actions <= set(ACTIONS):
            raise ValueError(f"Unknown actions: {', '.join(sorted(self.actions - set(ACTIONS)))}")
        if "status" in self.kinds and not self.statuses:
            raise ValueError("statuses must not be empty when 'status' is a kind")


class FaultBook:
    """Hands out faults: scripted ones first, in order of injection, then random ones."""

    def __init__(self) -> None:
        """Start with no faults."""
        self._lock = threading.Lock()
        self._scripted: list[Fault] = []
        self._random: RandomFaults | None = None
        self._spent: list[Fault] = []
        self._until: dict[int, float] = {}

    def inject(self, fault: Fault) -> None:
        """:param fault: queue a copy of a scripted fault behind those already queued."""
        with self._lock:
            self._scripted.append(replace(fault))

    def set_random(self, settings: RandomFaults | None) -> None:
        """:param settings: random injection settings (None = off)."""
        with self._lock:
            self._random = settings

    def clear(self) -> None:
        """Drop every scripted fault and turn random injection off."""
        with self._lock:
            self._scripted.clear()
            self._random = None

    def pending(self) -> list[Fault]:
        """:return: the scripted faults not yet used up."""
        with self._lock:
            return list(self._scripted)

    def give_back(self, fault: Fault) -> None:
        """Return one use of a scripted fault that had no effect, to the front of the queue.

        An ``operation_error`` fault fails the next *new* operation: a request the server answers by
        replaying a remembered requestId makes none, so the fault waits for the next one.

        :param fault: a fault :meth:`take` returned.
        """
        with self._lock:
            if any(f is fault for f in self._scripted):
                if fault.times is not None:
                    fault.times += 1
            elif any(f is fault for f in self._spent):
                self._spent = [f for f in self._spent if f is not fault]
                fault.times = 1
                self._scripted.insert(0, fault)

    def take(self, action: str) -> Fault | None:
        """The fault for a request, consuming one use of a scripted fault.

        :param action: the request's action.
        :return: the fault to apply, or None.
        """
        with self._lock:
            now = time.monotonic()
            for index, fault in enumerate(self._scripted):
                if fault.matches(action):
                    if fault.duration_seconds is not None:
                        until = self._until.setdefault(id(fault), now + fault.duration_seconds)
                        if now < until:
                            return fault
                        del self._scripted[index]
                        del self._until[id(fault)]
                        break
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            del self._scripted[index]
                            self._spent = [*self._spent[-63:], fault]
                    return fault
            settings = self._random
            if settings is None or action not in ACTIONS:
                return None
            if settings.actions is not None and action not in settings.actions:
                return None
            if settings.rng.random() >= settings.rate:
                return None
            kinds = random_kinds(action, settings.kinds)
            if not kinds:
                return None
            kind = settings.rng.choice(kinds)
            status = settings.rng.choice(settings.statuses) if kind == "status" else 503
            fault = Fault(
                kind=kind,
                action=action,
                status=status,
                retry_after_seconds=settings.retry_after_seconds if status in (429, 503) else None,
                delay_seconds=settings.slow_seconds,
            )
            if settings.error_code is not None:
                fault.error_code = settings.error_code
            return fault
