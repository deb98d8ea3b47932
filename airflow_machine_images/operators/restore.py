"""Operators that restore a machine image into a new instance, and delete such an instance again.

DAG files import this module at parse time, so nothing here loads Google, ``requests`` or
``aiohttp`` code. A restore is the one create flow (:mod:`airflow_machine_images.flows.create`) with
the restored-instance target of :mod:`airflow_machine_images.flows.instance`; its cleanup is the one
delete flow (:mod:`airflow_machine_images.flows.delete`) with the target that deletes only what the
deleting task owns (:mod:`airflow_machine_images.flows.instance_delete`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_machine_images.api.schema import machine_image_schemas
from airflow_machine_images.api.serial_console import DEFAULT_BOOT_PATTERN, DEFAULT_FAILURE_PATTERN
from airflow_machine_images.bodies.instance import (
    RESTORE_LABEL_KEYS,
    build_instance_body,
    check_cross_project,
    dedicated_field_arguments,
    instance_body_fields,
    restore_labels,
)
from airflow_machine_images.bodies.keys import parse_key_argument
from airflow_machine_images.bodies.labels import default_labels, merge_default_labels
from airflow_machine_images.exceptions import (
    ComputeEngineError,
    InstanceNotRunningError,
    MachineImageValidationError,
    ResourceNotFoundError,
    failing_on_bad_input,
)
from airflow_machine_images.flows.boot import BootCheck
from airflow_machine_images.flows.create import CreateRequest
from airflow_machine_images.flows.instance import RestoredInstanceTarget
from airflow_machine_images.flows.instance_delete import (
    clean_up_failed_restore,
    instance_key,
)
from airflow_machine_images.flows.request_ids import RequestIds, TaskInstanceIdentity, task_instance_key
from airflow_machine_images.flows.source_names import SourceNames
from airflow_machine_images.hooks.connection import connection_template_fields
from airflow_machine_images.links import InstanceLink
from airflow_machine_images.operators.base import (
    ANY_PROJECT,
    DEFAULT_DEFERRABLE,
    IF_EXISTS_CHOICES,
    CreateAndWaitBaseOperator,
    context_is_retry,
)
from airflow_machine_images.operators.boot import boot_outcome, verify_boot

# The restore's cleanup has its own module; it stays importable from here, as before.
from airflow_machine_images.operators.restore_cleanup import ComputeEngineDeleteRestoredInstanceOperator
from airflow_machine_images.planning.restore_source import image_restored_by, list_filter, newest_image_of
from airflow_machine_images.results import chosen_image_summary, with_chosen_image
from airflow_machine_images.validation import (
    parse_machine_image_ref,
    parse_source_instance,
    split_label_selector,
    validate_bool,
    validate_choice,
    validate_labels,
    validate_machine_image_name,
    validate_optional_bool,
    validate_project_id,
    validate_request_id,
    validate_zone,
)
from airflow_machine_images.validation.console import validate_console_pattern
from airflow_machine_images.validation.templates import all_literal, is_literal, is_templated

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow.providers.common.compat.sdk import Context

    from airflow_machine_images.validation.references import InstanceRef

__all__ = ["ComputeEngineDeleteRestoredInstanceOperator", "ComputeEngineRestoreMachineImageOperator"]


#: The XCom (of the restore's own task instance) holding the image a ``source_instance`` restore chose, so
#: that resuming after a deferral (or cleaning up) restores and checks the same image.
CHOSEN_IMAGE_XCOM_KEY = "restore_chosen_image"


def _image_labels(value: object) -> dict[str, str]:
    """``image_label_selector`` as labels: a dict, or the text ``"key=value,key2=value2"``."""
    if isinstance(value, str):
        value = split_label_selector(value, "image_label_selector")
    return validate_labels(value if value is not None else {}, "image_label_selector")


def _restore_labels(value: object) -> dict[str, str]:
    """The ``labels`` argument, checked: none of the reserved restore labels among them."""
    given = validate_labels(value if value is not None else {}, "labels")
    reserved = sorted(RESTORE_LABEL_KEYS.intersection(given))
    if reserved:
        raise MachineImageValidationError(f"labels[{reserved[0]!r}]", "is set by the restore operator itself")
    return given


def _protection(argument: bool | None, body: object) -> bool | None:
    """The ``deletion_protection`` to send: the argument, except that its default (False) yields to a
    ``deletionProtection`` a DAG written before the argument existed sets in ``body``.

    :param argument: the operator's ``deletion_protection``.
    :param body: the operator's ``body``, parsed.
    """
    if argument is False and isinstance(body, dict) and "deletionProtection" in body:
        return None
    return argument


def check_restore_source(
    source_machine_image: str | None,
    source_instance: str | None,
    image_project: str | None,
    image_label_selector: object,
) -> None:
    """Check that a restore names exactly one source, and that the image choice's arguments go with an instance.

    :param source_machine_image: the image to restore.
    :param source_instance: the instance whose newest READY image to restore.
    :param image_project: where that instance's images are looked for.
    :param image_label_selector: which of its images may be chosen.
    :raises MachineImageValidationError: both or neither source given, or an image-choice argument without
        ``source_instance``.
    """
    if (source_machine_image is None) == (source_instance is None):
        raise MachineImageValidationError(
            "source_machine_image",
            "give the image to restore (source_machine_image) or the instance whose newest READY image to "
            "restore (source_instance), exactly one of them",
        )
    if source_instance is None and (image_project is not None or image_label_selector is not None):
        raise MachineImageValidationError(
            "image_project" if image_project is not None else "image_label_selector",
            "goes with source_instance; a source_machine_image names its project itself",
        )


class ComputeEngineRestoreMachineImageOperator(CreateAndWaitBaseOperator):
    """Create a new instance from a machine image (``instances.insert`` with ``sourceMachineImage``), exactly once.

    The insert carries a ``requestId`` derived from the task instance (never the try number), so a
    retry, a cleared task or a crashed worker sends the same id and the server answers with the
    original zonal operation instead of starting a second instance. The operator waits for that
    operation (``zoneOperations.wait`` long-polls, or the triggerer), reads the instance back and
    waits until it is ``RUNNING``.

    The instance carries the labels ``restored-by=airflow-machine-images`` and ``restored-from=<image>``,
    and binds itself to who made it: ``restore-dag`` (a key of this DAG's id) and ``restore-id`` (this task
    instance's key, returned as ``restore_id``), plus ``managed-by``, ``airflow-dag``, ``airflow-task``,
    ``airflow-ti``. :class:`ComputeEngineDeleteRestoredInstanceOperator` deletes only instances bound to
    its own DAG (or to the restore it is given).

    Deletion protection: an instance restored from a machine image inherits the protection its source
    had (``sourceInstanceProperties.deletionProtection``); a drill's scratch instance must be deletable, so
    ``deletion_protection=False`` is sent by default. If the restore ends in a state from which RUNNING
    will not come (TERMINATED, ...), what it made is deleted again (only what this task instance made),
    disks included, and the task fails saying so.

    .. seealso::
        https://cloud.google.com/compute/docs/machine-images/create-instance-from-machine-image

    Returns ``{"project_id", "zone", "name", "self_link", "operation_name", "request_id", "status",
    "source_machine_image", "id", "restore_id", "deletion_protection", "disks", "reused", "replayed",
    "console_url", "chosen_image"}`` (``chosen_image``: with ``source_instance``, the image chosen: ``{"project_id",
    "name", "creation_timestamp", "source_instance", "labels", "for"}``; else None).

    :param name: the new instance's name. Templated.
    :param zone: its zone, e.g. ``us-central1-a``. Templated.
    :param source_machine_image: the image: ``NAME`` (in ``project_id``), ``projects/P/global/machineImages/N``
        (e.g. a backup project) or a full URL. Templated. Give this or ``source_instance``.
    :param source_instance: instead of an image, the instance whose newest READY machine image to restore:
        ``ZONE/INSTANCE``, ``projects/P/zones/Z/instances/I`` or a URL. Found with one paged
        ``machineImages.list`` of ``image_project`` before the insert (newest ``creationTimestamp``); the XCom
        names the image chosen (``source_machine_image``, ``chosen_image``). Templated.
    :param image_project: with ``source_instance``: the project holding its images (a backup project);
        defaults to ``project_id``. Templated.
    :param image_label_selector: with ``source_instance``: only images carrying all of these labels (a dict or
        ``"key=value,..."``, matched on the client), e.g. ``{"backup": "nightly"}``. Templated.
    :param machine_type: another machine type than the image's: ``e2-standard-2`` or
        ``zones/ZONE/machineTypes/TYPE``. Templated.
    :param network_interfaces: other ``networkInterfaces`` than the image's (NetworkInterface dicts). Templated.
    :param labels: labels for the instance; ``restored-by``, ``restored-from``, ``restore-dag`` and ``restore-id``
        are reserved. Templated.
    :param metadata: metadata for the instance: a dict of keys to string values. Templated.
    :param description: the instance description. Templated.
    :param body: any other Instance fields; unknown or output-only fields are rejected before any request. Templated.
    :param request_id: a fixed requestId (UUID) instead of the task-derived one. Templated.
    :param deletion_protection: ``False`` (default: a drill's instance must be deletable), ``True``, or
        ``None`` to keep what the image carries from its source. A ``deletionProtection`` in ``body`` (the
        way before this argument) is sent when the argument is left at its default.
    :param service_accounts: the instance's ``serviceAccounts`` (ServiceAccount dicts). Required when the image
        is in another project than the instance: Compute Engine then refuses the image's own. Templated.
    :param source_machine_image_encryption_key: the CustomerEncryptionKey protecting the image (``rawKey``,
        ``rsaEncryptedKey`` or ``kmsKeyName``), required to restore an image made with one. Templated; masked
        like every key (logs, rendered fields, XCom, errors).
    :param if_exists: ``"reuse"``: an existing instance of that name restored from the same image by this DAG
        is success (waited for until RUNNING), any other fails naming it; ``"fail"``: any existing instance
        fails, except one an earlier try of this task instance made (its ``airflow-ti`` label). Restoring
        across projects also needs ``network_interfaces`` of the instance's project: the image's name
        networks of its own project, which Compute Engine refuses there.
    :param verify_boot: once RUNNING, also prove the guest booted: read its serial console until a boot line
        (:class:`~airflow_machine_images.operators.ComputeEngineVerifyBootOperator`'s check, by the instance's id,
        within ``timeout``); the XCom gains ``boot``. A failed check fails the task and leaves the instance (a
        drill's cleanup deletes it). Default False.
    :param boot_pattern: the boot line's regular expression, with ``verify_boot`` (default: systemd, a login
        prompt, cloud-init, Windows; see docs/restore-drills.md). Templated.
    :param project_id: the project the instance is created in; defaults to the connection's. Templated.
    :param api_version: ``beta`` or ``v1``.
    :param wait_for_completion: wait until the instance is RUNNING; if False, return once the insert is
        accepted (wait with ``ComputeEngineMachineImageOperationSensor(operation_name=..., zone=...)``).
    :param deferrable: wait for the operation in the triggerer instead of holding a worker slot.
    :param poll_interval: seconds between checks where polling is needed.
    :param timeout: seconds to wait for the instance before failing.
    :param requests_per_minute_per_project: while deferred, the most requests per minute this wait may
        cost the project across all triggerers, instead of ``[machine_images] requests_per_minute_per_project``
        (None: that), for the reads made for this wait alone, never above the configured total.
    :param gcp_conn_id: the Airflow connection to Google Cloud. Templated.
    :param impersonation_chain: service account(s) to impersonate. Templated.
    :param api_endpoint: another API root (e.g. the emulator), one ``[machine_images] allowed_endpoints`` lists.
    """

    template_fields: Sequence[str] = connection_template_fields(
        "name",
        "zone",
        "source_machine_image",
        "source_instance",
        "image_project",
        "image_label_selector",
        "machine_type",
        "network_interfaces",
        "labels",
        "metadata",
        "description",
        "body",
        "request_id",
        "service_accounts",
        "source_machine_image_encryption_key",
        "boot_pattern",
    )
    template_fields_renderers = {"labels": "json", "body": "json", "metadata": "json", "network_interfaces": "json"}
    key_fields = ("body", "source_machine_image_encryption_key")
    ui_color = "#d9fbe3"
    operator_extra_links = (InstanceLink(),)
    #: :class:`InstanceLink` reads the URL from the running operator.
    records_console_url = True

    def __init__(
        self,
        *,
        name: str,
        zone: str,
        source_machine_image: str | None = None,
        source_instance: str | None = None,
        image_project: str | None = None,
        image_label_selector: dict[str, str] | str | None = None,
        machine_type: str | None = None,
        network_interfaces: list[dict[str, Any]] | None = None,
        labels: dict[str, str] | None = None,
        metadata: dict[str, Any] | None = None,
        description: str | None = None,
        body: dict[str, Any] | None = None,
        request_id: str | None = None,
        deletion_protection: bool | None = False,
        service_accounts: list[dict[str, Any]] | None = None,
        source_machine_image_encryption_key: dict[str, str] | str | None = None,
        if_exists: str = "reuse",
        verify_boot: bool = False,
        boot_pattern: str = DEFAULT_BOOT_PATTERN,
        wait_for_completion: bool = True,
        deferrable: bool = DEFAULT_DEFERRABLE,
        poll_interval: float = 10.0,
        timeout: float = 3600.0,
        requests_per_minute_per_project: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            wait_for_completion=wait_for_completion,
            deferrable=deferrable,
            poll_interval=poll_interval,
            timeout=timeout,
            requests_per_minute_per_project=requests_per_minute_per_project,
            **kwargs,
        )
        self.name = name
        self.zone = zone
        check_restore_source(source_machine_image, source_instance, image_project, image_label_selector)
        self.source_machine_image = source_machine_image
        self.source_instance = source_instance
        self.image_project = image_project
        self.image_label_selector = image_label_selector
        self.machine_type = machine_type
        self.network_interfaces = network_interfaces
        self.labels = labels
        self.metadata = metadata
        self.description = description
        self.body = body
        self.request_id = request_id
        self.deletion_protection = validate_optional_bool(deletion_protection, "deletion_protection")
        self.service_accounts = service_accounts
        self.source_machine_image_encryption_key = source_machine_image_encryption_key
        self.if_exists = validate_choice(if_exists, "if_exists", IF_EXISTS_CHOICES)
        self.verify_boot = validate_bool(verify_boot, "verify_boot")
        self.boot_pattern = boot_pattern
        if not is_templated(boot_pattern):  # checked now, when the DAG is parsed
            validate_console_pattern(boot_pattern, "boot_pattern")
        if self.made_from_dag_file:
            self._check_literal_arguments()

    def _check_literal_arguments(self) -> None:
        """Run ``prepare_request``'s checks, when the DAG is parsed, on each argument written literally."""
        for value, check in (
            (self.name, lambda name: validate_machine_image_name(name, "name")),
            (self.zone, lambda zone: validate_zone(zone, "zone")),
            (self.request_id, lambda request_id: request_id is None or validate_request_id(request_id)),
            (self.labels, _restore_labels),
            (self.image_label_selector, _image_labels),
            (self.project_id, lambda project: project is None or validate_project_id(project)),
            (self.image_project, lambda project: not project or validate_project_id(project, "image_project")),
        ):
            if is_literal(value):
                check(value)
        project = (self.project_id or ANY_PROJECT) if is_literal(self.project_id) else ANY_PROJECT
        if self.source_machine_image is not None and is_literal(self.source_machine_image):
            self._image_reference(project)
        if self.source_instance is not None and is_literal(self.source_instance):
            parse_source_instance(self.source_instance, default_project=project)
        if all_literal(self.body):
            instance_body_fields(
                parse_key_argument(self.body),  # type: ignore[arg-type]  # checked by the function
                machine_image_schemas(self.api_version),
                given=self._dedicated_arguments(),
            )

    def _dedicated_arguments(self) -> dict[str, object]:
        """The arguments that set an Instance field of their own, by field."""
        return dedicated_field_arguments(
            machine_type=self.machine_type,
            network_interfaces=self.network_interfaces,
            labels=self.labels,
            metadata=self.metadata,
            description=self.description,
            deletion_protection=_protection(self.deletion_protection, parse_key_argument(self.body)),
            service_accounts=self.service_accounts,
            source_machine_image_encryption_key=self.source_machine_image_encryption_key,
        )

    def _image_reference(self, project_id: str) -> tuple[str, str]:
        """``source_machine_image`` as ``(project, name)``: a name (a label value), not an id."""
        image_project, image_name = parse_machine_image_ref(
            self.source_machine_image, default_project=project_id, parameter="source_machine_image"
        )
        validate_machine_image_name(image_name, "source_machine_image")
        return image_project, image_name

    def _chosen_image(
        self,
        context: Context,
        source: InstanceRef,
        image_project: str,
        labels: dict[str, str],
        restored: tuple[str, str, str],
    ) -> str:
        """The name of the newest READY image of ``source`` in ``image_project`` carrying ``labels``: chosen
        with one paged ``machineImages.list``, once per task instance (kept in an XCom of this task instance,
        so that resuming after a deferral, or cleaning up, restores and checks the same image; a retry keeps
        the image an earlier try restored, :meth:`_earlier_tries_image`).

        :param context: the task's context.
        :param source: the source instance.
        :param image_project: the project holding its images.
        :param labels: labels the image must carry.
        :param restored: the instance to restore, as ``(project, zone, name)``.
        :raises ComputeEngineError: there is none (Airflow retries: one may be READY later).
        """
        ti = context["ti"]
        kept = ti.xcom_pull(task_ids=self.task_id, key=CHOSEN_IMAGE_XCOM_KEY, map_indexes=ti.map_index)
        if isinstance(kept, dict) and (kept.get("project_id"), kept.get("for")) == (image_project, source.partial_url):
            return validate_machine_image_name(kept.get("name"), "source_machine_image")
        canonical = SourceNames().canonical(self.hook, source)  # a project number or instance id: one instances.get
        chosen = self._earlier_tries_image(context, canonical, image_project, labels, restored)
        if chosen is None:
            images = self.hook.list_machine_images(project_id=image_project, filter_=list_filter(canonical))
            chosen = newest_image_of(images, canonical, labels)
            if chosen is None:
                raise ComputeEngineError(
                    f"No READY machine image of {canonical.partial_url} in project {image_project}"
                    + (f" carrying labels {labels}" if labels else "")
                    + f" ({len(images)} image(s) listed by its source and status): nothing to restore"
                )
        summary = chosen_image_summary(image_project, source.partial_url, chosen)
        self.log.info(
            "Restoring the newest READY image of %s: %s (created %s)",
            canonical.partial_url,
            summary["name"],
            summary["creation_timestamp"],
        )
        ti.xcom_push(key=CHOSEN_IMAGE_XCOM_KEY, value=summary)
        return validate_machine_image_name(summary["name"], "source_machine_image")

    def _earlier_tries_image(
        self,
        context: Context,
        source: InstanceRef,
        image_project: str,
        labels: dict[str, str],
        restored: tuple[str, str, str],
    ) -> Mapping[str, Any] | None:
        """On a retry, the image an earlier try of this task instance restored the instance from, if it still
        qualifies (READY, of ``source``, carrying ``labels``); None on a first try or when there is none.

        The retry sends the earlier try's ``requestId``, so the server answers with that try's insert, whose
        instance was made from the image chosen then: choosing a newer image now would make the create flow
        refuse the instance as a restore of another image (the retry failed so).

        :param context: the task's context.
        :param source: the source instance, canonical.
        :param image_project: the project holding its images.
        :param labels: labels the image must carry.
        :param restored: the instance to restore, as ``(project, zone, name)``.
        """
        if not context_is_retry(context):
            return None
        project_id, zone, name = restored
        identity = TaskInstanceIdentity.of(context["ti"])
        try:
            instance = self.hook.get_instance(zone=zone, name=name, project_id=project_id)
            made_from = image_restored_by(instance, dag_id=identity.dag_id, restore_id=task_instance_key(identity))
            if made_from is None or made_from[0] != image_project:
                return None
            image = self.hook.get_machine_image(name=made_from[1], project_id=image_project)
        except ResourceNotFoundError:
            return None
        if newest_image_of([image], source, labels) is None:
            return None
        self.log.info("An earlier try restored %s from %s: this try keeps that image", name, made_from[1])
        return image

    def execute(self, context: Context) -> dict[str, Any]:
        try:
            return super().execute(context)
        except InstanceNotRunningError as error:
            raise self._after_unusable(context, error) from error

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the triggerer (see :meth:`CreateAndWaitBaseOperator.execute_complete`).

        :param context: the task's context.
        :param event: the trigger's event.
        """
        try:
            return super().execute_complete(context, event)
        except InstanceNotRunningError as error:
            raise self._after_unusable(context, error) from error

    def _after_unusable(self, context: Context, error: InstanceNotRunningError) -> InstanceNotRunningError:
        """Delete what this restore made (only if this task instance made it); the error, saying what was done."""
        request = self.prepare_request(context)
        done = clean_up_failed_restore(
            self.hook, request, dag_id=context["ti"].dag_id, is_retry=context_is_retry(context), log=self.log
        )
        self.log.warning("Restored instance %s is unusable: %s", request.name, done)
        return InstanceNotRunningError(f"{error} After that, {done}.")

    def prepare_request(self, context: Context) -> CreateRequest:
        """Validate every argument and build the Instance body; no request is sent, except, with
        ``source_instance``, the one listing that chooses the image (after every other check).

        :param context: the task's context (the task instance names the default labels).
        :raises MachineImageValidationError: an argument breaks a rule (the message names it).
        """
        name = validate_machine_image_name(self.name, "name")
        zone = validate_zone(self.zone, "zone")
        request_id = validate_request_id(self.request_id) if self.request_id is not None else None
        project_id = self.resolve_project_id()
        identity = TaskInstanceIdentity.of(context["ti"])
        given = _restore_labels(self.labels)
        if self.verify_boot:  # checked now, before the restore: not after a VM was made
            validate_console_pattern(self.boot_pattern, "boot_pattern")
        if self.source_instance is None:
            image_project, image_name = self._image_reference(project_id)
        else:
            source = parse_source_instance(self.source_instance, default_project=project_id)
            image_project = validate_project_id(self.image_project or project_id, "image_project")
            labels = _image_labels(self.image_label_selector)
            _, checked = self._build(name, zone, project_id, identity, given, (image_project, "to-be-chosen"))
            if not image_project.isdigit():  # a project number is resolved by the flow, after the listing
                check_cross_project(checked, image_project=image_project, project_id=project_id)
            image_name = self._chosen_image(context, source, image_project, labels, (project_id, zone, name))
        target, body = self._build(name, zone, project_id, identity, given, (image_project, image_name))
        return CreateRequest(
            target=target,
            project_id=project_id,
            name=name,
            body=body,
            request_ids=RequestIds(identity, project_id, instance_key(zone, name), "restore", fixed=request_id),
            owner_key=task_instance_key(identity),
            if_exists=self.if_exists,
        )

    def _build(
        self,
        name: str,
        zone: str,
        project_id: str,
        identity: TaskInstanceIdentity,
        given: dict[str, str],
        image: tuple[str, str],
    ) -> tuple[RestoredInstanceTarget, dict[str, Any]]:
        """The restore's target and its checked Instance body, for ``image`` (``(project, name)``)."""
        target = RestoredInstanceTarget(zone, image[0], image[1], dag_id=identity.dag_id)
        owner = restore_labels(image[1], dag_id=identity.dag_id, restore_id=task_instance_key(identity))
        body = parse_key_argument(self.body)
        return target, build_instance_body(
            name=name,
            zone=zone,
            source_machine_image=target.source_machine_image,
            machine_type=self.machine_type,
            network_interfaces=self.network_interfaces,
            labels=merge_default_labels({**given, **owner}, default_labels(identity)),
            metadata=self.metadata,
            description=self.description,
            body=body,  # type: ignore[arg-type]  # checked by the builder
            schemas=machine_image_schemas(self.api_version),
            deletion_protection=_protection(self.deletion_protection, body),
            service_accounts=self.service_accounts,
            source_machine_image_encryption_key=parse_key_argument(self.source_machine_image_encryption_key),  # type: ignore[arg-type]
        )

    def _with_chosen_image(self, context: Context, summary: dict[str, Any]) -> dict[str, Any]:
        """The summary, naming the image a ``source_instance`` restore chose (``chosen_image``)."""
        if self.source_instance is None:
            return with_chosen_image(summary, None)
        ti = context["ti"]
        return with_chosen_image(
            summary, ti.xcom_pull(task_ids=self.task_id, key=CHOSEN_IMAGE_XCOM_KEY, map_indexes=ti.map_index)
        )

    def succeeded(self, context: Context, summary: dict[str, Any]) -> dict[str, Any]:
        """The summary, naming the image a ``source_instance`` restore chose (``chosen_image``), with ``boot``
        (the boot check's summary) when ``verify_boot`` and the instance is RUNNING.

        The check is :class:`~airflow_machine_images.operators.boot.ComputeEngineVerifyBootOperator`'s, run
        within this task's deadline on the instance this restore made (by its id); a deferred check resumes in
        :meth:`execute_boot_complete`.
        """
        summary = self._with_chosen_image(context, summary)
        if not self.verify_boot or summary.get("status") != "RUNNING":
            return summary
        check = self._boot_check(summary)
        return {
            **summary,
            "boot": verify_boot(self, check, extra={"restore": summary}, method_name="execute_boot_complete"),
        }

    def execute_boot_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the boot check in the triggerer: the restore's summary with ``boot``, or the boot failure.

        :param context: the task's context.
        :param event: the event of :class:`~airflow_machine_images.triggers.InstanceBootTrigger`.
        """
        summary = dict((event.get("extra") or {}).get("restore") or {})
        with failing_on_bad_input():
            check = self._boot_check(summary)
        return {**summary, "boot": boot_outcome(self, check, event)}

    def _boot_check(self, summary: dict[str, Any]) -> BootCheck:
        """The boot check of the restored instance: by its id, in its project and zone."""
        return BootCheck.checked(
            project_id=summary.get("project_id"),
            zone=summary.get("zone"),
            instance=str(summary.get("id")),
            boot_pattern=self.boot_pattern,
            failure_pattern=DEFAULT_FAILURE_PATTERN,
        )

    def persist_link(self, context: Context, request: CreateRequest) -> str:
        """Store the instance's console link; return its URL."""
        zone = str(request.target.zone)
        return InstanceLink.persist(context, self, project_id=request.project_id, zone=zone, name=request.name)
