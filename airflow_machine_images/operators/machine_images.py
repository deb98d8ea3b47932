"""Operators for Compute Engine machine images: create, delete, and prune by a retention policy.

DAG files import this module at parse time, so nothing here loads Google, ``requests`` or
``aiohttp`` code: the hook is built (and those libraries loaded) when a task runs. The steps of a
create live in :mod:`airflow_machine_images.flows.machine_image`, those of a delete in
:mod:`airflow_machine_images.flows.delete`; the operators hold the submission loop and decide whether
to wait on the worker or defer to the triggerer.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseOperator

from airflow_machine_images.api.list_warnings import ListWarning, describe_all, partial_warnings
from airflow_machine_images.api.schema import machine_image_schemas
from airflow_machine_images.assets import record_outlet_events
from airflow_machine_images.bodies.keys import key_material_in, parse_key_argument
from airflow_machine_images.bodies.labels import default_labels, merge_default_labels
from airflow_machine_images.bodies.machine_image import build_machine_image_body
from airflow_machine_images.compat import AirflowFailException, conf, mask_secret, timezone
from airflow_machine_images.events import error_from_event
from airflow_machine_images.exceptions import (
    ComputeEngineError,
    ComputeEngineRetentionError,
    MachineImageValidationError,
    OperationFailedError,
    PartialListingError,
    ResubmissionNeeded,
    failing_on_bad_input,
)
from airflow_machine_images.flows import delete as deletion
from airflow_machine_images.flows import machine_image as insert_flow
from airflow_machine_images.flows.deadlines import Deadline
from airflow_machine_images.flows.machine_image import InsertRequest, InsertState
from airflow_machine_images.flows.request_ids import (
    RequestIds,
    TaskInstanceIdentity,
    task_instance_key,
    with_resubmissions,
)
from airflow_machine_images.hooks.connection import ComputeEngineConnectionMixin, connection_template_fields
from airflow_machine_images.links import MachineImageLink
from airflow_machine_images.planning.retention import (
    RetentionPlan,
    RetentionPolicy,
    changed_since_listed,
    plan_retention,
)
from airflow_machine_images.results import retention_summary
from airflow_machine_images.triggers.waits import MachineImageOperationTrigger, MachineImageStatusTrigger
from airflow_machine_images.validation import (
    coerce_rendered_bool,
    parse_source_instance,
    split_label_selector,
    validate_bool,
    validate_choice,
    validate_labels,
    validate_machine_image_name,
    validate_optional_bool,
    validate_optional_positive_int,
    validate_positive_int,
    validate_positive_number,
    validate_request_id,
)
from airflow_machine_images.validation.templates import is_templated

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    import jinja2
    from airflow.sdk import Context

__all__ = [
    "ComputeEngineDeleteMachineImageOperator",
    "ComputeEngineInsertMachineImageOperator",
    "ComputeEngineMachineImageBaseOperator",
    "ComputeEngineMachineImageRetentionOperator",
    "ComputeEngineRetentionError",
]

IF_EXISTS_CHOICES = ("reuse", "fail")
#: What a create flow's step returns (its state after the operation ended).
StateT = TypeVar("StateT")


class ComputeEngineMachineImageBaseOperator(ComputeEngineConnectionMixin, BaseOperator):
    """Connection settings and the hook, shared by the machine-image operators.

    :param project_id: the project; defaults to the connection's. Templated.
    :param api_version: ``beta`` or ``v1``.
    :param gcp_conn_id: the Airflow connection to Google Cloud. Templated.
    :param impersonation_chain: service account(s) to impersonate. Templated.
    :param api_endpoint: another API root (e.g. the emulator); defaults to the connection extra
        ``compute_api_endpoint``. Templated.
    """

    template_fields: Sequence[str] = connection_template_fields()

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


class CreateAndWaitBaseOperator(ComputeEngineMachineImageBaseOperator):
    """The steps the creating operators (machine image insert, restore) share: resubmission and the worker's wait.

    A subclass sets ``poll_interval`` and, for each execution, ``_deadline``.
    """

    poll_interval: float
    _deadline: Deadline

    def _submit_until_usable(
        self,
        context: Context,
        attempt: Callable[[int, bool], dict[str, Any]],
        *,
        first_generation: int,
        what: str,
        reason: ResubmissionNeeded | None = None,
    ) -> dict[str, Any]:
        """Run ``attempt(generation, is_retry)``, again under a new generation while the server leaves nothing to use.

        :param context: the task's context (its try number tells a retry).
        :param attempt: one submission and wait; returns the summary.
        :param first_generation: the generation to submit under first.
        :param what: the resource, for the log (``Machine image NAME``).
        :param reason: why a resumed task starts a new generation, if it does.
        """
        is_retry = int(getattr(context["ti"], "try_number", 1) or 1) > 1
        return with_resubmissions(
            lambda generation: attempt(generation, is_retry),
            first_generation=first_generation,
            what=what,
            log=self.log,
            reason=reason,
        )

    def _wait_out_operation(
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


class ComputeEngineInsertMachineImageOperator(CreateAndWaitBaseOperator):
    """Create a machine image of a Compute Engine instance, exactly once per task instance.

    The insert carries a ``requestId`` derived from the task instance (DAG, task, run, map index and
    image name; never the try number), so an Airflow retry, a cleared task or a crashed worker sends
    the same id and the server answers with the original operation instead of making a second image.
    After the operation is DONE the image is read back: only a READY image from the requested source
    counts as success.

    .. seealso::
        https://cloud.google.com/compute/docs/reference/rest/beta/machineImages/insert

    :param name: the new image's name (``[a-z]([-a-z0-9]{0,61}[a-z0-9])?``). Templated.
    :param source_instance: the instance to image: ``ZONE/INSTANCE``, ``projects/P/zones/Z/instances/I``
        or a full URL. Templated.
    :param project_id: the project the image is created in; defaults to the connection's. Templated.
    :param description: the image description. Templated.
    :param labels: labels for the image (lowercase keys and values, ``[a-z0-9_-]``, at most 63
        characters). They win over the default labels. Templated.
    :param storage_locations: Cloud Storage location of the image, e.g. ``["us"]``. Templated.
    :param guest_flush: ask the guest OS to flush buffers first (application-consistent image).
    :param machine_image_encryption_key: CustomerEncryptionKey for the image (``kmsKeyName``, or a
        customer-supplied ``rawKey``/``rsaEncryptedKey``). Templated; key material is masked in logs and
        rendered fields and never returned.
    :param source_disk_encryption_keys: keys of source disks protected by customer-supplied keys.
        Templated; masked like ``machine_image_encryption_key``.
    :param machine_image_params: the MachineImage ``params`` field (``resourceManagerTags``,
        ``includedDisks``, ``excludedDisks``). Named so because ``params`` is Airflow's. Templated.
    :param body: any other MachineImage fields; unknown or output-only fields are rejected before any
        request. Templated.
    :param request_id: a fixed requestId (UUID) instead of the task-derived one. Templated.
    :param if_exists: ``"reuse"``: an existing image of that name from the same source instance is
        success (waited for if still CREATING), one from another source fails naming both;
        ``"fail"``: any existing image fails the task, except one an earlier try of this same task
        instance made (recognised by its ``airflow-ti`` label).
    :param add_default_labels: add ``managed-by: airflow``, ``airflow-dag``, ``airflow-task`` and
        ``airflow-ti`` (the task-instance key) labels, which retention can select on.
    :param api_version: ``beta`` or ``v1``.
    :param wait_for_completion: wait until the image is READY; if False, return once the insert is
        accepted (wait with :class:`~airflow_machine_images.sensors.ComputeEngineMachineImageOperationSensor`).
    :param deferrable: wait in the triggerer instead of holding a worker slot.
    :param poll_interval: seconds between status reads where polling is needed.
    :param timeout: seconds to wait for the image before failing.
    :param requests_per_minute_per_project: while deferred, the most requests per minute this wait may
        cost the project across all triggerers, instead of ``[machine_images] requests_per_minute_per_project``
        (None: that); waits on one project share a poller, which keeps to the smallest budget among them.
    :param gcp_conn_id: the Airflow connection to Google Cloud. Templated.
    :param impersonation_chain: service account(s) to impersonate. Templated.
    :param api_endpoint: another API root (e.g. the emulator); defaults to the connection extra
        ``compute_api_endpoint``. Templated.

    Declare ``outlets=[machine_image_asset(...)]`` (:mod:`airflow_machine_images.assets`) to emit
    an asset event per image, with its self link, source instance, size and request id as extra.
    """

    template_fields: Sequence[str] = connection_template_fields(
        "name",
        "source_instance",
        "description",
        "labels",
        "storage_locations",
        "machine_image_encryption_key",
        "source_disk_encryption_keys",
        "machine_image_params",
        "body",
        "request_id",
    )
    template_fields_renderers = {"labels": "json", "body": "json", "machine_image_params": "json"}
    ui_color = "#d9e8fb"
    operator_extra_links = (MachineImageLink(),)
    #: :class:`MachineImageLink` reads the URL from the running operator (see its ``get_link``).
    records_console_url = True

    def __init__(
        self,
        *,
        name: str,
        source_instance: str,
        description: str | None = None,
        labels: dict[str, str] | None = None,
        storage_locations: list[str] | None = None,
        guest_flush: bool | None = None,
        machine_image_encryption_key: dict[str, str] | None = None,
        source_disk_encryption_keys: list[dict[str, Any]] | None = None,
        machine_image_params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        request_id: str | None = None,
        if_exists: str = "reuse",
        add_default_labels: bool = True,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 10.0,
        timeout: float = 7200.0,
        requests_per_minute_per_project: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.source_instance = source_instance
        self.description = description
        self.labels = labels
        self.storage_locations = storage_locations
        self.guest_flush = validate_optional_bool(guest_flush, "guest_flush")
        self.machine_image_encryption_key = machine_image_encryption_key
        self.source_disk_encryption_keys = source_disk_encryption_keys
        self.machine_image_params = machine_image_params
        self.body = body
        self.request_id = request_id
        # Arguments that are not templated are checked now, when the DAG is parsed.
        self.if_exists = validate_choice(if_exists, "if_exists", IF_EXISTS_CHOICES)
        self.add_default_labels = validate_bool(add_default_labels, "add_default_labels")
        self.wait_for_completion = validate_bool(wait_for_completion, "wait_for_completion")
        self.deferrable = validate_bool(deferrable, "deferrable")
        self.poll_interval = validate_positive_number(poll_interval, "poll_interval")
        self.timeout = validate_positive_number(timeout, "timeout")
        self.requests_per_minute_per_project = validate_optional_positive_int(
            requests_per_minute_per_project, "requests_per_minute_per_project"
        )

    # ------------------------------------------------------------------ secrets

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """Render templates, then register any key material with Airflow's secrets masker.

        The task runner stores rendered fields right after this, redacting what the masker knows:
        so keys rendered from templates never reach the rendered-fields table, logs or the UI.
        """
        super().render_template_fields(context, jinja_env)
        self.mask_key_material()

    def mask_key_material(self) -> None:
        """Mask every customer-supplied key (``rawKey``, ``rsaEncryptedKey``) in logs and rendered fields."""
        for secret in key_material_in(self.machine_image_encryption_key, self.source_disk_encryption_keys, self.body):
            mask_secret(secret)

    # ------------------------------------------------------------------ preparation

    def prepare_request(self, context: Context) -> InsertRequest:
        """Validate every argument and build the MachineImage body; no request is sent.

        :param context: the task's context (the task instance names the default labels).
        :raises MachineImageValidationError: an argument breaks a rule (the message names it).
        """
        name = validate_machine_image_name(self.name)
        request_id = validate_request_id(self.request_id) if self.request_id is not None else None
        identity = TaskInstanceIdentity.of(context["ti"])
        given_labels, labels_parameter, extra_body = self.labels, "labels", parse_key_argument(self.body)
        if given_labels is None and isinstance(extra_body, dict) and "labels" in extra_body:
            # Labels given in ``body``: the default labels join them, as they join the labels argument.
            given_labels, labels_parameter = extra_body["labels"], "body.labels"
            extra_body = {key: value for key, value in extra_body.items() if key != "labels"}
        labels = validate_labels(given_labels if given_labels is not None else {}, labels_parameter)
        if self.add_default_labels:
            labels = merge_default_labels(labels, default_labels(identity))
        project_id = self.resolve_project_id()
        source = parse_source_instance(self.source_instance, default_project=project_id)
        body = build_machine_image_body(
            name=name,
            source_instance=source,
            description=self.description,
            labels=labels or None,
            storage_locations=self.storage_locations,
            guest_flush=self.guest_flush,
            machine_image_encryption_key=parse_key_argument(self.machine_image_encryption_key),  # type: ignore[arg-type]
            source_disk_encryption_keys=parse_key_argument(self.source_disk_encryption_keys),  # type: ignore[arg-type]
            machine_image_params=self.machine_image_params,
            body=extra_body,  # type: ignore[arg-type]  # checked by the builder
            schemas=machine_image_schemas(self.api_version),
        )
        return InsertRequest(
            project_id=project_id,
            name=name,
            source=source,
            body=body,
            request_ids=RequestIds(identity, project_id, name, "insert", fixed=request_id),
            owner_key=task_instance_key(identity),
            if_exists=self.if_exists,
        )

    def _prepare_or_fail(self, context: Context) -> InsertRequest:
        with failing_on_bad_input():
            return self.prepare_request(context)

    # ------------------------------------------------------------------ execution

    def execute(self, context: Context) -> dict[str, Any]:
        self.mask_key_material()  # also when execute() is called without rendering (tests, custom runners)
        request = self._prepare_or_fail(context)
        console_url = MachineImageLink.persist(context, self, project_id=request.project_id, name=request.name)
        self.log.info(
            "Creating machine image %s in project %s from %s (console: %s)",
            request.name,
            request.project_id,
            request.source.partial_url,
            console_url,
        )
        self._deadline = Deadline.after(self.timeout)
        self.hook.deadline = self._deadline.at  # retries by cause stop at the task's deadline
        return self._succeeded(context, self._create(context, request, first_generation=0))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the triggerer: take up the create where it stands and return the summary.

        :param context: the task's context.
        :param event: the event of :class:`~airflow_machine_images.triggers.MachineImageOperationTrigger`
            or :class:`~airflow_machine_images.triggers.MachineImageStatusTrigger`.
        """
        request = self._prepare_or_fail(context)
        MachineImageLink.persist(context, self, project_id=request.project_id, name=request.name)
        self._deadline = Deadline.from_event(event, self.timeout)
        self.hook.deadline = self._deadline.at  # retries by cause stop at the task's deadline
        try:
            state = insert_flow.resume(self.hook, request, event, self.log)
            summary = self._until_ready(request, state)
        except ResubmissionNeeded as why:
            generation = int((event.get("extra") or {}).get("generation", 0))
            summary = self._create(context, request, first_generation=generation + 1, reason=why)
        return self._succeeded(context, summary)

    def _create(
        self, context: Context, request: InsertRequest, first_generation: int, reason: ResubmissionNeeded | None = None
    ) -> dict[str, Any]:
        """Submit (again, under a new generation, while the server leaves nothing to use) until ready."""

        def attempt(generation: int, is_retry: bool) -> dict[str, Any]:
            state = insert_flow.submit(self.hook, request, generation, is_retry=is_retry, log=self.log)
            return self._until_ready(request, state)

        return self._submit_until_usable(
            context, attempt, first_generation=first_generation, what=f"Machine image {request.name}", reason=reason
        )

    def _until_ready(self, request: InsertRequest, state: InsertState) -> dict[str, Any]:
        """Wait on this worker, or defer to the triggerer, until the image is READY; the summary.

        With ``wait_for_completion=False`` the summary of the state as it is.
        """
        if state.operation_pending:
            if not self.wait_for_completion:
                return state.summary(request)
            if self.deferrable:
                self._defer(request, state)
            waited = state
            state = self._wait_out_operation(
                state.operation,
                project_id=request.project_id,
                finished=lambda op: insert_flow.finish_operation(self.hook, request, waited, op, self.log),
                failed=lambda failure: insert_flow.on_operation_failed(self.hook, request, waited, failure, self.log),
            )
        if state.image_pending and self.wait_for_completion:
            if self.deferrable:
                self._defer(request, state)
            state = insert_flow.wait_for_image(
                self.hook,
                request,
                state,
                timeout=self._deadline.remaining(),
                poll_interval=self.poll_interval,
                log=self.log,
            )
        return state.summary(request)

    def _defer(self, request: InsertRequest, state: InsertState) -> None:
        """Hand the wait to the triggerer: the operation if it runs, else the image until READY."""
        settings = {
            "project_id": request.project_id,
            "poll_interval": self.poll_interval,
            "deadline": self._deadline.at,
            "requests_per_minute_per_project": self.requests_per_minute_per_project,
            **self.connection_kwargs(),
        }
        trigger: MachineImageOperationTrigger | MachineImageStatusTrigger
        if state.operation_pending:
            operation_name = str((state.operation or {}).get("name"))
            self.log.info(
                "Deferring until operation %s is DONE (checked every %.0f s)", operation_name, self.poll_interval
            )
            trigger = MachineImageOperationTrigger(
                operation_name=operation_name, event_extra=insert_flow.trigger_extra(state, "operation"), **settings
            )
        else:
            self.log.info(
                "Deferring until machine image %s is READY (checked every %.0f s)", request.name, self.poll_interval
            )
            trigger = MachineImageStatusTrigger(
                machine_image=request.name,
                fail_on_missing=True,
                event_extra=insert_flow.trigger_extra(state, "image"),
                **settings,
            )
        self.defer(
            trigger=trigger, method_name="execute_complete", timeout=timedelta(seconds=self._deadline.remaining())
        )

    def _succeeded(self, context: Context, summary: dict[str, Any]) -> dict[str, Any]:
        """Attach the image to this task's machine-image asset events; return the summary."""
        record_outlet_events(context, self.outlets, summary)
        return summary


