"""Operators for Compute Engine machine images: thin Airflow faces over the hook.

DAG files import this module at parse time, so it imports no Google, ``requests`` or ``aiohttp``
code at module level: the hook (and with it the Google libraries) is loaded when a task runs.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, conf
from airflow.sdk.exceptions import AirflowFailException

from airflow_machine_images.links import MachineImageLink
from airflow_machine_images.validation import (
    InstanceRef,
    MachineImageValidationError,
    validate_choice,
    validate_positive_number,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    import jinja2
    from airflow.sdk import Context

    from airflow_machine_images.exceptions import OperationFailedError
    from airflow_machine_images.hooks import ComputeEngineMachineImageHook
    from airflow_machine_images.request_ids import TaskInstanceIdentity
    from airflow_machine_images.retention import RetentionPolicy
    from airflow_machine_images.triggers import MachineImageOperationTrigger

IF_EXISTS_CHOICES = ("reuse", "fail")
API_VERSION_CHOICES = ("beta", "v1")
#: How many times we resubmit an insert whose replayed operation points at a deleted image.
MAX_GENERATIONS = 3
#: Operation error codes that mean "the name is taken" (the 409 can also arrive inside the operation).
ALREADY_EXISTS_CODES = frozenset({"RESOURCE_ALREADY_EXISTS", "alreadyExists"})
#: Default label marking images made by this package (retention selects on it).
MANAGED_BY_LABEL = "managed-by"
#: Default label holding the task-instance key of the task that made the image.
OWNER_LABEL = "airflow-ti"


def default_labels(identity: TaskInstanceIdentity, owner_key: str) -> dict[str, str]:
    """The labels every image we make carries unless the user overrides them.

    They make images findable and traceable to the DAG and task that made them, and let an
    image left by an earlier try of the same task instance be recognised as its own.

    :param identity: the task instance.
    :param owner_key: its :func:`~airflow_machine_images.request_ids.task_instance_key`.
    """
    from airflow_machine_images.validation import sanitize_label_value

    return {
        MANAGED_BY_LABEL: "airflow",
        "airflow-dag": sanitize_label_value(identity.dag_id),
        "airflow-task": sanitize_label_value(identity.task_id),
        OWNER_LABEL: owner_key,
    }


#: The API's limit of labels per resource.
MAX_LABELS = 64


def merge_default_labels(labels: Mapping[str, str], defaults: Mapping[str, str]) -> dict[str, str]:
    """The user's labels plus as many default labels as the 64-label limit leaves room for.

    The user's labels win, on a shared key and for room: valid labels are never rejected because of
    the defaults. Defaults are kept in order of use: the task-instance key (a retry recognises its
    image by it), ``managed-by`` (retention selects on it), then the others.

    :param labels: the user's (validated) labels.
    :param defaults: :func:`default_labels`.
    """
    wanted = [key for key in defaults if key not in labels]
    wanted.sort(key=lambda key: (key != OWNER_LABEL, key != MANAGED_BY_LABEL))
    kept = wanted[: max(0, MAX_LABELS - len(labels))]
    return {**{key: defaults[key] for key in kept}, **labels}


class ComputeEngineMachineImageBaseOperator(BaseOperator):
    """Connection settings and the hook, shared by the machine-image operators.

    :param project_id: the project; defaults to the connection's. Templated.
    :param api_version: ``beta`` or ``v1``.
    :param gcp_conn_id: the Airflow connection to Google Cloud. Templated.
    :param impersonation_chain: service account(s) to impersonate. Templated.
    :param api_endpoint: another API root (e.g. the emulator); defaults to the connection extra
        ``compute_api_endpoint``. Templated.
    """

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
        self.project_id = project_id
        self.api_version = validate_choice(api_version, "api_version", API_VERSION_CHOICES)
        self.gcp_conn_id = gcp_conn_id
        self.impersonation_chain = impersonation_chain
        self.api_endpoint = api_endpoint

    def new_hook(self) -> ComputeEngineMachineImageHook:
        """A new hook (it loads the Google libraries); one per thread when calls run in parallel."""
        from airflow_machine_images.hooks import ComputeEngineMachineImageHook

        return ComputeEngineMachineImageHook(
            gcp_conn_id=self.gcp_conn_id,
            impersonation_chain=self.impersonation_chain,
            api_version=self.api_version,
            api_endpoint=self.api_endpoint,
        )

    @cached_property
    def hook(self) -> ComputeEngineMachineImageHook:
        """The task's hook, made on first use."""
        return self.new_hook()

    def resolved_project_id(self) -> str:
        """The project argument, else the connection's; validated.

        :raises MachineImageValidationError: neither is a valid project id.
        """
        from airflow_machine_images.validation import validate_project_id

        return validate_project_id(self.project_id or self.hook.default_project_id)

    def operation_trigger(
        self, operation_name: str, project_id: str, *, poll_interval: float, generation: int, request_id: str
    ) -> MachineImageOperationTrigger:
        """The trigger that waits for ``operation_name`` with this operator's connection settings.

        :param operation_name: the global operation to wait for.
        :param project_id: the resolved project.
        :param poll_interval: seconds between coalesced checks.
        :param generation: which submission of this task instance made the operation.
        :param request_id: the requestId the operation was made with (handed back in the event).
        """
        from airflow_machine_images.triggers import MachineImageOperationTrigger

        return MachineImageOperationTrigger(
            operation_name=operation_name,
            project_id=project_id,
            gcp_conn_id=self.gcp_conn_id,
            impersonation_chain=self.impersonation_chain,
            api_version=self.api_version,
            api_endpoint=self.api_endpoint,
            poll_interval=poll_interval,
            event_extra={"generation": generation, "request_id": request_id},
        )

    @staticmethod
    @contextmanager
    def failing_on_bad_input() -> Iterator[None]:
        """Turn a validation error into a failure without retries: bad arguments stay bad."""
        try:
            yield
        except MachineImageValidationError as exc:
            raise AirflowFailException(str(exc)) from exc


