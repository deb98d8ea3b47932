"""Sensors for Compute Engine machine images and their operations: poke, reschedule or deferrable.

They fail at once, with the API's error codes and messages, when what they wait for cannot
succeed any more (an operation that ended in error, an INVALID image) instead of waiting out
their timeout; with ``soft_fail`` such a failure marks the task skipped, as for every sensor.
Like the operators, this module loads no Google or HTTP library when a DAG file imports it.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue, conf
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_machine_images.validation import validate_choice

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow.sdk import Context

    from airflow_machine_images.hooks import ComputeEngineMachineImageHook
    from airflow_machine_images.triggers import _ComputeEngineTrigger

API_VERSION_CHOICES = ("beta", "v1")


class _ComputeEngineSensor(BaseSensorOperator):
    """Connection settings, the hook and the deferrable path shared by both sensors."""

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
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.project_id = project_id
        self.gcp_conn_id = gcp_conn_id
        self.impersonation_chain = impersonation_chain
        self.api_version = validate_choice(api_version, "api_version", API_VERSION_CHOICES)
        self.api_endpoint = api_endpoint
        self.deferrable = deferrable

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

    def resolved_project_id(self) -> str:
        """The project to look in: the argument, else the connection's (validated)."""
        from airflow_machine_images.validation import MachineImageValidationError, validate_project_id

        try:
            return validate_project_id(self.project_id or self.hook.default_project_id)
        except MachineImageValidationError as exc:
            raise AirflowFailException(str(exc)) from exc

    def trigger(self) -> _ComputeEngineTrigger:
        """The trigger that waits in the triggerer instead of poking."""
        raise NotImplementedError

    def execute(self, context: Context) -> Any:
        """Poke (or reschedule) as usual; if deferrable, check once and then defer."""
        if not self.deferrable:
            return super().execute(context)
        try:
            outcome = self.poke(context)
        except AirflowFailException as exc:
            if self.soft_fail:
                raise AirflowSkipException(f"Skipping due to soft_fail: {exc}") from exc
            raise
        if outcome:
            return outcome.xcom_value if isinstance(outcome, PokeReturnValue) else None
        self.defer(
            trigger=self.trigger(),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: Mapping[str, Any]) -> Any:
        """Resume after the trigger: the summary on success, a failure carrying the API's errors otherwise.

        :param context: the task's context.
        :param event: the trigger's event.
        """
        if event.get("status") != "success":
            raise AirflowFailException(str(event.get("message")))
        self.log.info("%s", event.get("message"))
        return self.summarize_event(event)

    def summarize_event(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The XCom value for a success event."""
        raise NotImplementedError

    def _trigger_settings(self) -> dict[str, Any]:
        return {
            "project_id": self.resolved_project_id(),
            "gcp_conn_id": self.gcp_conn_id,
            "impersonation_chain": self.impersonation_chain,
            "api_version": self.api_version,
            "api_endpoint": self.api_endpoint,
            "poll_interval": self.poke_interval,
        }


def operation_summary(project_id: str, operation: Mapping[str, Any]) -> dict[str, Any]:
    """The XCom value of the operation sensor.

    :param project_id: the project.
    :param operation: the (possibly trimmed) Operation.
    """
    return {
        "project_id": project_id,
        "operation_name": operation.get("name"),
        "status": operation.get("status"),
        "operation_type": operation.get("operationType"),
        "target_link": operation.get("targetLink"),
        "end_time": operation.get("endTime"),
    }


class ComputeEngineMachineImageOperationSensor(_ComputeEngineSensor):
    """Wait for a global operation (e.g. a machine-image insert) to finish.

    Succeeds when the operation is DONE without error and returns a summary (``operation_name``,
    ``status``, ``target_link``, ...); fails at once, with the operation's error codes and
    messages, when it ended with an error.

    :param operation_name: the operation's name, e.g. from the insert operator's XCom:
        ``"{{ ti.xcom_pull(task_ids='create_image')['operation_name'] }}"``. Templated.
    :param project_id: the project; defaults to the connection's. Templated.
    :param gcp_conn_id: the Airflow connection to Google Cloud. Templated.
    :param impersonation_chain: service account(s) to impersonate. Templated.
    :param api_version: ``beta`` or ``v1``.
    :param api_endpoint: another API root (e.g. the emulator). Templated.
    :param deferrable: wait in the triggerer (defaults to ``[operators] default_deferrable``).
    :param poke_interval: seconds between checks (and the trigger's poll interval).
    """

    template_fields: Sequence[str] = (
        "operation_name",
        "project_id",
        "gcp_conn_id",
        "impersonation_chain",
        "api_endpoint",
    )

    def __init__(self, *, operation_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.operation_name = operation_name

    def _operation_name(self) -> str:
        from airflow_machine_images.validation import MachineImageValidationError, validate_operation_name

        try:
            return validate_operation_name(self.operation_name)
        except MachineImageValidationError as exc:
            raise AirflowFailException(str(exc)) from exc

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """Read the operation once: done, failed (raise), or not yet."""
        from airflow_machine_images.compute_api import raise_for_operation_error
        from airflow_machine_images.exceptions import OperationFailedError

        project_id = self.resolved_project_id()
        operation = self.hook.get_operation(operation_name=self._operation_name(), project_id=project_id)
        if operation.get("status") != "DONE":
            progress = operation.get("progress")
            self.log.info(
                "Operation %s: %s%s",
                self.operation_name,
                operation.get("status"),
                f" ({progress}%)" if progress is not None else "",
            )
            return False
        try:
            raise_for_operation_error(operation)
        except OperationFailedError as failure:
            raise AirflowFailException(str(failure)) from failure
        self.log.info("Operation %s is DONE", self.operation_name)
        return PokeReturnValue(is_done=True, xcom_value=operation_summary(project_id, operation))

    def trigger(self) -> _ComputeEngineTrigger:
        from airflow_machine_images.triggers import MachineImageOperationTrigger

        return MachineImageOperationTrigger(operation_name=self._operation_name(), **self._trigger_settings())

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
    :param api_endpoint: another API root (e.g. the emulator). Templated.
    :param deferrable: wait in the triggerer (defaults to ``[operators] default_deferrable``).
    :param poke_interval: seconds between checks (and the trigger's poll interval).
    """

    template_fields: Sequence[str] = (
        "machine_image",
        "project_id",
        "gcp_conn_id",
        "impersonation_chain",
        "api_endpoint",
    )

    def __init__(self, *, machine_image: str, fail_on_missing: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.machine_image = machine_image
        self.fail_on_missing = fail_on_missing

    def _image_ref(self) -> tuple[str, str]:
        from airflow_machine_images.validation import MachineImageValidationError, parse_machine_image_ref

        try:
            return parse_machine_image_ref(self.machine_image, default_project=self.resolved_project_id())
        except MachineImageValidationError as exc:
            raise AirflowFailException(str(exc)) from exc

    def resolved_project_id(self) -> str:
        """The project: the argument, else the one in ``machine_image``, else the connection's."""
        from airflow_machine_images.validation import MachineImageValidationError, parse_machine_image_ref

        if not self.project_id:
            try:
                return parse_machine_image_ref(self.machine_image, default_project=None)[0]
            except MachineImageValidationError:
                pass
        return super().resolved_project_id()

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """Read the image once: READY, unusable (raise), missing, or not yet."""
        from airflow_machine_images.exceptions import ResourceNotFoundError
        from airflow_machine_images.results import machine_image_summary

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

    def trigger(self) -> _ComputeEngineTrigger:
        from airflow_machine_images.triggers import MachineImageStatusTrigger

        project_id, name = self._image_ref()
        settings = {**self._trigger_settings(), "project_id": project_id}
        return MachineImageStatusTrigger(machine_image=name, fail_on_missing=self.fail_on_missing, **settings)

    def summarize_event(self, event: Mapping[str, Any]) -> dict[str, Any]:
        from airflow_machine_images.results import machine_image_summary

        image = event.get("image") or {}
        return machine_image_summary(
            project_id=str(event.get("project_id")),
            name=str(event.get("machine_image")),
            request_id=None,
            operation=None,
            image=image,
        )