class ComputeEngineDeleteMachineImageOperator(ComputeEngineMachineImageBaseOperator):
    """Delete a machine image (permanently), exactly once per task instance.

    The delete carries a task-derived ``requestId`` (verb ``delete``), so a retry sends the same
    request. An image that is already gone counts as success unless ``fail_if_missing``.

    :param name: the image to delete. Templated.
    :param project_id: the project; defaults to the connection's. Templated.
    :param request_id: a fixed requestId (UUID) instead of the task-derived one. Templated.
    :param fail_if_missing: fail when the image does not exist (default: succeed, nothing to do).
    :param wait_for_completion: wait until the image is gone.
    :param deferrable: wait in the triggerer instead of holding a worker slot.
    :param poll_interval: seconds between checks where polling is needed.
    :param timeout: seconds to wait before failing.
    :param requests_per_minute_per_project: while deferred, the most requests per minute this wait may
        cost the project across all triggerers, instead of ``[machine_images] requests_per_minute_per_project``
        (None: that); waits on one project share a poller, which keeps to the smallest budget among them.
    :param api_version: ``beta`` or ``v1``.
    :param gcp_conn_id: the Airflow connection to Google Cloud. Templated.
    :param impersonation_chain: service account(s) to impersonate. Templated.
    :param api_endpoint: another API root (e.g. the emulator). Templated.
    """

    template_fields: Sequence[str] = connection_template_fields("name", "request_id")
    ui_color = "#fbe3d9"

    def __init__(
        self,
        *,
        name: str,
        request_id: str | None = None,
        fail_if_missing: bool = False,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 10.0,
        timeout: float = 3600.0,
        requests_per_minute_per_project: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.request_id = request_id
        self.fail_if_missing = validate_bool(fail_if_missing, "fail_if_missing")
        self.wait_for_completion = validate_bool(wait_for_completion, "wait_for_completion")
        self.deferrable = validate_bool(deferrable, "deferrable")
        self.poll_interval = validate_positive_number(poll_interval, "poll_interval")
        self.timeout = validate_positive_number(timeout, "timeout")
        self.requests_per_minute_per_project = validate_optional_positive_int(
            requests_per_minute_per_project, "requests_per_minute_per_project"
        )

    def _request_ids(self, context: Context) -> RequestIds:
        """The requestIds of this task instance's delete (arguments validated)."""
        with failing_on_bad_input():
            fixed = validate_request_id(self.request_id) if self.request_id is not None else None
            project_id, name = self.resolve_project_id(), validate_machine_image_name(self.name)
        return RequestIds(TaskInstanceIdentity.of(context["ti"]), project_id, name, "delete", fixed=fixed)

    def execute(self, context: Context) -> dict[str, Any]:
        request_ids = self._request_ids(context)
        self.log.info("Deleting machine image %s in project %s", request_ids.resource_name, request_ids.project_id)
        self._deadline = Deadline.after(self.timeout)
        self.hook.deadline = self._deadline.at  # retries by cause stop at the task's deadline
        return self._delete(request_ids, first_generation=0)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the triggerer: confirm the image is gone (deleting again if it came back).

        :param context: the task's context.
        :param event: the operation trigger's event.
        """
        request_ids = self._request_ids(context)
        self._deadline = Deadline.from_event(event, self.timeout)
        self.hook.deadline = self._deadline.at  # retries by cause stop at the task's deadline
        extra = event.get("extra") or {}
        generation = int(extra.get("generation", 0))
        if event.get("status") != "success":
            failure = error_from_event(event)
            if extra.get("replayed") and isinstance(failure, OperationFailedError):
                why = ResubmissionNeeded(f"Delete of {request_ids.resource_name} failed in an earlier try ({failure})")
                return self._delete(request_ids, first_generation=generation + 1, reason=why)
            raise failure
        started = deletion.Deletion(
            request_ids.project_id, request_ids.resource_name, str(extra.get("request_id")), event.get("operation")
        )
        try:
            return deletion.confirm_gone(self.hook, started, event.get("operation") or {}, self.log).summary()
        except ResubmissionNeeded as why:
            return self._delete(request_ids, first_generation=generation + 1, reason=why)

    def _delete(
        self, request_ids: RequestIds, first_generation: int, reason: ResubmissionNeeded | None = None
    ) -> dict[str, Any]:
        return with_resubmissions(
            lambda generation: self._delete_once(request_ids, generation),
            first_generation=first_generation,
            what=f"Machine image {request_ids.resource_name}",
            log=self.log,
            reason=reason,
        )

    def _delete_once(self, request_ids: RequestIds, generation: int) -> dict[str, Any]:
        """One delete: send it, then wait here or defer, and confirm the image is gone."""
        started = deletion.start_delete(
            self.hook, request_ids.project_id, request_ids.resource_name, request_ids(generation), self.log
        )
        if not started.deleted and self.fail_if_missing:
            raise AirflowFailException(f"Machine image {started.name} does not exist in project {started.project_id}")
        if not started.deleted or not self.wait_for_completion:
            return started.summary()
        if self.deferrable and started.pending:
            self.defer(
                trigger=MachineImageOperationTrigger(
                    operation_name=str((started.operation or {}).get("name")),
                    project_id=started.project_id,
                    poll_interval=self.poll_interval,
                    deadline=self._deadline.at,
                    event_extra={
                        "generation": generation,
                        "request_id": started.request_id,
                        "replayed": started.replayed,
                    },
                    requests_per_minute_per_project=self.requests_per_minute_per_project,
                    **self.connection_kwargs(),
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=self._deadline.remaining()),
            )
        finished = deletion.wait_until_gone(
            self.hook, started, timeout=self._deadline.remaining(), poll_interval=self.poll_interval, log=self.log
        )
        return finished.summary()


class ComputeEngineMachineImageRetentionOperator(ComputeEngineMachineImageBaseOperator):
    """Prune old machine images: keep the newest per source instance, delete the rest.

    Lists the project's images matching the selector (server-side filter, every page), groups them
    by source instance, keeps the newest ``keep_last`` READY images of each source and every image
    younger than ``max_age``, and deletes the rest, ``max_concurrency`` at a time. It never deletes
    an image outside the selector, the newest READY image of a source, or an image that is not
    READY; a configuration that could (no selector, ``keep_last=0``, ``max_age=0``, neither) is
    rejected before any request. Each delete carries a task-derived requestId, so a retried or
    re-run task deletes nothing twice.

    Returns ``{"project_id", "dry_run", "deleted", "kept", "not_ready", "by_source"}``.

    :param label_selector: images must carry all of these labels (e.g. ``{"managed-by": "airflow"}``). Templated.
    :param name_prefix: images' names must start with this. Templated.
    :param keep_last: keep the newest N READY images of each source instance (N >= 1).
    :param max_age: keep images younger than this (a timedelta, or seconds).
    :param dry_run: log the plan and delete nothing.
    :param max_concurrency: deletions in flight at once.
    :param timeout: seconds to wait for each deletion.
    :param project_id: the project; defaults to the connection's. Templated.
    :param api_version: ``beta`` or ``v1``.
    :param gcp_conn_id: the Airflow connection to Google Cloud. Templated.
    :param impersonation_chain: service account(s) to impersonate. Templated.
    :param api_endpoint: another API root (e.g. the emulator). Templated.
    """

    template_fields: Sequence[str] = connection_template_fields("label_selector", "name_prefix", "plan_only")
    template_fields_renderers = {"label_selector": "json"}
    ui_color = "#fbe3d9"

    def __init__(
        self,
        *,
        label_selector: dict[str, str] | str | None = None,
        name_prefix: str | None = None,
        keep_last: int | None = None,
        max_age: timedelta | float | None = None,
        dry_run: bool | str = False,
        max_concurrency: int = 4,
        timeout: float = 3600.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(max_age, bool) or not isinstance(max_age, (timedelta, int, float, type(None))):
            raise MachineImageValidationError("max_age", "must be a timedelta or a number of seconds")
        if keep_last is None and max_age is None:
            raise MachineImageValidationError("keep_last", "give keep_last and/or max_age: what should be kept?")
        self.label_selector = label_selector
        self.name_prefix = name_prefix
        self.keep_last = keep_last
        self.max_age: timedelta | None = timedelta(seconds=max_age) if isinstance(max_age, (int, float)) else max_age
        # Stored (and templated) under another name: BaseOperator.dry_run() is a method. A template
        # such as "{{ params.dry_run }}" is checked once rendered (see execute); anything else now.
        self.plan_only: bool | str = dry_run if is_templated(dry_run) else validate_bool(dry_run, "dry_run")
        self.max_concurrency = validate_positive_int(max_concurrency, "max_concurrency")
        self.timeout = validate_positive_number(timeout, "timeout")
        if not is_templated(label_selector) and not is_templated(name_prefix):
            self._policy()  # an unsafe configuration fails when the DAG is parsed

    def _policy(self) -> RetentionPolicy:
        return RetentionPolicy(
            label_selector=(
                split_label_selector(self.label_selector)
                if isinstance(self.label_selector, str)
                else self.label_selector or {}
            ),
            name_prefix=self.name_prefix or None,
            keep_last=self.keep_last,
            max_age=self.max_age,
        )

    def execute(self, context: Context) -> dict[str, Any]:
        with failing_on_bad_input():
            policy = self._policy()
            dry_run = coerce_rendered_bool(self.plan_only, "dry_run")
            project_id = self.resolve_project_id()
        warnings: list[ListWarning] = []
        images = self.hook.list_machine_images(project_id=project_id, filter_=policy.server_filter(), warnings=warnings)
        partial = partial_warnings(warnings)
        plan = plan_retention(images, policy, now=timezone.utcnow())
        self.log.info(
            "Retention in %s: %d images selected, %d to keep, %d to delete, %d not READY (left alone)",
            project_id,
            len(plan.keep) + len(plan.delete) + len(plan.not_ready) + len(plan.skipped),
            len(plan.keep),
            len(plan.delete),
            len(plan.not_ready),
        )
        if plan.skipped:
            self.log.warning("Left alone, they changed while they were listed: %s", plan.skipped)
        for source, decision in plan.by_source.items():
            self.log.info("  %s: keep %s; delete %s", source, decision["keep"], decision["delete"] or "nothing")
        if plan.not_ready:
            self.log.info("  not READY, left alone: %s", plan.not_ready)
        if partial:
            # A warned list may have left images out (discovery: MachineImageList.warning). Deleting only
            # what it shows would still delete a subset of the right set, but the plan's counts and the
            # guards would rest on a partial view: delete nothing, and let the next try list again.
            self.log.warning(
                "machineImages.list warned that images may be missing (%s): retention deletes nothing on a "
                "partial listing",
                describe_all(partial),
            )
        if dry_run:
            self.log.info("Dry run: nothing deleted (would delete %s)", plan.delete)
            return retention_summary(project_id, plan, dry_run=True, deleted=None)
        if partial:
            raise PartialListingError(
                f"Retention in project {project_id} deleted nothing: machineImages.list warned that images may "
                f"be missing ({describe_all(partial)}); the next try lists again"
            )
        deleted, skipped = self._delete_all(TaskInstanceIdentity.of(context["ti"]), project_id, plan, policy)
        return retention_summary(project_id, plan, dry_run=False, deleted=deleted, skipped=skipped)

    def _delete_all(
        self, identity: TaskInstanceIdentity, project_id: str, plan: RetentionPlan, policy: RetentionPolicy
    ) -> tuple[list[str], list[str]]:
        """Delete the plan's images with bounded concurrency; raise naming every failure after trying them all.

        The listing is a past view: before a source's images are deleted, the images that justify it
        (:attr:`RetentionPlan.guards`) are read again, and each image is read again right before its
        delete. Anything that changed since the listing (gone, no longer READY, no longer selected,
        made again) is skipped and logged; the next run decides on fresh data.

        :return: the names deleted, and the names skipped because they (or their guards) changed.
        """
        hooks = threading.local()

        def changed(name: str) -> str | None:
            if not hasattr(hooks, "hook"):
                hooks.hook = self.new_hook()  # one session per thread
            return changed_since_listed(hooks.hook, project_id, plan.listed[name], policy)

        guard_names = sorted({name for names in plan.guards.values() for name in names})
        with ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="retention") as pool:
            guard_changes = dict(zip(guard_names, pool.map(_or_error(changed), guard_names), strict=True))
            skipped: list[str] = []
            candidates: list[str] = []
            for source, decision in plan.by_source.items():
                moved = {name: guard_changes[name] for name in plan.guards.get(source, ()) if guard_changes[name]}
                if moved:
                    self.log.warning(
                        "Not deleting %s of %s: the newer image(s) that justify it changed since the listing (%s)",
                        decision["delete"],
                        source,
                        "; ".join(f"{name}: {why}" for name, why in sorted(moved.items())),
                    )
                    skipped += decision["delete"]
                else:
                    candidates += decision["delete"]
            results = pool.map(lambda name: self._delete_one(identity, project_id, name, changed), candidates)
            outcomes = dict(zip(candidates, results, strict=True))
        failures = {name: why for name, (outcome, why) in outcomes.items() if outcome == "failed"}
        skipped += [name for name, (outcome, _) in outcomes.items() if outcome == "skipped"]
        deleted = sorted(name for name, (outcome, _) in outcomes.items() if outcome == "deleted")
        if failures:
            details = "; ".join(f"{name}: {error}" for name, error in sorted(failures.items()))
            raise ComputeEngineRetentionError(
                f"Retention deleted {len(deleted)} image(s) but failed on {len(failures)}: {details}"
            )
        return deleted, sorted(skipped)

    def _delete_one(
        self, identity: TaskInstanceIdentity, project_id: str, name: str, changed: Callable[[str], str | None]
    ) -> tuple[str, str | None]:
        """Re-read one image, then delete it and confirm it is gone.

        :return: ``("deleted", None)`` (also if it was already gone while deleting), ``("skipped", why)``
            when it changed since the listing, or ``("failed", error text)``.
        """
        try:
            why = changed(name)
        except (ComputeEngineError, AirflowFailException) as error:
            return "failed", f"could not read it again before deleting: {error}"
        if why is not None:
            self.log.warning("Not deleting machine image %s: %s since the listing", name, why)
            return "skipped", why
        hook = self.new_hook()  # one session per thread
        request_ids = RequestIds(identity, project_id, name, "delete")

        def attempt(generation: int) -> deletion.Deletion:
            started = deletion.start_delete(hook, project_id, name, request_ids(generation), self.log)
            return deletion.wait_until_gone(hook, started, timeout=self.timeout, poll_interval=10.0, log=self.log)

        try:
            with_resubmissions(attempt, first_generation=0, what=f"Machine image {name}", log=self.log)
        except (ComputeEngineError, AirflowFailException) as error:
            return "failed", str(error)
        return "deleted", None


def _or_error(check: Callable[[str], str | None]) -> Callable[[str], str | None]:
    """``check``, with a failed read reported as the reason (so a guard that cannot be read blocks deletions)."""

    def checked(name: str) -> str | None:
        try:
            return check(name)
        except (ComputeEngineError, AirflowFailException) as error:
            return f"could not be read again: {error}"

    return checked