@dataclass(frozen=True)
class InsertRequest:
    """A validated insert: everything the API call needs, resolved before any request is sent."""

    project_id: str
    name: str
    source: InstanceRef
    body: dict[str, Any]
    request_id: str | None
    owner_key: str


class ComputeEngineInsertMachineImageOperator(ComputeEngineMachineImageBaseOperator):
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
    :param gcp_conn_id: the Airflow connection to Google Cloud. Templated.
    :param impersonation_chain: service account(s) to impersonate. Templated.
    :param api_endpoint: another API root (e.g. the emulator); defaults to the connection extra
        ``compute_api_endpoint``. Templated.

    Declare ``outlets=[machine_image_asset(...)]`` (:mod:`airflow_machine_images.assets`) to emit
    an asset event per image, with its self link, source instance, size and request id as extra.
    """

    template_fields: Sequence[str] = (
        "name",
        "source_instance",
        "project_id",
        "description",
        "labels",
        "storage_locations",
        "machine_image_encryption_key",
        "source_disk_encryption_keys",
        "machine_image_params",
        "body",
        "request_id",
        "gcp_conn_id",
        "impersonation_chain",
        "api_endpoint",
    )
    template_fields_renderers = {"labels": "json", "body": "json", "machine_image_params": "json"}
    ui_color = "#d9e8fb"
    operator_extra_links = (MachineImageLink(),)

    def __init__(
        self,
        *,
        name: str,
        source_instance: str,
        project_id: str | None = None,
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
        api_version: str = "beta",
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 10.0,
        timeout: float = 7200.0,
        gcp_conn_id: str = "google_cloud_default",
        impersonation_chain: str | Sequence[str] | None = None,
        api_endpoint: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            project_id=project_id,
            api_version=api_version,
            gcp_conn_id=gcp_conn_id,
            impersonation_chain=impersonation_chain,
            api_endpoint=api_endpoint,
            **kwargs,
        )
        self.name = name
        self.source_instance = source_instance
        self.description = description
        self.labels = labels
        self.storage_locations = storage_locations
        self.guest_flush = guest_flush
        self.machine_image_encryption_key = machine_image_encryption_key
        self.source_disk_encryption_keys = source_disk_encryption_keys
        self.machine_image_params = machine_image_params
        self.body = body
        self.request_id = request_id
        # Arguments that are not templated are checked now, when the DAG is parsed.
        self.if_exists = validate_choice(if_exists, "if_exists", IF_EXISTS_CHOICES)
        self.add_default_labels = add_default_labels
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = float(validate_positive_number(poll_interval, "poll_interval") or 0)
        self.timeout = float(validate_positive_number(timeout, "timeout") or 0)

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
        from airflow.sdk.log import mask_secret

        from airflow_machine_images.key_material import iter_key_material

        for secret in iter_key_material(self.machine_image_encryption_key, self.source_disk_encryption_keys, self.body):
            mask_secret(secret)

    # ------------------------------------------------------------------ preparation

    def prepare_request(self, context: Context) -> InsertRequest:
        """Validate every argument and build the MachineImage body; no request is sent.

        :param context: the task's context (the task instance names the default labels).
        :raises MachineImageValidationError: an argument breaks a rule (the message names it).
        """
        from airflow_machine_images.discovery import machine_image_schemas
        from airflow_machine_images.request_ids import TaskInstanceIdentity, task_instance_key
        from airflow_machine_images.validation import (
            build_machine_image_body,
            parse_source_instance,
            validate_labels,
            validate_machine_image_name,
            validate_request_id,
        )

        name = validate_machine_image_name(self.name)
        request_id = validate_request_id(self.request_id) if self.request_id is not None else None
        identity = TaskInstanceIdentity.of(context["ti"])
        owner_key = task_instance_key(identity)
        given_labels, labels_parameter, extra_body = self.labels, "labels", self.body
        if given_labels is None and isinstance(extra_body, dict) and "labels" in extra_body:
            # Labels given in ``body``: the default labels join them, as they join the labels argument.
            given_labels, labels_parameter = extra_body["labels"], "body.labels"
            extra_body = {key: value for key, value in extra_body.items() if key != "labels"}
        labels = validate_labels(given_labels if given_labels is not None else {}, labels_parameter)
        if self.add_default_labels:
            labels = merge_default_labels(labels, default_labels(identity, owner_key))
        project_id = self.resolved_project_id()
        source = parse_source_instance(self.source_instance, default_project=project_id)
        body = build_machine_image_body(
            name=name,
            source_instance=source,
            description=self.description,
            labels=labels or None,
            storage_locations=self.storage_locations,
            guest_flush=self.guest_flush,
            machine_image_encryption_key=self.machine_image_encryption_key,
            source_disk_encryption_keys=self.source_disk_encryption_keys,
            machine_image_params=self.machine_image_params,
            body=extra_body,
            schemas=machine_image_schemas(self.api_version),
        )
        return InsertRequest(
            project_id=project_id, name=name, source=source, body=body, request_id=request_id, owner_key=owner_key
        )

    def request_id_for(self, context: Context, request: InsertRequest, generation: int) -> str:
        """The requestId of submission number ``generation`` of this task instance's insert.

        :param context: the task's context.
        :param request: the validated request.
        :param generation: 0 first; higher only for a deliberate resubmission.
        """
        import uuid

        from airflow_machine_images.request_ids import TaskInstanceIdentity, derive_request_id

        if request.request_id is not None:
            if generation == 0:
                return request.request_id
            return str(uuid.uuid5(uuid.UUID(request.request_id), f"generation-{generation}"))
        return derive_request_id(
            TaskInstanceIdentity.of(context["ti"]),
            project_id=request.project_id,
            resource_name=request.name,
            verb="insert",
            generation=generation,
        )

    # ------------------------------------------------------------------ execution

    def execute(self, context: Context) -> dict[str, Any]:
        self.mask_key_material()  # also when execute() is called without rendering (tests, custom runners)
        request = self._prepare_or_fail(context)
        console_url = MachineImageLink.persist(context, project_id=request.project_id, name=request.name)
        self.log.info(
            "Creating machine image %s in project %s from %s (console: %s)",
            request.name,
            request.project_id,
            request.source.partial_url,
            console_url,
        )
        return self._succeeded(context, self._create_from(context, request, first_generation=0))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger: verify the image (resubmitting if it is gone) and return the summary.

        :param context: the task's context.
        :param event: the :class:`~airflow_machine_images.triggers.MachineImageOperationTrigger` event.
        """
        from airflow_machine_images.exceptions import ComputeEngineError, OperationFailedError

        request = self._prepare_or_fail(context)
        extra = event.get("extra") or {}
        generation = int(extra.get("generation", 0))
        request_id = str(extra.get("request_id") or self.request_id_for(context, request, generation))
        operation = event.get("operation") or {}
        if event.get("status") != "success":
            if not event.get("errors"):
                raise ComputeEngineError(str(event.get("message")))
            failure = OperationFailedError(
                str(event.get("operation_name")),
                event["errors"],
                http_error_status_code=operation.get("httpErrorStatusCode"),
                http_error_message=operation.get("httpErrorMessage"),
            )
            result = self._on_operation_failed(request, failure)
        else:
            self.log.info("Operation %s is DONE", operation.get("name"))
            result = self._finish(request, operation, request_id)
        if result is None:
            result = self._create_from(context, request, first_generation=generation + 1)
        return self._succeeded(context, result)

    def _succeeded(self, context: Context, summary: dict[str, Any]) -> dict[str, Any]:
        """Attach the image to this task's machine-image asset events; return the summary."""
        from airflow_machine_images.assets import record_outlet_events

        record_outlet_events(context, self.outlets, summary)
        return summary

    def _prepare_or_fail(self, context: Context) -> InsertRequest:
        with self.failing_on_bad_input():
            return self.prepare_request(context)

    def _create_from(self, context: Context, request: InsertRequest, first_generation: int) -> dict[str, Any]:
        for generation in range(first_generation, MAX_GENERATIONS):
            result = self._submit_and_wait(context, request, generation)
            if result is not None:
                return result
        raise AirflowFailException(
            f"Machine image {request.name}: the server kept answering with finished operations whose image "
            f"no longer exists, after {MAX_GENERATIONS} submissions; giving up."
        )

    def _submit_and_wait(self, context: Context, request: InsertRequest, generation: int) -> dict[str, Any] | None:
        """Submit once and wait (or defer); None means the image is gone and a resubmission is needed."""
        from airflow_machine_images.exceptions import OperationFailedError, ResourceAlreadyExistsError
        from airflow_machine_images.results import machine_image_summary

        request_id = self.request_id_for(context, request, generation)
        try:
            operation = self.hook.insert_machine_image(
                body=request.body,
                source_instance=request.source.partial_url,
                request_id=request_id,
                project_id=request.project_id,
            )
        except ResourceAlreadyExistsError:
            return self._use_existing_image(request)
        self.log.info(
            "Insert accepted: operation %s (%s), requestId %s", operation["name"], operation["status"], request_id
        )
        if self._replays_earlier_failure(context, operation, generation):
            return None
        if operation["status"] != "DONE":
            if not self.wait_for_completion:
                return machine_image_summary(
                    project_id=request.project_id,
                    name=request.name,
                    request_id=request_id,
                    operation=operation,
                    image=None,
                )
            if self.deferrable:
                self._defer_until_done(request, operation["name"], generation, request_id)
        try:
            operation = self.hook.wait_for_operation(
                operation_name=operation["name"],
                project_id=request.project_id,
                timeout=self.timeout,
                max_early_backoff=self.poll_interval,
            )
        except OperationFailedError as failure:
            return self._on_operation_failed(request, failure)
        return self._finish(request, operation, request_id)

    def _replays_earlier_failure(self, context: Context, operation: Mapping[str, Any], generation: int) -> bool:
        """Whether a retry got back the failed operation of an earlier try (so it should submit anew).

        The server answers a remembered requestId with its original operation, even a failed one: left
        alone, every Airflow retry would replay the same failure for as long as the server remembers the
        id. A failed insert made no image, so submitting again under the next generation's requestId
        cannot duplicate one. The last generation is not skipped: its failure is raised as it is.
        """
        from airflow_machine_images.compute_api import operation_errors

        if operation.get("status") != "DONE" or generation + 1 >= MAX_GENERATIONS:
            return False
        if int(getattr(context["ti"], "try_number", 1) or 1) <= 1:
            return False  # a first try raises its own failure; its retry resubmits
        errors = operation_errors(operation)
        if not errors or ALREADY_EXISTS_CODES.intersection(str(e.get("code")) for e in errors):
            return False
        self.log.warning(
            "Operation %s of this task instance failed in an earlier try (%s); submitting again with a new "
            "requestId (submission %d of %d).",
            operation.get("name"),
            "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors),
            generation + 2,
            MAX_GENERATIONS,
        )
        return True

    def _defer_until_done(self, request: InsertRequest, operation_name: str, generation: int, request_id: str) -> None:
        self.log.info("Deferring until operation %s is DONE (checked every %.0f s)", operation_name, self.poll_interval)
        self.defer(
            trigger=self.operation_trigger(
                operation_name,
                request.project_id,
                poll_interval=self.poll_interval,
                generation=generation,
                request_id=request_id,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def _on_operation_failed(self, request: InsertRequest, failure: OperationFailedError) -> dict[str, Any] | None:
        """An operation that failed because the name is taken is a 409 in disguise; anything else fails."""
        if ALREADY_EXISTS_CODES.intersection(failure.codes):
            return self._use_existing_image(request)
        raise failure

    def _finish(self, request: InsertRequest, operation: Mapping[str, Any], request_id: str) -> dict[str, Any] | None:
        """Read back the image of a DONE operation and summarise it; None if the image is gone."""
        from airflow_machine_images.results import machine_image_summary

        image = self._read_back(request, operation, request_id)
        if image is None:
            return None
        return machine_image_summary(
            project_id=request.project_id,
            name=request.name,
            request_id=request_id,
            operation=operation,
            image=image,
        )

    def _read_back(
        self, request: InsertRequest, operation: Mapping[str, Any], request_id: str
    ) -> dict[str, Any] | None:
        """Confirm that a DONE operation left a usable image of ours; None if it is gone."""
        from airflow_machine_images.exceptions import ResourceNotFoundError

        try:
            image = self.hook.get_machine_image(name=request.name, project_id=request.project_id)
        except ResourceNotFoundError:
            self.log.warning(
                "Operation %s for requestId %s is DONE, but machine image %s does not exist: the server "
                "replayed a request it remembers, and the image it made has since been deleted. "
                "Submitting again with a new requestId.",
                operation.get("name"),
                request_id,
                request.name,
            )
            return None
        self._check_source(request, image)
        if image.get("status") != "READY":
            if not self.wait_for_completion:
                return image
            image = self.hook.wait_for_machine_image(
                name=request.name,
                project_id=request.project_id,
                timeout=self.timeout,
                poll_interval=self.poll_interval,
            )
        self.log.info(
            "Machine image %s is %s: %s (%s bytes)",
            request.name,
            image.get("status"),
            image.get("selfLink"),
            image.get("totalStorageBytes"),
        )
        return image

    def _check_source(self, request: InsertRequest, image: Mapping[str, Any]) -> None:
        """Fail, naming both, if ``image`` was made from another instance than requested."""
        from airflow_machine_images.exceptions import MachineImageConflictError
        from airflow_machine_images.validation import parse_source_instance

        existing = image.get("sourceInstance")
        try:
            same = parse_source_instance(existing, default_project=None).same_instance(request.source)
        except MachineImageValidationError:
            same = False
        if not same:
            raise MachineImageConflictError(
                f"Machine image {request.name} in project {request.project_id} exists but was made from "
                f"{existing!r}, not from {request.source.partial_url!r}; choose another name or delete it."
            )

    def _use_existing_image(self, request: InsertRequest) -> dict[str, Any] | None:
        """Handle HTTP 409 per ``if_exists``; None if the image vanished meanwhile."""
        from airflow_machine_images.exceptions import MachineImageConflictError, ResourceNotFoundError
        from airflow_machine_images.results import machine_image_summary

        try:
            image = self.hook.get_machine_image(name=request.name, project_id=request.project_id)
        except ResourceNotFoundError:
            self.log.warning("Machine image %s was reported to exist but is gone now; retrying", request.name)
            return None
        ours = (image.get("labels") or {}).get(OWNER_LABEL) == request.owner_key
        if self.if_exists == "fail" and not ours:
            raise MachineImageConflictError(
                f"Machine image {request.name} already exists in project {request.project_id} "
                f"(made from {image.get('sourceInstance')!r}) and if_exists='fail'."
            )
        self._check_source(request, image)
        self.log.info(
            "Machine image %s already exists (%s), %s; reusing it",
            request.name,
            image.get("status"),
            "made by an earlier try of this task instance" if ours else "from the same source instance",
        )
        if image.get("status") != "READY" and self.wait_for_completion:
            try:
                image = self.hook.wait_for_machine_image(
                    name=request.name,
                    project_id=request.project_id,
                    timeout=self.timeout,
                    poll_interval=self.poll_interval,
                )
            except ResourceNotFoundError:
                self.log.warning(
                    "Machine image %s vanished while %s (its creation failed, or it was deleted); submitting again",
                    request.name,
                    image.get("status"),
                )
                return None
        return machine_image_summary(
            project_id=request.project_id,
            name=request.name,
            request_id=None,
            operation=None,
            image=image,
            reused=True,
        )


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
    :param api_version: ``beta`` or ``v1``.
    :param gcp_conn_id: the Airflow connection to Google Cloud. Templated.
    :param impersonation_chain: service account(s) to impersonate. Templated.
    :param api_endpoint: another API root (e.g. the emulator). Templated.
    """

    template_fields: Sequence[str] = (
        "name",
        "project_id",
        "request_id",
        "gcp_conn_id",
        "impersonation_chain",
        "api_endpoint",
    )
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.request_id = request_id
        self.fail_if_missing = fail_if_missing
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = float(validate_positive_number(poll_interval, "poll_interval") or 0)
        self.timeout = float(validate_positive_number(timeout, "timeout") or 0)

    def _target(self) -> tuple[str, str]:
        from airflow_machine_images.validation import validate_machine_image_name, validate_request_id

        with self.failing_on_bad_input():
            if self.request_id is not None:
                validate_request_id(self.request_id)
            return self.resolved_project_id(), validate_machine_image_name(self.name)

    def _request_id(self, context: Context, project_id: str, name: str, generation: int) -> str:
        import uuid

        from airflow_machine_images.request_ids import TaskInstanceIdentity, derive_request_id

        if self.request_id is not None:
            return self.request_id if generation == 0 else str(uuid.uuid5(uuid.UUID(self.request_id), str(generation)))
        identity = TaskInstanceIdentity.of(context["ti"])
        return derive_request_id(
            identity, project_id=project_id, resource_name=name, verb="delete", generation=generation
        )

    def execute(self, context: Context) -> dict[str, Any]:
        project_id, name = self._target()
        self.log.info("Deleting machine image %s in project %s", name, project_id)
        return self._delete_from(context, project_id, name, first_generation=0)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger: confirm the image is gone (deleting again if it came back).

        :param context: the task's context.
        :param event: the operation trigger's event.
        """
        project_id, name = self._target()
        if event.get("status") != "success":
            raise AirflowFailException(str(event.get("message")))
        extra = event.get("extra") or {}
        generation = int(extra.get("generation", 0))
        result = self._confirm_gone(project_id, name, event.get("operation") or {}, str(extra.get("request_id")))
        if result is None:
            result = self._delete_from(context, project_id, name, first_generation=generation + 1)
        return result

    def _delete_from(self, context: Context, project_id: str, name: str, first_generation: int) -> dict[str, Any]:
        from airflow_machine_images.exceptions import ResourceNotFoundError

        for generation in range(first_generation, MAX_GENERATIONS):
            request_id = self._request_id(context, project_id, name, generation)
            try:
                operation = self.hook.delete_machine_image(name=name, request_id=request_id, project_id=project_id)
            except ResourceNotFoundError:
                if self.fail_if_missing:
                    raise AirflowFailException(f"Machine image {name} does not exist in project {project_id}") from None
                self.log.info("Machine image %s does not exist: nothing to delete", name)
                return delete_summary(project_id, name, deleted=False, operation=None, request_id=request_id)
            self.log.info(
                "Delete accepted: operation %s (%s), requestId %s", operation["name"], operation["status"], request_id
            )
            if not self.wait_for_completion:
                return delete_summary(project_id, name, deleted=True, operation=operation, request_id=request_id)
            if self.deferrable and operation["status"] != "DONE":
                self.defer(
                    trigger=self.operation_trigger(
                        operation["name"],
                        project_id,
                        poll_interval=self.poll_interval,
                        generation=generation,
                        request_id=request_id,
                    ),
                    method_name="execute_complete",
                    timeout=timedelta(seconds=self.timeout),
                )
            operation = self.hook.wait_for_operation(
                operation_name=operation["name"],
                project_id=project_id,
                timeout=self.timeout,
                max_early_backoff=self.poll_interval,
            )
            result = self._confirm_gone(project_id, name, operation, request_id)
            if result is not None:
                return result
        raise AirflowFailException(f"Machine image {name} kept coming back after {MAX_GENERATIONS} deletions")

    def _confirm_gone(
        self, project_id: str, name: str, operation: Mapping[str, Any], request_id: str
    ) -> dict[str, Any] | None:
        """The summary if the image is gone after a DONE delete; None if an image of that name is back."""
        from airflow_machine_images.exceptions import ResourceNotFoundError

        try:
            image = self.hook.get_machine_image(name=name, project_id=project_id)
        except ResourceNotFoundError:
            self.log.info("Machine image %s is deleted", name)
            return delete_summary(project_id, name, deleted=True, operation=operation, request_id=request_id)
        self.log.warning(
            "Operation %s (requestId %s) is DONE but machine image %s exists (%s): it was made again after that "
            "delete. Deleting it with a new requestId.",
            operation.get("name"),
            request_id,
            name,
            image.get("status"),
        )
        return None


def delete_summary(
    project_id: str, name: str, *, deleted: bool, operation: Mapping[str, Any] | None, request_id: str | None
) -> dict[str, Any]:
    """The delete operator's XCom.

    :param project_id: the project.
    :param name: the image name.
    :param deleted: whether this task deleted it (False: it was already gone).
    :param operation: the delete operation, if one was made.
    :param request_id: the requestId sent.
    """
    return {
        "project_id": project_id,
        "name": name,
        "deleted": deleted,
        "operation_name": (operation or {}).get("name"),
        "request_id": request_id,
    }


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

    template_fields: Sequence[str] = (
        "project_id",
        "label_selector",
        "name_prefix",
        "gcp_conn_id",
        "impersonation_chain",
        "api_endpoint",
    )
    template_fields_renderers = {"label_selector": "json"}
    ui_color = "#fbe3d9"

    def __init__(
        self,
        *,
        label_selector: dict[str, str] | None = None,
        name_prefix: str | None = None,
        keep_last: int | None = None,
        max_age: timedelta | float | None = None,
        dry_run: bool = False,
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
        # stored under another name: BaseOperator.dry_run() is a method (it renders templates)
        self.plan_only = dry_run
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise MachineImageValidationError("max_concurrency", "must be an integer >= 1")
        self.max_concurrency = max_concurrency
        self.timeout = float(validate_positive_number(timeout, "timeout") or 0)
        if not _templated(label_selector) and not _templated(name_prefix):
            self._policy()  # an unsafe configuration fails when the DAG is parsed

    def _policy(self) -> RetentionPolicy:
        from airflow_machine_images.retention import RetentionPolicy

        return RetentionPolicy(
            label_selector=self.label_selector or {},
            name_prefix=self.name_prefix or None,
            keep_last=self.keep_last,
            max_age=self.max_age,
        )

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk import timezone

        from airflow_machine_images.retention import plan_retention

        with self.failing_on_bad_input():
            policy = self._policy()
            project_id = self.resolved_project_id()
        images = self.hook.list_machine_images(project_id=project_id, filter_=policy.server_filter())
        plan = plan_retention(images, policy, now=timezone.utcnow())
        self.log.info(
            "Retention in %s: %d images selected, %d to keep, %d to delete, %d not READY (left alone)",
            project_id,
            len(plan.keep) + len(plan.delete) + len(plan.not_ready),
            len(plan.keep),
            len(plan.delete),
            len(plan.not_ready),
        )
        for source, decision in plan.by_source.items():
            self.log.info("  %s: keep %s; delete %s", source, decision["keep"], decision["delete"] or "nothing")
        result = {"project_id": project_id, "dry_run": self.plan_only, **plan.as_dict(), "deleted": []}
        result["kept"] = result.pop("keep")
        planned = result.pop("delete")
        if self.plan_only:
            self.log.info("Dry run: nothing deleted (would delete %s)", planned)
            result["would_delete"] = planned
            return result
        result["deleted"] = self._delete_all(context, project_id, planned)
        return result

    def _delete_all(self, context: Context, project_id: str, names: list[str]) -> list[str]:
        """Delete ``names`` with bounded concurrency; raise naming every failure after trying them all."""
        from concurrent.futures import ThreadPoolExecutor

        from airflow_machine_images.request_ids import TaskInstanceIdentity

        identity = TaskInstanceIdentity.of(context["ti"])
        with ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="retention") as pool:
            errors = pool.map(lambda name: self._delete_one(identity, project_id, name), names)
            outcomes = dict(zip(names, errors, strict=True))
        failures = {name: error for name, error in outcomes.items() if error is not None}
        deleted = sorted(name for name, error in outcomes.items() if error is None)
        if failures:
            details = "; ".join(f"{name}: {error}" for name, error in sorted(failures.items()))
            raise ComputeEngineRetentionError(
                f"Retention deleted {len(deleted)} image(s) but failed on {len(failures)}: {details}"
            )
        return deleted

    def _delete_one(self, identity: TaskInstanceIdentity, project_id: str, name: str) -> str | None:
        """Delete one image and wait; the error text, or None on success (also if already gone)."""
        from airflow_machine_images.exceptions import ComputeEngineError, ResourceNotFoundError
        from airflow_machine_images.request_ids import derive_request_id

        hook = self.new_hook()  # one session per thread
        request_id = derive_request_id(identity, project_id=project_id, resource_name=name, verb="delete")
        try:
            operation = hook.delete_machine_image(name=name, request_id=request_id, project_id=project_id)
            hook.wait_for_operation(operation_name=operation["name"], project_id=project_id, timeout=self.timeout)
        except ResourceNotFoundError:
            self.log.info("Machine image %s was already gone", name)
        except ComputeEngineError as error:
            return str(error)
        else:
            self.log.info("Deleted machine image %s", name)
        return None


def _templated(value: object) -> bool:
    """Whether a value holds a Jinja template (checked only once rendered)."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(_templated(k) or _templated(v) for k, v in value.items())
    return False


class ComputeEngineRetentionError(AirflowFailException):
    """Some deletions of a retention run failed (the others were done)."""
