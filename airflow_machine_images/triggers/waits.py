"""Triggers: waits that run in the triggerer, so a waiting task holds no worker slot.

A trigger's serialized kwargs hold identifiers and settings only (project, names, connection id,
impersonation chain, API version, endpoint, poll interval, the task's own request budget): never a
token or key material. Waits go through the process-wide coalescing pollers of
:mod:`airflow_machine_images.triggers.polling`, so a thousand triggers in one project cost a few list calls
per interval, and a trigger that is re-created on another triggerer after a crash simply registers
again and carries on. Each wait brings its triggerer's share of the per-project request budget
(:mod:`airflow_machine_images.triggers.budget`, read from ``[machine_images]`` when the trigger runs).
"""

from __future__ import annotations

import asyncio
import importlib
import time
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_machine_images import metrics
from airflow_machine_images.api.calls import API_VERSIONS
from airflow_machine_images.api.redaction import redact_event
from airflow_machine_images.api.responses import raise_for_operation_error
from airflow_machine_images.api.timestamps import parse_timestamp
from airflow_machine_images.compat import BaseTrigger, TriggerEvent
from airflow_machine_images.config import DEFAULT_REQUESTS_PER_MINUTE_PER_PROJECT
from airflow_machine_images.events import (
    EVENT_API_ERROR,
    EVENT_INVALID_ARGUMENT,
    EVENT_NOT_FOUND,
    EVENT_OPERATION_FAILED,
    EVENT_TIMEOUT,
    EVENT_UNUSABLE,
    IMAGE_EVENT_FIELDS,
    OPERATION_EVENT_FIELDS,
    api_error_fields,
)
from airflow_machine_images.exceptions import (
    ComputeEngineError,
    InsecureEndpointError,
    OperationFailedError,
)
from airflow_machine_images.hooks.connection import DEFAULT_CONN_ID, ComputeEngineConnectionMixin
from airflow_machine_images.hooks.transport_security import check_endpoint_allowed, configured_allowed_endpoints
from airflow_machine_images.logs import log_operation_warnings
from airflow_machine_images.triggers.budget import shares
from airflow_machine_images.triggers.polling import CoalescingPoller, MachineImagePoller, OperationPoller, poller_for
from airflow_machine_images.validation import (
    MachineImageValidationError,
    parse_machine_image_ref,
    validate_api_endpoint,
    validate_bool,
    validate_choice,
    validate_operation_name,
    validate_positive_int,
    validate_positive_number,
    validate_project_id,
    validate_zone,
)
from airflow_machine_images.validation.primitives import show_value

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence

    from airflow_machine_images.hooks.asynchronous import ComputeEngineMachineImageAsyncHook

T = TypeVar("T")


