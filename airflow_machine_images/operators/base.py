"""What the operators share: connection settings, key masking, waiting, and the create and delete drivers.

- :class:`ComputeEngineMachineImageBaseOperator`: connection settings, the hook, and the one
  key-masking path (every operator that takes key material names its fields in ``key_fields``).
- :class:`ComputeEngineWaitingBaseOperator`: the waiting arguments (checked when the DAG is parsed),
  the task's deadline across deferrals, the worker's long-poll and the operation trigger.
- :class:`CreateAndWaitBaseOperator` drives :mod:`airflow_machine_images.flows.create` (insert, restore);
  :class:`DeleteAndConfirmBaseOperator` drives :mod:`airflow_machine_images.flows.delete`. A subclass
  only turns its arguments into a request.

DAG files import this module at parse time, so nothing here loads Google, ``requests`` or ``aiohttp``
code: the hook is built (and those libraries loaded) when a task runs.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator, conf

from airflow_machine_images import triggers
from airflow_machine_images.api.timestamps import format_moment
from airflow_machine_images.bodies.keys import key_material_in, parse_key_argument
from airflow_machine_images.compat import mask_secret
from airflow_machine_images.events import error_from_event
from airflow_machine_images.exceptions import (
    OperationFailedError,
    OperationTimeoutError,
    ResubmissionNeeded,
    failing_on_bad_input,
)
from airflow_machine_images.flows import create, delete
from airflow_machine_images.flows.deadlines import Deadline
from airflow_machine_images.flows.resubmission import with_resubmissions
from airflow_machine_images.hooks.connection import ComputeEngineConnectionMixin, connection_template_fields
from airflow_machine_images.validation import validate_bool, validate_optional_positive_int, validate_positive_number

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    import jinja2
    from airflow.providers.common.compat.sdk import Context

    from airflow_machine_images.compat import BaseTrigger
    from airflow_machine_images.exceptions import SourceLimitReached
    from airflow_machine_images.flows.create import CreateRequest, CreateState
    from airflow_machine_images.flows.delete import DeleteRequest

#: What a step after an operation returns (the flow's state).
StateT = TypeVar("StateT")
#: ``if_exists`` of the creating operators: adopt a matching resource, or fail on any.
IF_EXISTS_CHOICES = ("reuse", "fail")
#: The project a reference without one (``ZONE/INSTANCE``) is read in when the DAG is parsed, before the
#: connection's project is known: only the reference's form and parts are checked then.
ANY_PROJECT = "project-of-the-connection"
#: The default of ``deferrable`` for every operator: ``[operators] default_deferrable``.
DEFAULT_DEFERRABLE = conf.getboolean("operators", "default_deferrable", fallback=False)


def context_is_retry(context: Context) -> bool:
    """Whether this is not the task's first try (its ``try_number`` is above 1; unknown counts as the first).

    :param context: the task's context.
    """
    try_number = getattr(context["ti"], "try_number", 1)
    return isinstance(try_number, int) and try_number > 1


class ComputeEngineMachineImageBaseOperator(ComputeEngineConnectionMixin, BaseOperator):
    """Connection settings, the hook, and the masking of key material, shared by every operator of the package.

    :param project_id: the project; defaults to the connection's. Templated.
    :param api_version: ``beta`` or ``v1``.
    :param gcp_conn_id: the Airflow connection to Google Cloud. Templated.
    :param impersonation_chain: service account(s) to impersonate. Templated.
    :param api_endpoint: another API root (e.g. the emulator); defaults to the connection extra
        ``compute_api_endpoint``; it must be one ``[machine_images] allowed_endpoints`` lists.
    """

    template_fields: Sequence[str] = connection_template_fields()
    #: The fields that may hold customer-supplied keys: masked once rendered, and before every execution.
    key_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        *,
        project_id: str | None = None,
        api_version: str = "beta",
        gcp_conn_id: str = "google_cloud_default",
        impersonation_chain: str | Sequence[str] | None = None,
        api_endpoint: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.set_connection(
            project_id=project_id,
            api_version=api_version,
            gcp_conn_id=gcp_conn_id,
            impersonation_chain=impersonation_chain,
            api_endpoint=api_endpoint,
        )

    @property
    def made_from_dag_file(self) -> bool:
        """Whether this operator is being made from its DAG file, as opposed to unmapped from ``.expand()``
        when its task runs: literal arguments are checked in ``__init__`` only then, so a bad one fails the
        DAG file's import. Unmapped values are checked by ``prepare_request``, before any request, and
        fail the task without retries.
        """
        return not getattr(self, "_BaseOperator__from_mapped", False)

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """Render templates, then register any key material with Airflow's secrets masker.

        The task runner stores rendered fields right after this, redacting what the masker knows:
        so keys rendered from templates never reach the rendered-fields table, logs or the UI.
        """
        super().render_template_fields(context, jinja_env)
        self.mask_key_material()

    def mask_key_material(self) -> None:
        """Mask every customer-supplied key (``rawKey``, ``rsaEncryptedKey``) of the ``key_fields``, and read
        the fields that rendered to text back into the dicts and lists they spell.

        The one key-masking path of every operator that takes key material. A field may hold a dict or a
        list (literal, or rendered natively), or text: a templated JSON string, a Variable's text, a
        dict's ``repr`` (:func:`~airflow_machine_images.bodies.keys.parse_key_argument`). Each key is
        registered with the secrets masker in every spelling the text gives it; text that cannot be read
        registers whatever in it is shaped like a key. Text that can be read is replaced by what it
        spells, so the rendered-fields table stores the masked structure and ``prepare_request`` of any
        operator reads a dict; text that cannot be read is left as it is, and its validation error never
        shows it (:func:`~airflow_machine_images.validation.primitives.show_value`).
        """
        for name in self.key_fields:
            value = getattr(self, name, None)
            for secret in key_material_in(value):
                mask_secret(secret)
            parsed = parse_key_argument(value)
            if parsed is not value:
                setattr(self, name, parsed)


class ComputeEngineWaitingBaseOperator(ComputeEngineMachineImageBaseOperator):
    """An operator that waits for what it started: on the worker, or deferred to the triggerer.

    :param wait_for_completion: wait until the work is done; if False, return once it is accepted.
    :param deferrable: wait in the triggerer instead of holding a worker slot.
    :param poll_interval: seconds between checks where polling is needed.
    :param timeout: seconds to wait before failing (one deadline across deferrals).
    :param requests_per_minute_per_project: while deferred, the most requests per minute this wait may
        cost the project across all triggerers, instead of ``[machine_images] requests_per_minute_per_project``
        (None: that).
    """

    #: The task's deadline while it runs (:meth:`start_deadline`).
    _deadline: Deadline

    def __init__(
        self,
        *,
        wait_for_completion: bool = True,
        deferrable: bool = DEFAULT_DEFERRABLE,
        poll_interval: float = 10.0,
        timeout: float = 3600.0,
        requests_per_minute_per_project: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # Not templated, so checked now, when the DAG is parsed.
        self.wait_for_completion = validate_bool(wait_for_completion, "wait_for_completion")
        self.deferrable = validate_bool(deferrable, "deferrable")
        self.poll_interval = validate_positive_number(poll_interval, "poll_interval")
        self.timeout = validate_positive_number(timeout, "timeout")
        self.requests_per_minute_per_project = validate_optional_positive_int(
            requests_per_minute_per_project, "requests_per_minute_per_project"
        )

    def start_deadline(self, event: Mapping[str, Any] | None = None) -> None:
        """Start the task's deadline (``timeout`` from now), or take it up from a trigger's event.

        The hook's retries by cause (quotas, rate limits) stop at it too.

        :param event: the event the task resumes with, if it resumes.
        """
        self._deadline = Deadline.after(self.timeout) if event is None else Deadline.from_event(event, self.timeout)
        self.hook.deadline = self._deadline.at

    def operation_trigger(
        self, operation: Mapping[str, Any] | None, *, project_id: str, zone: str | None, extra: dict[str, Any]
    ) -> triggers.MachineImageOperationTrigger:
        """The trigger that waits for ``operation`` in the triggerer, within the task's deadline.

        :param operation: the operation (its ``name``).
        :param project_id: its project.
        :param zone: its zone (None: global).
        :param extra: what the event hands back unchanged, for resuming.
        """
        return triggers.MachineImageOperationTrigger(
            operation_name=str((operation or {}).get("name")), zone=zone, **self.trigger_settings(project_id, extra)
        )

    def trigger_settings(self, project_id: str, extra: dict[str, Any]) -> dict[str, Any]:
        """The kwargs every trigger of this task takes: project, interval, deadline, budget, connection.

        :param project_id: the project waited in.
        :param extra: what the event hands back unchanged, for resuming.
        """
        return {
            "project_id": project_id,
            "poll_interval": self.poll_interval,
            "deadline": self._deadline.at,
            "event_extra": extra,
            "requests_per_minute_per_project": self.requests_per_minute_per_project,
            **self.connection_kwargs(),
        }

    def defer_to(self, trigger: BaseTrigger, what: str, method_name: str = "execute_complete") -> None:
        """Hand the wait to the triggerer; the task resumes in ``method_name``.

        :param trigger: the trigger.
        :param what: what is waited for, for the log (``"operation operation-1 is DONE"``).
        :param method_name: the method the task resumes in.
        """
        self.log.info("Deferring until %s (checked every %.0f s)", what, self.poll_interval)
        self.defer(trigger=trigger, method_name=method_name, timeout=timedelta(seconds=self._deadline.remaining()))

    def wait_out_operation(
        self,
        operation: Mapping[str, Any] | None,
        *,
        project_id: str,
        zone: str | None = None,
        finished: Callable[[dict[str, Any]], StateT],
        failed: Callable[[OperationFailedError], StateT],
    ) -> StateT:
        """Long-poll ``operation`` here within the task's deadline; hand its end to ``finished`` or ``failed``.

        :param operation: the operation waited for.
        :param project_id: its project.
        :param zone: its zone (None: global).
        :param finished: takes the DONE operation.
        :param failed: takes its failure.
        """
        try:
            done = self.hook.wait_for_operation(
                operation_name=str((operation or {}).get("name")),
                project_id=project_id,
                zone=zone,
                timeout=self._deadline.remaining(),
                max_early_backoff=self.poll_interval,
            )
        except OperationFailedError as failure:
            return failed(failure)
        return finished(done)


class CreateAndWaitBaseOperator(ComputeEngineWaitingBaseOperator):
    """Create one resource exactly once per task instance and wait until it is usable (the create flow).

    A subclass builds the request (:meth:`prepare_request`) and names its console link
    (:meth:`persist_link`); it may wait for the resource in the triggerer (:meth:`resource_trigger`)
    and attach the result to asset events (:meth:`succeeded`). A refusal by the per-source limit is
    waited out within the task's deadline (:meth:`_wait_for_source_limit`), then submitted again.
    """

    #: The per-source-limit waits of this try so far (carried across deferrals in the triggers' events).
    _source_limit_waits: int = 0

    def prepare_request(self, context: Context) -> CreateRequest:
        """Validate every argument and build the request; no request is sent.

        :param context: the task's context.
        :raises MachineImageValidationError: an argument breaks a rule (the message names it).
        """
        raise NotImplementedError

    def persist_link(self, context: Context, request: CreateRequest) -> str:
        """Store the console link of the resource; return its URL."""
        raise NotImplementedError

    def resource_trigger(self, request: CreateRequest, extra: dict[str, Any]) -> BaseTrigger | None:
        """The trigger that waits until the resource is ready, or None to wait on the worker.

        :param request: the request.
        :param extra: what the event hands back unchanged, for resuming.
        """
        return None

    def succeeded(self, context: Context, summary: dict[str, Any]) -> dict[str, Any]:
        """What the task returns once the resource is usable (or accepted): the summary."""
        return summary

    def execute(self, context: Context) -> dict[str, Any]:
        self.mask_key_material()  # also when execute() is called without rendering (tests, custom runners)
        request = self._prepare_or_fail(context)
        console_url = self.persist_link(context, request)
        self.log.info("%s (console: %s)", request.target.announce(request), console_url)
        self.start_deadline()
        return self.succeeded(context, self._create(context, request, first_generation=0))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the triggerer: take up the create where it stands and return the summary.

        :param context: the task's context.
        :param event: the event of the trigger the task deferred to.
        """
        self.mask_key_material()
        request = self._prepare_or_fail(context)
        self.persist_link(context, request)
        self.start_deadline(event)
        extra = event.get("extra") or {}
        self._source_limit_waits = int(extra.get("source_limit_waits", 0))
        if extra.get("waiting_for") == create.WAITING_FOR_SOURCE_LIMIT:
            if event.get("status") != "success":
                raise error_from_event(event)
            generation = int(extra.get("generation", 0))
            return self.succeeded(context, self._create(context, request, first_generation=generation))
        try:
            state = create.resume(self.hook, request, event, self.log)
            summary = self._until_usable(request, state)
        except ResubmissionNeeded as why:
            generation = int((event.get("extra") or {}).get("generation", 0))
            summary = self._create(context, request, first_generation=generation + 1, reason=why)
        return self.succeeded(context, summary)

    def _prepare_or_fail(self, context: Context) -> CreateRequest:
        with failing_on_bad_input():
            return self.prepare_request(context)

    def _create(
        self, context: Context, request: CreateRequest, first_generation: int, reason: ResubmissionNeeded | None = None
    ) -> dict[str, Any]:
        """Submit (again, under a new generation, while the server leaves nothing to use) until usable."""
        is_retry = context_is_retry(context)

        def attempt(generation: int) -> dict[str, Any]:
            state = create.submit(self.hook, request, generation, is_retry=is_retry, log=self.log)
            return self._until_usable(request, state)

        return with_resubmissions(
            attempt,
            first_generation=first_generation,
            what=request.what,
            log=self.log,
            reason=reason,
            wait=self._wait_for_source_limit,
            source_limit_waits=self._source_limit_waits,
        )

    def _wait_for_source_limit(self, refusal: SourceLimitReached, generation: int, waits: int) -> None:
        """Wait until the per-source limit allows the next submission: deferred, or asleep on this worker.

        Never past the task's deadline and never through an Airflow retry: a refusal whose next allowed try
        comes after the deadline fails the task at once, saying when.

        :param refusal: the refusal, with its ``retry_at``.
        :param generation: the generation to submit once allowed.
        :param waits: this try's waits for the limit, this one included.
        :raises OperationTimeoutError: the next allowed try is after the task's deadline.
        """
        self._source_limit_waits = waits
        when, pause = format_moment(refusal.retry_at), refusal.retry_at - time.time()
        if refusal.retry_at > self._deadline.at:
            raise OperationTimeoutError(
                f"{refusal}, after the task's deadline ({format_moment(self._deadline.at)}): raise the task's "
                "timeout to wait for it"
            ) from refusal
        if pause <= 0:
            self.log.info("The per-source limit allows the next try now (since %s)", when)
            return
        self.log.warning(
            "Compute Engine's per-source limit: the next try is allowed at %s (in %.0f s); waiting %s (wait %d)",
            when,
            pause,
            "in the triggerer" if self.deferrable else "on this worker",
            waits,
        )
        if self.deferrable:
            trigger = triggers.SourceLimitWaitTrigger(
                at=refusal.retry_at,
                deadline=self._deadline.at,
                event_extra=create.source_limit_extra(generation, waits),
            )
            self.defer(
                trigger=trigger, method_name="execute_complete", timeout=timedelta(seconds=self._deadline.remaining())
            )
        time.sleep(pause)

    def _until_usable(self, request: CreateRequest, state: CreateState) -> dict[str, Any]:
        """Wait on this worker, or defer to the triggerer, until the resource is usable; the summary.

        With ``wait_for_completion=False`` the summary of the state as it is.
        """
        if state.operation_pending:
            if not self.wait_for_completion:
                return state.summary(request)
            if self.deferrable:
                extra = {**create.trigger_extra(state, waiting_for_resource=False), **self._waits_extra()}
                trigger = self.operation_trigger(
                    state.operation, project_id=request.project_id, zone=request.target.zone, extra=extra
                )
                self.defer_to(trigger, f"operation {(state.operation or {}).get('name')} is DONE")
            waited = state
            state = self.wait_out_operation(
                state.operation,
                project_id=request.project_id,
                zone=request.target.zone,
                finished=lambda op: create.finish_operation(self.hook, request, waited, op, self.log),
                failed=lambda failure: create.on_operation_failed(self.hook, request, waited, failure, self.log),
            )
        if state.resource_pending(request) and self.wait_for_completion:
            extra = {**create.trigger_extra(state, waiting_for_resource=True), **self._waits_extra()}
            waiting = self.resource_trigger(request, extra)
            if self.deferrable and waiting is not None:
                self.defer_to(waiting, f"{request.what} is {request.target.ready_status}")
            state = create.wait_until_usable(
                self.hook,
                request,
                state,
                timeout=self._deadline.remaining(),
                poll_interval=self.poll_interval,
                log=self.log,
            )
        state.count_made(request)
        return state.summary(request)

    def _waits_extra(self) -> dict[str, Any]:
        """The per-source-limit waits so far, for a trigger's ``event_extra`` (none: nothing)."""
        return {"source_limit_waits": self._source_limit_waits} if self._source_limit_waits else {}


