"""Sensors for Compute Engine machine images and their operations: poke, reschedule or deferrable.

They fail at once, with the API's error codes and messages, when what they wait for cannot
succeed any more (an operation that ended in error, an INVALID image) instead of waiting out
their timeout; with ``soft_fail`` such a failure marks the task skipped, as for every sensor.
Like the operators, this module loads no Google or HTTP library when a DAG file imports it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_machine_images import triggers
from airflow_machine_images.api.responses import raise_for_operation_error
from airflow_machine_images.events import EVENT_TIMEOUT, error_from_event
from airflow_machine_images.exceptions import OperationFailedError, ResourceNotFoundError, failing_on_bad_input
from airflow_machine_images.flows.deadlines import Deadline
from airflow_machine_images.hooks.connection import ComputeEngineConnectionMixin, connection_template_fields
from airflow_machine_images.logs import log_operation_warnings
from airflow_machine_images.operators.base import ANY_PROJECT
from airflow_machine_images.results import machine_image_summary, operation_summary
from airflow_machine_images.validation import (
    MachineImageValidationError,
    parse_machine_image_ref,
    validate_bool,
    validate_operation_name,
    validate_optional_positive_int,
    validate_zone,
)
from airflow_machine_images.validation.templates import is_literal

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow.providers.common.compat.sdk import Context

    from airflow_machine_images.compat import BaseTrigger


class _ComputeEngineSensor(ComputeEngineConnectionMixin, BaseSensorOperator):
    """Connection settings, the hook and the deferrable path shared by both sensors.

    Failures follow the Task SDK's sensor policy (``soft_fail``, ``never_fail``, ``silent_fail``) in
    every mode: a deferrable sensor pokes once through the base sensor's loop and defers from inside
    that poke, and resumes through the base sensor's ``resume_execution``.
    """

    def __init__(
        self,
        *,
        project_id: str | None = None,
        gcp_conn_id: str = "google_cloud_default",
        impersonation_chain: str | Sequence[str] | None = None,
        api_version: str = "beta",
        api_endpoint: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: timedelta | float = 10.0,
        requests_per_minute_per_project: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.set_connection(
            project_id=project_id,
            gcp_conn_id=gcp_conn_id,
            impersonation_chain=impersonation_chain,
            api_version=api_version,
            api_endpoint=api_endpoint,
        )
        self.deferrable = validate_bool(deferrable, "deferrable")
        self.requests_per_minute_per_project = validate_optional_positive_int(
            requests_per_minute_per_project, "requests_per_minute_per_project"
        )

    def resolve_project_id(self) -> str:
        """The project to look in: the argument, else the connection's (validated)."""
        with failing_on_bad_input():
            return super().resolve_project_id()

    def check(self, context: Context) -> bool | PokeReturnValue:
        """Read the resource once: done (with the XCom value), failed for good (raise), or not yet."""
        raise NotImplementedError

    def trigger(self) -> BaseTrigger:
        """The trigger that waits in the triggerer instead of poking."""
        raise NotImplementedError

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """Check once; if not done and deferrable, defer (the triggerer takes over the wait)."""
        outcome = self.check(context)
        if not outcome and self.deferrable:
            self.defer(trigger=self.trigger(), method_name="execute_complete", timeout=timedelta(seconds=self.timeout))
        return outcome

    def execute_complete(self, context: Context, event: Mapping[str, Any]) -> Any:
        """Resume after the trigger: the summary on success, a failure carrying the API's errors otherwise.

        :param context: the task's context.
        :param event: the trigger's event.
        """
        if event.get("status") != "success":
            if event.get("reason") == EVENT_TIMEOUT:
                raise AirflowSensorTimeout(str(event.get("message")))
            raise AirflowFailException(str(error_from_event(event)))
        self.log.info("%s", event.get("message"))
        return self.summarize_event(event)

    def summarize_event(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The XCom value for a success event."""
        raise NotImplementedError

    def _trigger_settings(self) -> dict[str, Any]:
        return {
            "project_id": self.resolve_project_id(),
            "poll_interval": self.poke_interval,
            "deadline": Deadline.after(self.timeout).at,
            "requests_per_minute_per_project": self.requests_per_minute_per_project,
            **self.connection_kwargs(),
        }


class ComputeEngineMachineImageOperationSensor(_ComputeEngineSensor):
    """Wait for a global operation (e.g. a machine-image insert), or a zonal one (``zone``), to finish.

    Succeeds when the operation is DONE without error and returns a summary (``operation_name``,
    ``status``, ``target_link``, ...); fails at once, with the operation's error codes and
    messages, when it ended with an error.

    :param operation_name: the operation's name, e.g. from the insert operator's XCom:
        ``"{{ ti.xcom_pull(task_ids='create_image')['operation_name'] }}"``. Templated.
    :param zone: the zone of a zonal operation (e.g. the restore operator's instance insert, whose XCom
        has ``zone``); None for a global operation. Templated.
    :param project_id: the project; defaults to the connection's. Templated.
    :param gcp_conn_id: the Airflow connection to Google Cloud. Templated.
    :param impersonation_chain: service account(s) to impersonate. Templated.
    :param api_version: ``beta`` or ``v1``.
    :param api_endpoint: another API root (e.g. the emulator), one ``[machine_images] allowed_endpoints`` lists.
    :param deferrable: wait in the triggerer (defaults to ``[operators] default_deferrable``).
    :param poke_interval: seconds between checks (and the trigger's poll interval).
    :param requests_per_minute_per_project: when deferrable, the most requests per minute this wait may
        cost the project across all triggerers, instead of ``[machine_images] requests_per_minute_per_project``
        (None: that), for the reads made for this wait alone, never above the configured total.
    """

    template_fields: Sequence[str] = connection_template_fields("operation_name", "zone")

    def __init__(self, *, operation_name: str, zone: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.operation_name = operation_name
        self.zone = zone
        # Written literally, they are checked now: a region given as the zone fails the DAG file's import.
        if is_literal(operation_name):
            validate_operation_name(operation_name)
        if zone and is_literal(zone):
            validate_zone(zone)

    def _operation_name(self) -> str:
        with failing_on_bad_input():
            return validate_operation_name(self.operation_name)

    def _zone(self) -> str | None:
        with failing_on_bad_input():
            return validate_zone(self.zone) if self.zone else None

    def check(self, context: Context) -> bool | PokeReturnValue:
        """Read the operation once: done, failed (raise), or not yet."""
        project_id = self.resolve_project_id()
        operation = self.hook.get_operation(
            operation_name=self._operation_name(), project_id=project_id, zone=self._zone()
        )
        if operation.get("status") != "DONE":
            progress = operation.get("progress")
            self.log.info(
                "Operation %s: %s%s",
                self.operation_name,
                operation.get("status"),
                f" ({progress}%)" if progress is not None else "",
            )
            return False
        log_operation_warnings(self.log, operation)
        try:
            raise_for_operation_error(operation)
        except OperationFailedError as failure:
            raise AirflowFailException(str(failure)) from failure
        self.log.info("Operation %s is DONE", self.operation_name)
        return PokeReturnValue(is_done=True, xcom_value=operation_summary(project_id, operation))

    def trigger(self) -> BaseTrigger:
        return triggers.MachineImageOperationTrigger(
            operation_name=self._operation_name(), zone=self._zone(), **self._trigger_settings()
        )

    def summarize_event(self, event: Mapping[str, Any]) -> dict[str, Any]:
        return operation_summary(str(event.get("project_id")), event.get("operation") or {})


class ComputeEngineMachineImageSensor(_ComputeEngineSensor):
    """Wait for a machine image to be READY (it may not exist yet: another pipeline may make it).

    Succeeds when the image is READY and returns the same summary as the insert operator; fails at
    once when it is INVALID, and, with ``fail_on_missing``, when it does not exist.

    :param machine_image: the image name, or its ``projects/P/global/machineImages/N`` path or URL. Templated.
    :param project_id: the project; defaults to the connection's (or the one in ``machine_image``). Templated.
    :param fail_on_missing: fail instead of waiting when the image does not exist.
    :param gcp_conn_id: the Airflow connection to Google Cloud. Templated.
    :param impersonation_chain: service account(s) to impersonate. Templated.
    :param api_version: ``beta`` or ``v1``.
    :param api_endpoint: another API root (e.g. the emulator), one ``[machine_images] allowed_endpoints`` lists.
    :param deferrable: wait in the triggerer (defaults to ``[operators] default_deferrable``).
    :param poke_interval: seconds between checks (and the trigger's poll interval).
    :param requests_per_minute_per_project: when deferrable, the most requests per minute this wait may
        cost the project across all triggerers, instead of ``[machine_images] requests_per_minute_per_project``
        (None: that), for the reads made for this wait alone, never above the configured total.
    """

    template_fields: Sequence[str] = connection_template_fields("machine_image")

    def __init__(self, *, machine_image: str, fail_on_missing: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.machine_image = machine_image
        self.fail_on_missing = validate_bool(fail_on_missing, "fail_on_missing")
        if is_literal(machine_image):  # checked now; a project-less name is read in any project
            parse_machine_image_ref(machine_image, default_project=ANY_PROJECT)

    def _image_ref(self) -> tuple[str, str]:
        with failing_on_bad_input():
            return parse_machine_image_ref(self.machine_image, default_project=self.resolve_project_id())

    def resolve_project_id(self) -> str:
        """The project: the argument, else the one in ``machine_image``, else the connection's."""
        if not self.project_id:
            try:
                return parse_machine_image_ref(self.machine_image, default_project=None)[0]
            except MachineImageValidationError:
                pass
        return super().resolve_project_id()

    def check(self, context: Context) -> bool | PokeReturnValue:
        """Read the image once: READY, unusable (raise), missing, or not yet."""
        project_id, name = self._image_ref()
        try:
            image = self.hook.get_machine_image(name=name, project_id=project_id)
        except ResourceNotFoundError:
            if self.fail_on_missing:
                raise AirflowFailException(f"Machine image {name} does not exist in project {project_id}") from None
            self.log.info("Machine image %s does not exist (yet)", name)
            return False
        status = image.get("status")
        if status == "INVALID":
            raise AirflowFailException(f"Machine image {name} is INVALID; it will not become READY")
        if status != "READY":
            self.log.info("Machine image %s: %s", name, status)
            return False
        summary = machine_image_summary(project_id=project_id, name=name, request_id=None, operation=None, image=image)
        return PokeReturnValue(is_done=True, xcom_value=summary)

    def trigger(self) -> BaseTrigger:
        project_id, name = self._image_ref()
        settings = {**self._trigger_settings(), "project_id": project_id}
        return triggers.MachineImageStatusTrigger(machine_image=name, fail_on_missing=self.fail_on_missing, **settings)

    def summarize_event(self, event: Mapping[str, Any]) -> dict[str, Any]:
        image = event.get("image") or {}
        return machine_image_summary(
            project_id=str(event.get("project_id")),
            name=str(event.get("machine_image")),
            request_id=None,
            operation=None,
            image=image,
        )
