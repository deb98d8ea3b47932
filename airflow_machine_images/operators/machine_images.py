"""Operators that create and delete Compute Engine machine images, exactly once per task instance.

The steps of a create live in :mod:`airflow_machine_images.flows.create` (with the machine-image
target of :mod:`airflow_machine_images.flows.machine_image`), those of a delete in
:mod:`airflow_machine_images.flows.delete`; the drivers that wait on the worker or defer are in
:mod:`airflow_machine_images.operators.base`. These classes turn their arguments into a request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_machine_images import triggers
from airflow_machine_images.api.schema import machine_image_schemas
from airflow_machine_images.assets import check_outlets, record_outlet_events
from airflow_machine_images.bodies.keys import parse_key_argument
from airflow_machine_images.bodies.labels import default_labels, merge_default_labels
from airflow_machine_images.bodies.machine_image import (
    build_machine_image_body,
    dedicated_field_arguments,
    machine_image_body_fields,
)
from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.flows.create import CreateRequest
from airflow_machine_images.flows.delete import DeleteRequest
from airflow_machine_images.flows.machine_image import MachineImageDeleteTarget, MachineImageTarget
from airflow_machine_images.flows.request_ids import RequestIds, TaskInstanceIdentity, task_instance_key
from airflow_machine_images.hooks.connection import connection_template_fields
from airflow_machine_images.links import MachineImageLink
from airflow_machine_images.operators.base import (
    ANY_PROJECT,
    DEFAULT_DEFERRABLE,
    IF_EXISTS_CHOICES,
    CreateAndWaitBaseOperator,
    DeleteAndConfirmBaseOperator,
)
from airflow_machine_images.validation import (
    parse_source_instance,
    validate_bool,
    validate_choice,
    validate_labels,
    validate_machine_image_name,
    validate_optional_bool,
    validate_project_id,
    validate_request_id,
)
from airflow_machine_images.validation.references import InstanceRef
from airflow_machine_images.validation.templates import all_literal, is_literal

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.providers.common.compat.sdk import Context

    from airflow_machine_images.compat import BaseTrigger

__all__ = ["ComputeEngineDeleteMachineImageOperator", "ComputeEngineInsertMachineImageOperator"]

#: What stands for a templated name and source when the rest of the body is checked at parse time.
_PARSE_TIME_NAME = "checked-when-parsed"
_PARSE_TIME_ZONE = "us-central1-a"

#: Keys of the list operator's dicts that are no argument of the insert operator: they arrive when its
#: result is handed to ``expand_kwargs`` as it is.
LISTING_KEYS = ("zone", "status")


def listing_expanded_as_is(keys: list[str]) -> MachineImageValidationError:
    """The error for a list operator's dicts expanded into the insert operator as they are.

    :param keys: the keys that gave them away (``zone``, ``status``).
    """
    return MachineImageValidationError(
        keys[0],
        f"{' and '.join(repr(key) for key in keys)} are no arguments of ComputeEngineInsertMachineImageOperator: "
        "the list operator's result was expanded as it is (its name, project_id and labels are the instance's, "
        "so the images would be named after the instances and made in their project); turn it into this "
        "operator's kwargs with airflow_machine_images.fleet.backup_kwargs(instances, suffix=...) in a @task, "
        "and give the images' project to .partial()",
    )


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
        (None: that), for the reads made for this wait alone, never above the configured total.
    :param gcp_conn_id: the Airflow connection to Google Cloud. Templated.
    :param impersonation_chain: service account(s) to impersonate. Templated.
    :param api_endpoint: another API root (e.g. the emulator); defaults to the connection extra
        ``compute_api_endpoint``; it must be one ``[machine_images] allowed_endpoints`` lists.

    Declare ``outlets=[machine_image_asset(...)]`` (:mod:`airflow_machine_images.assets`) to emit
    an asset event per image, with its self link, source instance, size and request id as extra: the asset
    of the project the image is made in, or of its source instance's images there
    (``machine_image_asset(backup_project, "projects/P/zones/Z/instances/I")``); another instance's or
    project's asset is refused before any request, since Airflow would record an event on it all the same.
    A mapped task (one image per instance, ``expand_kwargs``) declares an ``AssetAlias`` outlet instead:
    each mapped task adds one event, on the asset of the instance it imaged, in the project it was made in.
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
    key_fields = ("machine_image_encryption_key", "source_disk_encryption_keys", "body")
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
        deferrable: bool = DEFAULT_DEFERRABLE,
        poll_interval: float = 10.0,
        timeout: float = 7200.0,
        requests_per_minute_per_project: int | None = None,
        **kwargs: Any,
    ) -> None:
        self._from_listing = [key for key in LISTING_KEYS if kwargs.pop(key, None) is not None]
        super().__init__(
            wait_for_completion=wait_for_completion,
            deferrable=deferrable,
            poll_interval=poll_interval,
            timeout=timeout,
            requests_per_minute_per_project=requests_per_minute_per_project,
            **kwargs,
        )
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
        if self.made_from_dag_file:
            self._check_literal_arguments()

    def _check_literal_arguments(self) -> None:
        """Run ``prepare_request``'s checks, when the DAG is parsed, on each argument written literally."""
        if self._from_listing:
            raise listing_expanded_as_is(self._from_listing)
        if is_literal(self.name):
            validate_machine_image_name(self.name)
        if self.request_id is not None and is_literal(self.request_id):
            validate_request_id(self.request_id)
        project = (self.project_id or None) if is_literal(self.project_id) else ANY_PROJECT
        if project is not None and project != ANY_PROJECT:
            validate_project_id(project)
        if is_literal(self.source_instance):
            source = parse_source_instance(self.source_instance, default_project=project or ANY_PROJECT)
            if project is not None and project != ANY_PROJECT:  # the image's project is known: so are its assets
                check_outlets(self.outlets, project, source)
        body_arguments = (self.labels, self.body, self.description, self.storage_locations, self.guest_flush)
        keys = (self.machine_image_encryption_key, self.source_disk_encryption_keys, self.machine_image_params)
        if all_literal(*body_arguments, *keys):
            labels, extra_body = self._labels_and_body()
            self._build_body(
                _PARSE_TIME_NAME, InstanceRef(ANY_PROJECT, _PARSE_TIME_ZONE, _PARSE_TIME_NAME), labels, extra_body
            )
        elif all_literal(self.labels, self.body):
            labels, extra_body = self._labels_and_body()
            machine_image_body_fields(
                extra_body,  # type: ignore[arg-type]  # checked by the function
                machine_image_schemas(self.api_version),
                given=self._dedicated_arguments(labels or None),
            )

    def _build_body(self, name: str, source: InstanceRef, labels: dict[str, str], extra_body: object) -> dict[str, Any]:
        """The checked MachineImage body of these arguments (the one builder, at parse and at run time)."""
        return build_machine_image_body(
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

    def _dedicated_arguments(self, labels: dict[str, str] | None) -> dict[str, object]:
        """The arguments that set a MachineImage field of their own, by field."""
        return dedicated_field_arguments(
            description=self.description,
            labels=labels,
            storage_locations=self.storage_locations,
            guest_flush=self.guest_flush,
            machine_image_encryption_key=self.machine_image_encryption_key,
            source_disk_encryption_keys=self.source_disk_encryption_keys,
            machine_image_params=self.machine_image_params,
        )

    def _labels_and_body(self) -> tuple[dict[str, str], object]:
        """The labels given (``labels``, else ``body.labels``), checked, and the rest of ``body``."""
        given_labels, labels_parameter, extra_body = self.labels, "labels", parse_key_argument(self.body)
        if given_labels is None and isinstance(extra_body, dict) and "labels" in extra_body:
            # Labels given in ``body``: the default labels join them, as they join the labels argument.
            given_labels, labels_parameter = extra_body["labels"], "body.labels"
            extra_body = {key: value for key, value in extra_body.items() if key != "labels"}
        return validate_labels(given_labels if given_labels is not None else {}, labels_parameter), extra_body

    def prepare_request(self, context: Context) -> CreateRequest:
        """Validate every argument and build the MachineImage body; no request is sent.

        :param context: the task's context (the task instance names the default labels).
        :raises MachineImageValidationError: an argument breaks a rule (the message names it).
        """
        if self._from_listing:
            raise listing_expanded_as_is(self._from_listing)
        name = validate_machine_image_name(self.name)
        request_id = validate_request_id(self.request_id) if self.request_id is not None else None
        identity = TaskInstanceIdentity.of(context["ti"])
        labels, extra_body = self._labels_and_body()
        if self.add_default_labels:
            labels = merge_default_labels(labels, default_labels(identity))
        project_id = self.resolve_project_id()
        source = parse_source_instance(self.source_instance, default_project=project_id)
        check_outlets(self.outlets, project_id, source)
        body = self._build_body(name, source, labels, extra_body)
        return CreateRequest(
            target=MachineImageTarget(source),
            project_id=project_id,
            name=name,
            body=body,
            request_ids=RequestIds(identity, project_id, name, "insert", fixed=request_id),
            owner_key=task_instance_key(identity),
            if_exists=self.if_exists,
        )

    def persist_link(self, context: Context, request: CreateRequest) -> str:
        """Store the image's console link; return its URL."""
        return MachineImageLink.persist(context, self, project_id=request.project_id, name=request.name)

    def resource_trigger(self, request: CreateRequest, extra: dict[str, Any]) -> BaseTrigger | None:
        """:class:`~airflow_machine_images.triggers.MachineImageStatusTrigger` until the image is READY."""
        return triggers.MachineImageStatusTrigger(
            machine_image=request.name, fail_on_missing=True, **self.trigger_settings(request.project_id, extra)
        )

    def succeeded(self, context: Context, summary: dict[str, Any]) -> dict[str, Any]:
        """Attach the image to this task's machine-image asset events; return the summary."""
        record_outlet_events(context, self.outlets, summary)
        return summary


class ComputeEngineDeleteMachineImageOperator(DeleteAndConfirmBaseOperator):
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
        (None: that), for the reads made for this wait alone, never above the configured total.
    :param api_version: ``beta`` or ``v1``.
    :param gcp_conn_id: the Airflow connection to Google Cloud. Templated.
    :param impersonation_chain: service account(s) to impersonate. Templated.
    :param api_endpoint: another API root (e.g. the emulator), one ``[machine_images] allowed_endpoints`` lists.
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
        deferrable: bool = DEFAULT_DEFERRABLE,
        poll_interval: float = 10.0,
        timeout: float = 3600.0,
        requests_per_minute_per_project: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            fail_if_missing=fail_if_missing,
            wait_for_completion=wait_for_completion,
            deferrable=deferrable,
            poll_interval=poll_interval,
            timeout=timeout,
            requests_per_minute_per_project=requests_per_minute_per_project,
            **kwargs,
        )
        self.name = name
        self.request_id = request_id
        if self.made_from_dag_file:  # written literally: checked now, as prepare_request checks them
            if is_literal(name):
                validate_machine_image_name(name)
            if request_id is not None and is_literal(request_id):
                validate_request_id(request_id)

    def prepare_request(self, context: Context) -> DeleteRequest:
        """The delete of this task instance (arguments validated); no request is sent.

        :param context: the task's context.
        """
        fixed = validate_request_id(self.request_id) if self.request_id is not None else None
        project_id, name = self.resolve_project_id(), validate_machine_image_name(self.name)
        request_ids = RequestIds(TaskInstanceIdentity.of(context["ti"]), project_id, name, "delete", fixed=fixed)
        return DeleteRequest(MachineImageDeleteTarget(), project_id, name, request_ids)
