"""Operators for Compute Engine machine images: thin Airflow faces over the hook.

DAG files import this module at parse time, so it imports no Google, ``requests`` or ``aiohttp``
code at module level: the hook (and with it the Google libraries) is loaded when a task runs.
"""

from __future__ import annotations

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
    from collections.abc import Mapping, Sequence

    import jinja2
    from airflow.sdk import Context

    from airflow_machine_images.exceptions import OperationFailedError
    from airflow_machine_images.hooks import ComputeEngineMachineImageHook

IF_EXISTS_CHOICES = ("reuse", "fail")
API_VERSION_CHOICES = ("beta", "v1")
#: How many times we resubmit an insert whose replayed operation points at a deleted image.
MAX_GENERATIONS = 3
#: Operation error codes that mean "the name is taken" (the 409 can also arrive inside the operation).
ALREADY_EXISTS_CODES = frozenset({"RESOURCE_ALREADY_EXISTS", "alreadyExists"})


@dataclass(frozen=True)
class InsertRequest:
    """A validated insert: everything the API call needs, resolved before any request is sent."""

    project_id: str
    name: str
    source: InstanceRef
    body: dict[str, Any]
    request_id: str | None


class ComputeEngineInsertMachineImageOperator(BaseOperator):
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
        characters). Templated.
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
        ``"fail"``: any existing image fails the task.
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
        super().__init__(**kwargs)
        self.name = name
        self.source_instance = source_instance
        self.project_id = project_id
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
        self.api_version = validate_choice(api_version, "api_version", API_VERSION_CHOICES)
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = float(validate_positive_number(poll_interval, "poll_interval") or 0)
        self.timeout = float(validate_positive_number(timeout, "timeout") or 0)
        self.gcp_conn_id = gcp_conn_id
        self.impersonation_chain = impersonation_chain
        self.api_endpoint = api_endpoint

    @cached_property
    def hook(self) -> ComputeEngineMachineImageHook:
        """The hook, made on first use (it loads the Google libraries)."""
        from airflow_machine_images.hooks import ComputeEngineMachineImageHook

        return ComputeEngineMachineImageHook(
            gcp_conn_id=self.gcp_conn_id,
            impersonation_chain=self.impersonation_chain,
            api_version=self.api_version,
            api_endpoint=self.api_endpoint,
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
        from airflow.sdk.log import mask_secret

        from airflow_machine_images.key_material import iter_key_material

        for secret in iter_key_material(self.machine_image_encryption_key, self.source_disk_encryption_keys, self.body):
            mask_secret(secret)

    # ------------------------------------------------------------------ preparation

    def prepare_request(self) -> InsertRequest:
        """Validate every argument and build the MachineImage body; no request is sent.

        :raises MachineImageValidationError: an argument breaks a rule (the message names it).
        """
        from airflow_machine_images.discovery import machine_image_schemas
        from airflow_machine_images.validation import (
            build_machine_image_body,
            parse_source_instance,
            validate_machine_image_name,
            validate_project_id,
            validate_request_id,
        )

        name = validate_machine_image_name(self.name)
        request_id = validate_request_id(self.request_id) if self.request_id is not None else None
        project_id = validate_project_id(self.project_id or self.hook.default_project_id)
        source = parse_source_instance(self.source_instance, default_project=project_id)
        body = build_machine_image_body(
            name=name,
            source_instance=source,
            description=self.description,
            labels=self.labels,
            storage_locations=self.storage_locations,
            guest_flush=self.guest_flush,
            machine_image_encryption_key=self.machine_image_encryption_key,
            source_disk_encryption_keys=self.source_disk_encryption_keys,
            machine_image_params=self.machine_image_params,
            body=self.body,
            schemas=machine_image_schemas(self.api_version),
        )
        return InsertRequest(project_id=project_id, name=name, source=source, body=body, request_id=request_id)

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
        request = self._prepare_or_fail()
        console_url = MachineImageLink.persist(context, project_id=request.project_id, name=request.name)
        self.log.info(
            "Creating machine image %s in project %s from %s (console: %s)",
            request.name,
            request.project_id,
            request.source.partial_url,
            console_url,
        )
        return self._create_from(context, request, first_generation=0)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger: verify the image (resubmitting if it is gone) and return the summary.

        :param context: the task's context.
        :param event: the :class:`~airflow_machine_images.triggers.MachineImageOperationTrigger` event.
        """
        from airflow_machine_images.exceptions import ComputeEngineError, OperationFailedError

        request = self._prepare_or_fail()
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
        if result is not None:
            return result
        return self._create_from(context, request, first_generation=generation + 1)

    def _prepare_or_fail(self) -> InsertRequest:
        try:
            return self.prepare_request()
        except MachineImageValidationError as exc:
            # Bad arguments will not get better on retry: fail without retrying.
            raise AirflowFailException(str(exc)) from exc

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

    def _defer_until_done(self, request: InsertRequest, operation_name: str, generation: int, request_id: str) -> None:
        from airflow_machine_images.triggers import MachineImageOperationTrigger

        self.log.info("Deferring until operation %s is DONE (checked every %.0f s)", operation_name, self.poll_interval)
        self.defer(
            trigger=MachineImageOperationTrigger(
                operation_name=operation_name,
                project_id=request.project_id,
                gcp_conn_id=self.gcp_conn_id,
                impersonation_chain=self.impersonation_chain,
                api_version=self.api_version,
                api_endpoint=self.api_endpoint,
                poll_interval=self.poll_interval,
                event_extra={"generation": generation, "request_id": request_id},
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
        if self.if_exists == "fail":
            raise MachineImageConflictError(
                f"Machine image {request.name} already exists in project {request.project_id} "
                f"(made from {image.get('sourceInstance')!r}) and if_exists='fail'."
            )
        self._check_source(request, image)
        self.log.info(
            "Machine image %s already exists from the same source instance (%s); reusing it",
            request.name,
            image.get("status"),
        )
        if image.get("status") != "READY" and self.wait_for_completion:
            image = self.hook.wait_for_machine_image(
                name=request.name,
                project_id=request.project_id,
                timeout=self.timeout,
                poll_interval=self.poll_interval,
            )
        return machine_image_summary(
            project_id=request.project_id,
            name=request.name,
            request_id=None,
            operation=None,
            image=image,
            reused=True,
        )