class DeleteAndConfirmBaseOperator(ComputeEngineWaitingBaseOperator):
    """Delete one resource exactly once per task instance and confirm it is gone (the delete flow).

    A subclass builds the request (:meth:`prepare_request`).

    :param fail_if_missing: fail when the resource does not exist (default: succeed, nothing to do).
    """

    def __init__(self, *, fail_if_missing: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fail_if_missing = validate_bool(fail_if_missing, "fail_if_missing")

    def prepare_request(self, context: Context) -> DeleteRequest:
        """Validate every argument and build the request; no request is sent.

        :param context: the task's context.
        :raises MachineImageValidationError: an argument breaks a rule (the message names it).
        """
        raise NotImplementedError

    def execute(self, context: Context) -> dict[str, Any]:
        request = self._prepare_or_fail(context)
        self.log.info("Deleting %s %s", request.what, request.target.where(request))
        self.start_deadline()
        return self._delete(context, request, first_generation=0)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the triggerer: confirm the resource is gone (deleting again if it must).

        :param context: the task's context.
        :param event: the operation trigger's event.
        """
        request = self._prepare_or_fail(context)
        self.start_deadline(event)
        try:
            gone = delete.resume(self.hook, request, event, self.log)
        except ResubmissionNeeded as why:
            generation = int((event.get("extra") or {}).get("generation", 0))
            return self._delete(context, request, first_generation=generation + 1, reason=why)
        return delete.finish(self.hook, request, gone, is_retry=context_is_retry(context), log=self.log).summary(
            request
        )

    def _prepare_or_fail(self, context: Context) -> DeleteRequest:
        with failing_on_bad_input():
            return self.prepare_request(context)

    def _delete(
        self, context: Context, request: DeleteRequest, first_generation: int, reason: ResubmissionNeeded | None = None
    ) -> dict[str, Any]:
        is_retry = context_is_retry(context)

        def attempt(generation: int) -> dict[str, Any]:
            started = delete.start_delete(self.hook, request, generation, is_retry=is_retry, log=self.log)
            if not started.deleted and self.fail_if_missing:
                raise AirflowFailException(
                    f"{request.what} does not exist {request.target.where(request)} and fail_if_missing=True"
                )
            if not started.deleted:
                return delete.finish(self.hook, request, started, is_retry=is_retry, log=self.log).summary(request)
            if not self.wait_for_completion:
                return started.summary(request)
            if self.deferrable and started.pending:
                trigger = self.operation_trigger(
                    started.operation,
                    project_id=request.project_id,
                    zone=request.target.zone,
                    extra=delete.trigger_extra(started),
                )
                self.defer_to(trigger, f"delete operation {(started.operation or {}).get('name')} is DONE")
            finished = delete.wait_until_gone(
                self.hook,
                request,
                started,
                timeout=self._deadline.remaining(),
                poll_interval=self.poll_interval,
                log=self.log,
            )
            return delete.finish(self.hook, request, finished, is_retry=is_retry, log=self.log).summary(request)

        return with_resubmissions(
            attempt, first_generation=first_generation, what=request.what, log=self.log, reason=reason
        )
