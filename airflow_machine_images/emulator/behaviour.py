"""What a request meets besides the API's rules: injected faults and the standing options.

:class:`Behaviour` keeps the scripted and random faults (:mod:`.faults`) and the standing options
(:mod:`.options`: quotas, requestId memory, partial lists), and applies them to each request for the
dispatcher: a quota refusal, the fault to inject, a thinned list, an operation warning.
"""

from __future__ import annotations

import random
import threading
from typing import TYPE_CHECKING, Any

from airflow_machine_images.emulator import errors
from airflow_machine_images.emulator.faults import DEFAULT_RANDOM_KINDS, MUTATING_ACTIONS, FaultBook, RandomFaults
from airflow_machine_images.emulator.options import RateQuota, thin_list

if TYPE_CHECKING:
    from collections.abc import Iterable

    from airflow_machine_images.emulator.errors import ApiError
    from airflow_machine_images.emulator.faults import Fault
    from airflow_machine_images.emulator.options import EmulatorOptions
    from airflow_machine_images.emulator.state import ComputeState

__all__ = ["Behaviour"]


class Behaviour:
    """Faults and standing options: the emulator's methods of the same names, and their effect on each request.

    :param state: the shared state (unfinished operations, requestId memory).
    :param options: the standing options to start with.
    :param seed: the emulator's seed (random faults and thinned lists derive theirs from it).
    """

    def __init__(self, state: ComputeState, options: EmulatorOptions, seed: int | None) -> None:
        self._state = state
        self._options = options
        self.seed = seed
        self.faults = FaultBook()
        self._rate_quota = RateQuota()
        self._list_rng = random.Random(None if seed is None else seed + 2)
        self._list_rng_lock = threading.Lock()
        self._random_faults_seeded = 0

    # -- faults ------------------------------------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        """Queue a scripted fault (faults are used in the order they were injected).

        :param fault: the fault.
        """
        self.faults.inject(fault)

    def inject_random(
        self,
        rate: float = 0.3,
        kinds: Iterable[str] = DEFAULT_RANDOM_KINDS,
        actions: Iterable[str] | None = None,
        statuses: Iterable[int] = (500, 503, 429),
        retry_after_seconds: float | None = 1.0,
        slow_seconds: float = 2.0,
        seed: int | None = None,
        error_code: str | None = None,
    ) -> None:
        """Give each eligible request a random fault with probability ``rate`` (replaces earlier settings).

        Per action, a kind is drawn among ``kinds`` that apply: ``early_wait`` only on
        ``globalOperations.wait``, ``operation_error`` only on insert/delete, ``accept_then_drop``
        only on insert/delete/setLabels; ``status``, ``drop`` and ``slow`` on every action.

        :param rate: probability per request.
        :param kinds: the kinds to draw from.
        :param actions: only these actions (None = all).
        :param statuses: statuses for ``status`` faults.
        :param retry_after_seconds: ``Retry-After`` sent with 429/503 (None = none).
        :param slow_seconds: delay of ``slow`` faults.
        :param seed: seed (default: derived from the emulator's seed).
        :param error_code: the code ``operation_error`` faults fail with (None: ``RESOURCE_OPERATION_RATE_EXCEEDED``).
        """
        if seed is None and self.seed is not None:
            self._random_faults_seeded += 1
            seed = self.seed + 1000 * self._random_faults_seeded
        self.faults.set_random(
            RandomFaults(
                rate=rate,
                kinds=tuple(kinds),
                actions=None if actions is None else frozenset(actions),
                statuses=tuple(statuses),
                retry_after_seconds=retry_after_seconds,
                slow_seconds=slow_seconds,
                rng=random.Random(seed),
                error_code=error_code,
            )
        )

    def clear_faults(self) -> None:
        """Drop scripted faults and stop random injection."""
        self.faults.clear()

    def pending_faults(self) -> list[Fault]:
        """:return: scripted faults not used up yet."""
        return self.faults.pending()

    def forget_request_ids(self) -> None:
        """Forget every remembered requestId (the server's memory expired)."""
        self._state.forget_request_ids()

    # -- standing options --------------------------------------------------------------------------

    @property
    def options(self) -> EmulatorOptions:
        """:return: the standing options; a copy."""
        return self._options.updated({})

    def set_options(self, **changes: Any) -> EmulatorOptions:
        """Change standing options (see :mod:`~airflow_machine_images.emulator.options`); others stay.

        :param changes: ``rate_quota_per_minute``, ``rate_quota_window_seconds``,
            ``concurrent_operations_limit``, ``request_id_ttl_seconds``, ``partial_list_fraction``,
            ``partial_list_warning``.
        :return: the options now in force.
        :raises ValueError: an unknown option or a bad value (nothing is changed then).
        """
        options = self._options.updated(changes)
        self._options = options
        self._state.request_id_ttl_seconds = options.request_id_ttl_seconds
        return self.options

    # -- applied to each request -------------------------------------------------------------------

    def quota_refusal(self, action: str, project: str) -> tuple[str, ApiError] | None:
        """The option refusing a request, if any (else the request is counted against the rate quota).

        :param action: the request's action.
        :param project: the path's project ("" when the path names none).
        :return: the option's name (``concurrent_operations_limit`` or ``rate_quota``) and its 403, or None.
        """
        options = self._options
        if not project:
            return None
        if options.concurrent_operations_limit is not None and action in MUTATING_ACTIONS:
            with self._state.session() as now:
                running = sum(1 for op in self._state.operations(project) if op.phase(now)[0] != "DONE")
            if running >= options.concurrent_operations_limit:
                return "concurrent_operations_limit", errors.concurrent_operations(project)
        if not self._rate_quota.admit(project, options.rate_quota_per_minute, options.rate_quota_window_seconds):
            return "rate_quota", errors.rate_limited(project, limit=options.rate_quota_per_minute)
        return None

    def take_fault(self, action: str) -> Fault | None:
        """:param action: the request's action. :return: the fault to inject into it (one use), or None."""
        return self.faults.take(action)

    def thin(self, payload: dict[str, Any], fault: Fault | None) -> bool:
        """Leave items out of a list answer, as a ``partial_list`` fault or the standing option says.

        :param payload: the ``*List`` answer, changed in place.
        :param fault: the request's fault, if any.
        :return: whether the answer was thinned (or warned).
        """
        code: str | None
        if fault is not None and fault.kind == "partial_list":
            fraction, code = fault.omit_fraction, fault.warning_code or "UNREACHABLE"
        else:
            fraction, code = self._options.partial_list_fraction, self._options.partial_list_warning
        if fraction <= 0:
            return False
        with self._list_rng_lock:
            thin_list(payload, fraction, code, self._list_rng)
        return True

    def warn_operation(self, project: str, payload: dict[str, Any], fault: Fault) -> None:
        """Give the operation an ``operation_warning`` fault hit a ``warnings[]`` entry (shown once it is DONE).

        :param project: the request's project.
        :param payload: the Operation answer (given the warning too when already DONE).
        :param fault: the fault.
        """
        warning = {
            "code": fault.warning_code or "NOT_CRITICAL_ERROR",
            "message": fault.warning_message or "A non-critical error occurred; the operation went on.",
            "data": [{"key": "fault", "value": "operation_warning"}],
        }
        with self._state.session():
            operation = self._state.operation(project, str(payload.get("name", "")))
            if operation is not None and not operation.warnings:
                operation.warnings.append(warning)
                if payload.get("status") == "DONE":
                    payload["warnings"] = [dict(warning)]
