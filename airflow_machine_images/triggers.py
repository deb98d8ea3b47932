"""Triggers: waits that run in the triggerer, so a waiting task holds no worker slot.

A trigger's serialized kwargs hold identifiers and settings only (project, names, connection id,
impersonation chain, API version, endpoint, poll interval): never a token or key material. Waits
go through the process-wide coalescing pollers of :mod:`airflow_machine_images.polling`, so a
thousand triggers in one project cost a few list calls per interval, and a trigger that is
re-created on another triggerer after a crash simply registers again and carries on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping, Sequence

    from airflow_machine_images.hooks import ComputeEngineMachineImageAsyncHook

#: Operation fields an event carries (a trimmed Operation; no request bodies).
OPERATION_EVENT_FIELDS = (
    "name",
    "status",
    "progress",
    "operationType",
    "targetLink",
    "targetId",
    "clientOperationId",
    "insertTime",
    "endTime",
    "httpErrorStatusCode",
    "httpErrorMessage",
)
#: Machine image fields an event carries.
IMAGE_EVENT_FIELDS = ("name", "status", "selfLink", "id", "sourceInstance", "totalStorageBytes", "creationTimestamp")


def _pick(resource: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    return {f: resource[f] for f in fields if f in resource}


class _ComputeEngineTrigger(BaseTrigger):
    """What every trigger here shares: the connection settings, the hook, serialization."""

    def __init__(
        self,
        *,
        project_id: str,
        gcp_conn_id: str = "google_cloud_default",
        impersonation_chain: str | Sequence[str] | None = None,
        api_version: str = "beta",
        api_endpoint: str | None = None,
        poll_interval: float = 10.0,
        event_extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.project_id = project_id
        self.gcp_conn_id = gcp_conn_id
        self.impersonation_chain = (
            list(impersonation_chain) if isinstance(impersonation_chain, (list, tuple)) else impersonation_chain
        )
        self.api_version = api_version
        self.api_endpoint = api_endpoint
        self.poll_interval = poll_interval
        self.event_extra = dict(event_extra or {})

    def _own_kwargs(self) -> dict[str, Any]:
        raise NotImplementedError

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The class path and the kwargs that re-create this trigger (identifiers and settings only)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                **self._own_kwargs(),
                "project_id": self.project_id,
                "gcp_conn_id": self.gcp_conn_id,
                "impersonation_chain": self.impersonation_chain,
                "api_version": self.api_version,
                "api_endpoint": self.api_endpoint,
                "poll_interval": self.poll_interval,
                "event_extra": self.event_extra,
            },
        )

    def hook(self) -> ComputeEngineMachineImageAsyncHook:
        """A new async hook (it shares its HTTP session and credentials with its peers)."""
        from airflow_machine_images.hooks import ComputeEngineMachineImageAsyncHook

        return ComputeEngineMachineImageAsyncHook(
            gcp_conn_id=self.gcp_conn_id,
            impersonation_chain=self.impersonation_chain,
            api_version=self.api_version,
            api_endpoint=self.api_endpoint,
        )

    def _invalid(self, check: Callable[[], object]) -> str | None:
        """Why the (stored, so possibly tampered) identifiers cannot go into a URL; None if they can.

        Checked before any request, so a bad name ends in an error event, not in a request or a crash.
        """
        from airflow_machine_images.validation import MachineImageValidationError, validate_project_id

        try:
            validate_project_id(self.project_id)
            check()
        except MachineImageValidationError as error:
            return str(error)
        return None

    def _event(self, status: str, message: str, **payload: Any) -> TriggerEvent:
        return TriggerEvent(
            {"status": status, "message": message, "project_id": self.project_id, "extra": self.event_extra, **payload}
        )


class MachineImageOperationTrigger(_ComputeEngineTrigger):
    """Wait for a global operation to be DONE; yield one event, ``success`` or ``error``.

    The event carries ``operation_name``, ``project_id``, ``operation`` (a trimmed Operation),
    ``errors`` (``code``/``message`` pairs; empty on success), a readable ``message`` and ``extra``
    (``event_extra`` unchanged, for the deferring task's bookkeeping).

    :param operation_name: the operation's name.
    :param project_id: the project.
    :param gcp_conn_id: the Airflow connection to Google Cloud.
    :param impersonation_chain: service account(s) to impersonate.
    :param api_version: ``beta`` or ``v1``.
    :param api_endpoint: another API root (e.g. the emulator).
    :param poll_interval: the longest pause between checks when polls are coalesced.
    :param event_extra: JSON-serialisable data returned unchanged in the event.
    """

    def __init__(self, *, operation_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.operation_name = operation_name

    def _own_kwargs(self) -> dict[str, Any]:
        return {"operation_name": self.operation_name}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait (coalesced with every other waiter on this project) and yield the outcome."""
        from airflow_machine_images.compute_api import operation_errors
        from airflow_machine_images.exceptions import ComputeEngineError
        from airflow_machine_images.polling import OperationPoller, poller_for
        from airflow_machine_images.validation import validate_operation_name

        problem = self._invalid(lambda: validate_operation_name(self.operation_name))
        if problem:
            yield self._event("error", problem, operation_name=self.operation_name, operation=None, errors=[])
            return
        hook = self.hook()
        self.log.info("Waiting for operation %s in project %s", self.operation_name, self.project_id)
        try:
            operation = await poller_for(OperationPoller, hook, self.project_id).wait_for(
                self.operation_name, _done_or_missing, self.poll_interval
            )
        except ComputeEngineError as error:
            yield self._event("error", str(error), operation_name=self.operation_name, operation=None, errors=[])
            return
        if operation is None:
            message = f"Operation {self.operation_name} was not found in project {self.project_id} (expired?)"
            yield self._event("error", message, operation_name=self.operation_name, operation=None, errors=[])
            return
        errors = [
            {"code": str(e.get("code")), "message": str(e.get("message", ""))} for e in operation_errors(operation)
        ]
        trimmed = _pick(operation, OPERATION_EVENT_FIELDS)
        if errors:
            details = "; ".join(f"{e['code']}: {e['message']}" for e in errors)
            message = f"Operation {self.operation_name} failed: {details}"
            yield self._event("error", message, operation_name=self.operation_name, operation=trimmed, errors=errors)
        else:
            message = f"Operation {self.operation_name} is DONE"
            yield self._event("success", message, operation_name=self.operation_name, operation=trimmed, errors=[])


def _done_or_missing(operation: Mapping[str, Any] | None) -> bool:
    return operation is None or operation.get("status") == "DONE"


class MachineImageStatusTrigger(_ComputeEngineTrigger):
    """Wait for a machine image to be READY; yield ``success``, or ``error`` on INVALID (or absence).

    The image may not exist yet (another pipeline makes it): the trigger waits for it to appear,
    unless ``fail_on_missing``.

    :param machine_image: the image name.
    :param project_id: the project.
    :param fail_on_missing: yield an error as soon as the image is found not to exist.
    :param gcp_conn_id: the Airflow connection to Google Cloud.
    :param impersonation_chain: service account(s) to impersonate.
    :param api_version: ``beta`` or ``v1``.
    :param api_endpoint: another API root (e.g. the emulator).
    :param poll_interval: the longest pause between checks.
    :param event_extra: JSON-serialisable data returned unchanged in the event.
    """

    def __init__(self, *, machine_image: str, fail_on_missing: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.machine_image = machine_image
        self.fail_on_missing = fail_on_missing

    def _own_kwargs(self) -> dict[str, Any]:
        return {"machine_image": self.machine_image, "fail_on_missing": self.fail_on_missing}

    def _is_final(self, image: Mapping[str, Any] | None) -> bool:
        if image is None:
            return self.fail_on_missing
        return image.get("status") in ("READY", "INVALID")

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait (coalesced per project) and yield the outcome."""
        from airflow_machine_images.exceptions import ComputeEngineError
        from airflow_machine_images.polling import MachineImagePoller, poller_for
        from airflow_machine_images.validation import parse_machine_image_ref

        problem = self._invalid(lambda: parse_machine_image_ref(self.machine_image, self.project_id))
        if problem:
            yield self._event("error", problem, machine_image=self.machine_image, image=None)
            return
        hook = self.hook()
        self.log.info("Waiting for machine image %s in project %s to be READY", self.machine_image, self.project_id)
        try:
            image = await poller_for(MachineImagePoller, hook, self.project_id).wait_for(
                self.machine_image, self._is_final, self.poll_interval
            )
        except ComputeEngineError as error:
            yield self._event("error", str(error), machine_image=self.machine_image, image=None)
            return
        if image is None:
            message = f"Machine image {self.machine_image} does not exist in project {self.project_id}"
            yield self._event("error", message, machine_image=self.machine_image, image=None)
            return
        trimmed = _pick(image, IMAGE_EVENT_FIELDS)
        if image.get("status") == "READY":
            yield self._event(
                "success",
                f"Machine image {self.machine_image} is READY",
                machine_image=self.machine_image,
                image=trimmed,
            )
        else:
            message = f"Machine image {self.machine_image} is {image.get('status')}; it will not become READY"
            yield self._event("error", message, machine_image=self.machine_image, image=trimmed)