def _pick(resource: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    return {f: resource[f] for f in fields if f in resource}


class _ComputeEngineTrigger(ComputeEngineConnectionMixin, BaseTrigger):
    """What every trigger here shares: the connection settings, the hook, serialization, the deadline.

    The kwargs come back from the database, so they may have been tampered with: they are stored as
    given and checked when the trigger runs (:meth:`_problem`), and a bad one ends in an error event for
    this trigger alone, before any request and before it joins a poller shared with other triggers.
    """

    project_id: str  # always given: a trigger is made with the task's resolved project

    def __init__(
        self,
        *,
        project_id: str,
        gcp_conn_id: str = DEFAULT_CONN_ID,
        impersonation_chain: str | Sequence[str] | None = None,
        api_version: str = "beta",
        api_endpoint: str | None = None,
        poll_interval: float = 10.0,
        deadline: float | None = None,
        event_extra: dict[str, Any] | None = None,
        requests_per_minute_per_project: int | None = None,
    ) -> None:
        super().__init__()
        self.project_id = project_id
        self.gcp_conn_id = gcp_conn_id
        # a list, as it is after a round trip through the database
        self.impersonation_chain = (
            list(impersonation_chain) if isinstance(impersonation_chain, (list, tuple)) else impersonation_chain
        )
        self.api_version = api_version
        self.api_endpoint = api_endpoint
        self.poll_interval = poll_interval
        self.deadline = deadline
        self.event_extra = event_extra if event_extra is not None else {}
        self.requests_per_minute_per_project = requests_per_minute_per_project
        #: This triggerer's share of the configured total: its pollers' default (:meth:`_read_budget`).
        self.configured_requests_per_minute: float = float(DEFAULT_REQUESTS_PER_MINUTE_PER_PROJECT)
        #: This triggerer's share of the task's own total; None if the task set none (:meth:`_read_budget`).
        self.max_requests_per_minute: float | None = None

    def _own_kwargs(self) -> dict[str, Any]:
        raise NotImplementedError

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The class path and the kwargs that re-create this trigger (identifiers and settings only)."""
        module = type(self).__module__
        public = "airflow_machine_images.triggers" if module.startswith("airflow_machine_images.triggers") else module
        return (
            f"{public}.{type(self).__qualname__}",
            {
                **self._own_kwargs(),
                "project_id": self.project_id,
                **self.connection_kwargs(),
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "event_extra": self.event_extra,
                "requests_per_minute_per_project": self.requests_per_minute_per_project,
            },
        )

    def _problem(self, check: Callable[[], object]) -> str | None:
        """Why the stored kwargs cannot be used; None if they can.

        :param check: checks the trigger's own kwargs (raising :class:`MachineImageValidationError`).
        """
        try:
            validate_project_id(self.project_id)
            validate_choice(self.api_version, "api_version", API_VERSIONS)
            if self.api_endpoint is not None:
                validate_api_endpoint(self.api_endpoint)
            _validate_connection_id(self.gcp_conn_id)
            _validate_impersonation_chain(self.impersonation_chain)
            validate_positive_number(self.poll_interval, "poll_interval")
            if self.deadline is not None:
                validate_positive_number(self.deadline, "deadline")
            if not isinstance(self.event_extra, dict):
                raise MachineImageValidationError("event_extra", "must be a dict", show_value(self.event_extra))
            if self.requests_per_minute_per_project is not None:
                validate_positive_int(self.requests_per_minute_per_project, "requests_per_minute_per_project")
            check()
        except MachineImageValidationError as error:
            return str(error)
        return None

    async def _read_budget(self) -> str | None:
        """Read ``[machine_images]``: set the budgets of this wait; why they cannot be set, or None.

        :attr:`configured_requests_per_minute` is this triggerer's share of the configured total (the
        project's budget across all its pollers here, and the budget of every wait without a total of its
        own); :attr:`max_requests_per_minute` is its share of the task's ``requests_per_minute_per_project``,
        which paces this wait's own reads only.
        Read off the event loop: the first read of a provider option may make Airflow discover every
        installed provider, which would block every other trigger meanwhile.
        """
        try:
            configured, task = await asyncio.to_thread(shares, self.requests_per_minute_per_project)
        except MachineImageValidationError as error:
            return str(error)
        self.configured_requests_per_minute, self.max_requests_per_minute = configured, task
        return None

    async def _check_endpoint(self) -> str | None:
        """Why the stored ``api_endpoint`` may not be called (``[machine_images] allowed_endpoints``), or None.

        The kwargs come from the database, where anyone who can write it could point a wait (and its
        token) elsewhere; refused here, the trigger yields an error event and joins no shared poller.
        The option is read off the event loop (its first read may discover every provider).
        """
        try:
            if self.api_endpoint is None:  # the connection extra, or Google's: the hook checks it; the list now
                await asyncio.to_thread(configured_allowed_endpoints)
            else:
                endpoint = validate_api_endpoint(self.api_endpoint)
                await asyncio.to_thread(check_endpoint_allowed, endpoint, "the trigger's api_endpoint")
        except (MachineImageValidationError, InsecureEndpointError) as error:
            return str(error)
        return None

    def _poller(
        self,
        kind: type[CoalescingPoller],
        hook: ComputeEngineMachineImageAsyncHook,
        project_id: str,
        zone: str | None = None,
    ) -> CoalescingPoller:
        """The shared poller of ``kind`` for the project; one made now defaults to the configured share.

        :param kind: the poller class.
        :param hook: the async hook.
        :param project_id: the project.
        :param zone: the zone of zonal operations.
        """
        return poller_for(
            kind, hook, project_id, max_requests_per_minute=self.configured_requests_per_minute, zone=zone
        )

    async def _async_hook(self) -> ComputeEngineMachineImageAsyncHook:
        """The async hook, with the hook module (Google's libraries, aiohttp) imported off the event loop.

        The first trigger in a triggerer would otherwise import them on the loop and block every other
        trigger for most of a second.
        """
        await asyncio.to_thread(_import_transports)
        return self.new_async_hook()

    async def _wait(self, wait: Awaitable[T]) -> T:
        """Await ``wait`` until the trigger's deadline.

        :param wait: the poller's wait.
        :raises asyncio.TimeoutError: the deadline passed first.
        """
        remaining = None if self.deadline is None else max(0.0, float(self.deadline) - time.time())
        return await asyncio.wait_for(wait, remaining)

    def _event(self, status: str, message: str, reason: str | None = None, **payload: Any) -> TriggerEvent:
        body = {
            "status": status,
            "message": message,
            "project_id": self.project_id,
            "deadline": self.deadline,
            "extra": self.event_extra,
        }
        if reason is not None:
            body["reason"] = reason
        return TriggerEvent(redact_event({**body, **payload}))  # persisted and logged: the server's words redacted

    def _api_error_event(self, error: ComputeEngineError, **payload: Any) -> TriggerEvent:
        """The event of a wait the API ended: the error's message and kind, so the task raises the same error.

        :param error: what the API calls raised (after the hook's retries).
        :param payload: the trigger's own fields of the event.
        """
        return self._event("error", str(error), EVENT_API_ERROR, **api_error_fields(error), **payload)


def _import_transports() -> None:
    importlib.import_module("airflow_machine_images.hooks.asynchronous")
    importlib.import_module("aiohttp")


def _validate_connection_id(value: object) -> None:
    if not isinstance(value, str) or not value:
        raise MachineImageValidationError("gcp_conn_id", "must be a non-empty string", show_value(value))


def _validate_impersonation_chain(value: object) -> None:
    chain = [value] if isinstance(value, str) else value
    if chain is not None and (not isinstance(chain, list) or not all(isinstance(a, str) and a for a in chain)):
        raise MachineImageValidationError(
            "impersonation_chain", "must be a service account, a list of them, or None", show_value(value)
        )


class MachineImageOperationTrigger(_ComputeEngineTrigger):
    """Wait for a global operation (or a zonal one, with ``zone``) to be DONE; yield one event.

    The event carries ``operation_name``, ``project_id``, ``operation`` (a trimmed Operation),
    ``errors`` (``code``/``message`` pairs; empty on success), a readable ``message`` and ``extra``
    (``event_extra`` unchanged, for the deferring task's bookkeeping).

    :param operation_name: the operation's name.
    :param project_id: the project.
    :param zone: the zone of a zonal operation (``zoneOperations``); None for a global one.
    :param gcp_conn_id: the Airflow connection to Google Cloud.
    :param impersonation_chain: service account(s) to impersonate.
    :param api_version: ``beta`` or ``v1``.
    :param api_endpoint: another API root (e.g. the emulator); refused (an error event) unless
        ``[machine_images] allowed_endpoints`` lists it.
    :param poll_interval: the longest pause between checks when polls are coalesced.
    :param event_extra: JSON-serialisable data returned unchanged in the event.
    :param requests_per_minute_per_project: this wait's total budget for the project across all
        triggerers, instead of ``[machine_images] requests_per_minute_per_project`` (None: that).
    """

    def __init__(self, *, operation_name: str, zone: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.operation_name = operation_name
        self.zone = zone

    def _own_kwargs(self) -> dict[str, Any]:
        return {"operation_name": self.operation_name, "zone": self.zone}

    def _check_own_kwargs(self) -> None:
        validate_operation_name(self.operation_name)
        if self.zone is not None:
            validate_zone(self.zone)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait (coalesced with every other waiter on this project) and yield the outcome."""
        name = self.operation_name
        problem = self._problem(self._check_own_kwargs) or await self._read_budget() or await self._check_endpoint()
        if problem:
            yield self._event("error", problem, EVENT_INVALID_ARGUMENT, operation_name=name, operation=None, errors=[])
            return
        self.log.info("Waiting for operation %s in project %s", name, self.project_id)
        try:
            poller = self._poller(OperationPoller, await self._async_hook(), self.project_id, self.zone)
            operation = await self._wait(
                poller.wait_for(name, _done_or_missing, self.poll_interval, self.max_requests_per_minute)
            )
        except asyncio.TimeoutError:
            message = f"Operation {name} in project {self.project_id} was not DONE by the task's deadline"
            yield self._event("error", message, EVENT_TIMEOUT, operation_name=name, operation=None, errors=[])
            return
        except ComputeEngineError as error:
            yield self._api_error_event(
                error,
                operation_name=name,
                operation=None,
                errors=[],
            )
            return
        if operation is None:
            message = f"Operation {name} was not found in project {self.project_id} (expired?)"
            yield self._event("error", message, EVENT_NOT_FOUND, operation_name=name, operation=None, errors=[])
            return
        log_operation_warnings(self.log, operation)
        metrics.detection_latency("triggerer", parse_timestamp(operation.get("endTime")), time.time())
        trimmed = _pick(operation, OPERATION_EVENT_FIELDS)
        try:
            raise_for_operation_error(operation)
        except OperationFailedError as failure:
            yield self._event(
                "error",
                str(failure),
                EVENT_OPERATION_FAILED,
                operation_name=name,
                operation=trimmed,
                errors=failure.errors,
            )
            return
        yield self._event("success", f"Operation {name} is DONE", operation_name=name, operation=trimmed, errors=[])


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
    :param api_endpoint: another API root (e.g. the emulator); refused (an error event) unless
        ``[machine_images] allowed_endpoints`` lists it.
    :param poll_interval: the longest pause between checks.
    :param event_extra: JSON-serialisable data returned unchanged in the event.
    :param requests_per_minute_per_project: this wait's total budget for the project across all
        triggerers, instead of ``[machine_images] requests_per_minute_per_project`` (None: that).
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
        given = self.machine_image
        reference: tuple[str, str] | None = None

        def check() -> None:
            nonlocal reference
            validate_bool(self.fail_on_missing, "fail_on_missing")
            reference = parse_machine_image_ref(given, self.project_id)

        problem = self._problem(check) or await self._read_budget() or await self._check_endpoint()
        if problem or reference is None:
            yield self._event("error", str(problem), EVENT_INVALID_ARGUMENT, machine_image=given, image=None)
            return
        project_id, name = reference
        self.log.info("Waiting for machine image %s in project %s to be READY", name, project_id)
        try:
            poller = self._poller(MachineImagePoller, await self._async_hook(), project_id)
            image = await self._wait(
                poller.wait_for(name, self._is_final, self.poll_interval, self.max_requests_per_minute)
            )
        except asyncio.TimeoutError:
            message = f"Machine image {name} in project {project_id} was not READY by the task's deadline"
            yield self._event("error", message, EVENT_TIMEOUT, machine_image=name, image=None)
            return
        except ComputeEngineError as error:
            yield self._api_error_event(error, machine_image=name, image=None)
            return
        if image is None:
            message = f"Machine image {name} does not exist in project {project_id}"
            yield self._event("error", message, EVENT_NOT_FOUND, machine_image=name, image=None)
            return
        trimmed = _pick(image, IMAGE_EVENT_FIELDS)
        if image.get("status") == "READY":
            yield self._event("success", f"Machine image {name} is READY", machine_image=name, image=trimmed)
        else:
            message = f"Machine image {name} is {image.get('status')}; it will not become READY"
            yield self._event("error", message, EVENT_UNUSABLE, machine_image=name, image=trimmed)
