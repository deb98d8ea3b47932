"""The synchronous hook for the Compute Engine machine-image API, for workers (``requests``).

It speaks through :mod:`airflow_machine_images.api` (request building, paging, response and error
mapping, retries), shares its settings with the async hook (:mod:`.settings`) and checks every
endpoint and call before sending (:mod:`.transport_security`). Each API method is a thin call of the
:class:`~airflow_machine_images.api.calls.ComputeApi` builder: names are checked by the operators,
sensors and triggers that take them, and the builder encodes every path segment.
"""

from __future__ import annotations

import time
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.google.common.hooks.base_google import GoogleBaseHook

from airflow_machine_images import metrics
from airflow_machine_images.api.calls import DEFAULT_ENDPOINT, ApiCall, ComputeApi, normalize_endpoint
from airflow_machine_images.api.paging import PageWalk, iter_pages
from airflow_machine_images.api.responses import deadline_exceeded, raise_for_operation_error, transport_error
from airflow_machine_images.api.retry import Attempts, EarlyAnswerBackoff
from airflow_machine_images.api.timestamps import parse_timestamp
from airflow_machine_images.exceptions import (
    MachineImageNotUsableError,
    OperationTimeoutError,
    PreconditionFailedError,
    TransientApiError,
)
from airflow_machine_images.hooks.instances import InstanceHookMethods
from airflow_machine_images.hooks.settings import ENDPOINT_EXTRA, MachineImageHookSettings, user_agent
from airflow_machine_images.hooks.transport_security import (
    check_endpoint_allowed,
    check_key_transport,
    check_transport_security,
    credentials_are_anonymous,
    proxy_for,
    requests_proxies,
)
from airflow_machine_images.validation import validate_api_endpoint, validate_project_id

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from google.auth.transport.requests import AuthorizedSession

    from airflow_machine_images.api.list_warnings import ListWarning

#: Image states from which READY will not come.
UNUSABLE_IMAGE_STATES = frozenset({"INVALID", "DELETING"})
#: How close to the caller's deadline a transient failure of a wait counts as the deadline's doing.
_DEADLINE_SLACK_SECONDS = 1.0


def describe_progress(operation: Mapping[str, Any]) -> tuple[str, int | None]:
    """The (status, progress) pair we log when it changes.

    :param operation: an Operation resource.
    """
    progress = operation.get("progress")
    return str(operation.get("status")), progress if isinstance(progress, int) else None


class ComputeEngineMachineImageHook(MachineImageHookSettings, InstanceHookMethods, GoogleBaseHook):
    """Create, inspect, relabel and delete Compute Engine machine images; wait for global operations.

    The instance, disk and serial console methods are :class:`~.instances.InstanceHookMethods`.

    Talks REST through google-auth's ``AuthorizedSession``. Every call is retried with exponential
    backoff and jitter on 429/5xx, dropped connections and timeouts (mutating calls keep their
    ``requestId``, so the server deduplicates them); other errors are raised as the typed
    exceptions of :mod:`airflow_machine_images.exceptions`.

    :param gcp_conn_id: the Airflow connection to Google Cloud.
    :param impersonation_chain: service account(s) to impersonate, as in the Google provider.
    :param api_version: ``beta`` (machine images are GA in both; beta carries the newest fields) or ``v1``.
    :param api_endpoint: another API root, e.g. ``http://127.0.0.1:8085`` for the emulator. Defaults to
        the connection extra ``compute_api_endpoint``, then ``https://compute.googleapis.com``; whichever
        it is must be one ``[machine_images] allowed_endpoints`` lists (checked before any credentials
        are read).
    :param retry_policy: when and how long to back off.
    :param connect_timeout: seconds to wait for a TCP connection.
    :param read_timeout: seconds to wait for an answer to an ordinary call.
    :param long_poll_timeout: seconds to wait for an answer to ``globalOperations.wait`` (the server
        holds it for up to about two minutes).
    :param call_timeout: seconds for one attempt as a whole, connection to last byte (None: the connect
        timeout plus the read timeout); per-read timeouts alone let a server that drips bytes hold a
        call for ever.
    :param max_response_bytes: the largest answer accepted (32 MiB); a larger one is refused unread.
    """

    hook_name = "Google Compute Engine Machine Images"

    #: The caller's deadline (seconds since the epoch): retries never pause past it (the operators
    #: set their task's ``timeout`` here, so a quota is waited out for as long as the task may wait).
    deadline: float | None = None

    # ------------------------------------------------------------------ plumbing

    @cached_property
    def api(self) -> ComputeApi:
        """The request builder for the configured endpoint and API version.

        The endpoint (the ``api_endpoint`` argument, else the connection extra, else Google's) is checked
        for its form and against ``[machine_images] allowed_endpoints`` here, before any credentials are
        read.
        """
        extra = None if self.api_endpoint else self._get_field(ENDPOINT_EXTRA)
        configured = self.api_endpoint or extra or DEFAULT_ENDPOINT
        parameter = "api_endpoint" if self.api_endpoint else ENDPOINT_EXTRA
        endpoint = validate_api_endpoint(configured, parameter)
        source = "the default endpoint" if not (self.api_endpoint or extra) else f"the {parameter} setting"
        check_endpoint_allowed(endpoint, source)
        return ComputeApi(endpoint=normalize_endpoint(endpoint), version=self.api_version)

    @cached_property
    def session(self) -> AuthorizedSession:
        """An authorised HTTP session (connection pooling, token refresh), made once per hook."""
        from google.auth.transport.requests import AuthorizedSession

        from airflow_machine_images.hooks.requests_transport import mount_deadline_adapters

        endpoint = self.api.endpoint  # checked (form, allow-list) before the credentials are read
        credentials = self.get_credentials()
        check_transport_security(endpoint, anonymous=credentials_are_anonymous(credentials))
        session = AuthorizedSession(credentials)
        session.headers["User-Agent"] = user_agent()
        mount_deadline_adapters(session)
        return session

    def resolve_project_id(self, project_id: str | None) -> str:
        """The given project, else the connection's; validated, so it is safe in a URL path.

        :param project_id: the project, or None for the connection's default.
        """
        return validate_project_id(project_id or self.default_project_id)

    @property
    def default_project_id(self) -> str | None:
        """The connection's ``project`` extra, else the credentials' project.

        The extra is read first because it needs no credentials (and so no network).
        """
        return self._get_field("project") or self.project_id

    def execute_call(self, call: ApiCall, *, deadline: float | None = None) -> dict[str, Any]:
        """Send one call, retrying transient faults per :attr:`retry_policy`; return its JSON.

        :param call: the call to send.
        :param deadline: ``time.monotonic()`` by which the caller needs the call over: every attempt's
            timeouts end there, and no retry starts after it (:class:`DeadlineExceededError`).
        """
        check_key_transport(call)
        # The task's deadline (epoch seconds) and this call's (monotonic): no retry pauses past either.
        call_deadline = None if deadline is None else time.time() + (deadline - time.monotonic())
        attempts = Attempts(self.retry_policy, self.log, deadline=_earliest(self.deadline, call_deadline))
        while True:
            try:
                answer = self._send(call, deadline)
            except Exception as error:
                metrics.api_request(call.action, metrics.error_kind(error))
                time.sleep(attempts.pause_after(error))
            else:
                metrics.api_request(call.action, "ok")
                return answer

    def _send(self, call: ApiCall, deadline: float | None = None) -> dict[str, Any]:
        """One attempt: send ``call`` within its whole-call deadline, read a bounded answer, map it.

        :param call: the call to send.
        :param deadline: ``time.monotonic()`` by which the caller needs the call over, or None.
        """
        import requests

        from airflow_machine_images.hooks.requests_transport import CallDeadline, read_limited

        limits = self._attempt_timeouts(call, deadline)
        with CallDeadline(limits.total) as watch:
            try:
                response = self.session.request(
                    call.method,
                    call.url,
                    params=dict(call.params),
                    json=dict(call.body) if call.body is not None else None,
                    timeout=(limits.connect, limits.read),
                    allow_redirects=False,
                    proxies=requests_proxies(proxy_for(call.url)),
                    stream=True,
                )
                with response:
                    raw = read_limited(
                        response.iter_content(65536), response.headers.get("Content-Length"), self.max_response_bytes
                    )
            except requests.RequestException as exc:
                if watch.expired:
                    raise deadline_exceeded(call, limits.total, limits.read) from exc
                raise transport_error(call, exc) from exc
        if watch.expired:  # cut mid-headers, http.client may take the shortened answer for a whole one
            raise deadline_exceeded(call, limits.total, limits.read)
        return self._parse_answer(call, response.status_code, raw, response.headers, self.session.credentials)

    # ------------------------------------------------------------------ machine images

    def insert_machine_image(
        self,
        *,
        body: Mapping[str, Any],
        source_instance: str,
        request_id: str,
        project_id: str | None = None,
    ) -> dict[str, Any]:
        """Start creating a machine image; return the insert Operation.

        :param body: the MachineImage resource (``name`` required).
        :param source_instance: the source instance as a partial or full URL
            (``projects/P/zones/Z/instances/I``).
        :param request_id: the UUID the server deduplicates repeats by.
        :param project_id: the project; defaults to the connection's.
        """
        project = self.resolve_project_id(project_id)
        call = self.api.insert_machine_image(project, body, source_instance=source_instance, request_id=request_id)
        return self.execute_call(call)

    def get_machine_image(self, *, name: str, project_id: str | None = None) -> dict[str, Any]:
        """Return a machine image.

        :param name: the image name.
        :param project_id: the project; defaults to the connection's.
        :raises ResourceNotFoundError: no such image.
        """
        return self.execute_call(self.api.get_machine_image(self.resolve_project_id(project_id), name))

    def iter_machine_images(
        self,
        *,
        project_id: str | None = None,
        filter_: str | None = None,
        order_by: str | None = None,
        page_size: int = 500,
        warnings: list[ListWarning] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield machine images page by page (every page, not just the first).

        :param project_id: the project; defaults to the connection's.
        :param filter_: a Compute list filter, e.g. ``labels.managed-by = airflow``.
        :param order_by: e.g. ``creationTimestamp desc``.
        :param page_size: images per page (at most 500).
        :param warnings: when given, each page's ``warning`` is appended to it: a warned list may have
            left images out (:mod:`airflow_machine_images.api.list_warnings`).
        """
        project = self.resolve_project_id(project_id)
        walk = PageWalk(what="machineImages.list")
        if warnings is not None:
            walk.warnings = warnings
        yield from iter_pages(
            lambda page_token: self.execute_call(
                self.api.list_machine_images(
                    project, filter_=filter_, max_results=page_size, page_token=page_token, order_by=order_by
                )
            ),
            what="machineImages.list",
            walk=walk,
        )

    def list_machine_images(
        self,
        *,
        project_id: str | None = None,
        filter_: str | None = None,
        order_by: str | None = None,
        warnings: list[ListWarning] | None = None,
    ) -> list[dict[str, Any]]:
        """Return all machine images matching ``filter_`` (all pages).

        :param project_id: the project; defaults to the connection's.
        :param filter_: a Compute list filter.
        :param order_by: e.g. ``creationTimestamp desc``.
        :param warnings: when given, each page's ``warning`` is appended to it (see :meth:`iter_machine_images`).
        """
        return list(
            self.iter_machine_images(project_id=project_id, filter_=filter_, order_by=order_by, warnings=warnings)
        )

    def delete_machine_image(self, *, name: str, request_id: str, project_id: str | None = None) -> dict[str, Any]:
        """Start deleting a machine image (permanent); return the delete Operation.

        :param name: the image name or numeric id (the delete flow sends the id of the image it checked).
        :param request_id: the UUID the server deduplicates repeats by.
        :param project_id: the project; defaults to the connection's.
        """
        call = self.api.delete_machine_image(self.resolve_project_id(project_id), name, request_id=request_id)
        return self.execute_call(call)

    def set_labels(
        self,
        *,
        name: str,
        labels: Mapping[str, str],
        project_id: str | None = None,
        label_fingerprint: str | None = None,
    ) -> dict[str, Any]:
        """Replace an image's labels; return the setLabels Operation.

        Without ``label_fingerprint`` the current one is read first; if it turns stale in between
        (HTTP 412) it is read again and the call retried once. (``machineImages.setLabels`` takes no
        ``requestId``; see :meth:`ComputeApi.set_labels`.)

        :param name: the image name.
        :param labels: the complete new label set.
        :param project_id: the project; defaults to the connection's.
        :param label_fingerprint: the fingerprint the labels must still have.
        :raises PreconditionFailedError: the given fingerprint is stale, or the read one turned stale twice.
        """
        project = self.resolve_project_id(project_id)
        if label_fingerprint is not None:
            return self.execute_call(
                self.api.set_labels(project, name, labels=labels, label_fingerprint=label_fingerprint)
            )
        try:
            return self._set_labels_as_read(project, name, labels)
        except PreconditionFailedError:
            self.log.info("Label fingerprint of %s changed meanwhile; reading it again", name)
        return self._set_labels_as_read(project, name, labels)

    def _set_labels_as_read(self, project: str, name: str, labels: Mapping[str, str]) -> dict[str, Any]:
        """Read the image's label fingerprint, then set its labels against it.

        :param project: the (resolved) project.
        :param name: the image name.
        :param labels: the complete new label set.
        """
        fingerprint = self.get_machine_image(name=name, project_id=project)["labelFingerprint"]
        return self.execute_call(self.api.set_labels(project, name, labels=labels, label_fingerprint=fingerprint))

    # ------------------------------------------------------------------ operations

    def get_operation(
        self, *, operation_name: str, project_id: str | None = None, zone: str | None = None
    ) -> dict[str, Any]:
        """Return a global operation (or a zonal one, with ``zone``).

        :param operation_name: the operation's name.
        :param project_id: the project; defaults to the connection's.
        :param zone: the zone of a zonal operation (None: a global operation).
        """
        call = self.api.get_operation(self.resolve_project_id(project_id), operation_name, zone=zone)
        return self.execute_call(call)

    def list_operations(
        self,
        *,
        project_id: str | None = None,
        filter_: str | None = None,
        zone: str | None = None,
        warnings: list[ListWarning] | None = None,
    ) -> list[dict[str, Any]]:
        """Every operation matching ``filter_`` (``globalOperations.list``, or ``zoneOperations.list``; all pages).

        :param project_id: the project; defaults to the connection's.
        :param filter_: a Compute list filter (e.g. chunked ``name`` terms).
        :param zone: the zone of zonal operations (None: global operations).
        :param warnings: when given, each page's ``warning`` is appended to it (a warned list may have
            left operations out).
        """
        project = self.resolve_project_id(project_id)
        walk = PageWalk(what="operations.list")
        if warnings is not None:
            walk.warnings = warnings
        return list(
            iter_pages(
                lambda page_token: self.execute_call(
                    self.api.list_operations(project, filter_=filter_, page_token=page_token, zone=zone)
                ),
                what="operations.list",
                walk=walk,
            )
        )

    def wait_operation(
        self,
        *,
        operation_name: str,
        project_id: str | None = None,
        deadline: float | None = None,
        zone: str | None = None,
    ) -> dict[str, Any]:
        """One ``globalOperations.wait`` (``zoneOperations.wait`` with ``zone``) long-poll: answers at DONE,
        after up to about two minutes, or early.

        :param operation_name: the operation's name.
        :param project_id: the project; defaults to the connection's.
        :param deadline: ``time.monotonic()`` by which the caller needs an answer: the long-poll's read
            timeout is capped at the time left (:class:`DeadlineExceededError` when it runs out).
        :param zone: the zone of a zonal operation (None: a global operation).
        """
        call = self.api.wait_operation(self.resolve_project_id(project_id), operation_name, zone=zone)
        return self.execute_call(call, deadline=deadline)

    def wait_for_operation(
        self,
        *,
        operation_name: str,
        project_id: str | None = None,
        timeout: float = 3600.0,
        max_early_backoff: float = 10.0,
        zone: str | None = None,
    ) -> dict[str, Any]:
        """Long-poll ``globalOperations.wait`` (``zoneOperations.wait`` with ``zone``) until DONE; return it.

        The server holds each ``wait`` for up to about two minutes but may answer at once; answers
        that come back early and not DONE make us back off (1 s, doubling, up to
        ``max_early_backoff``; :class:`~airflow_machine_images.api.retry.EarlyAnswerBackoff`) instead of
        spinning. Status and progress changes are logged.

        :param operation_name: the operation's name.
        :param project_id: the project; defaults to the connection's.
        :param timeout: overall seconds before :class:`OperationTimeoutError`; each long-poll's read
            timeout is capped at the time left, so the error comes near ``timeout``, not after a whole
            long-poll.
        :param max_early_backoff: the longest pause after an early answer.
        :param zone: the zone of a zonal operation (None: a global operation).
        :raises OperationFailedError: the operation ended with errors.
        """
        project = self.resolve_project_id(project_id)
        deadline = time.monotonic() + timeout
        backoff = EarlyAnswerBackoff()
        last_seen: tuple[str, int | None] | None = None
        status: object = None
        while True:
            asked = time.monotonic()
            try:
                operation = self.wait_operation(
                    operation_name=operation_name, project_id=project, deadline=deadline, zone=zone
                )
            except TransientApiError as error:
                # Cut at the caller's deadline (the long-poll's read timeout, or no time left for a retry):
                # the caller's timeout. Earlier (a server that dripped its answer for a whole call): not.
                if deadline - time.monotonic() > _DEADLINE_SLACK_SECONDS:
                    raise
                raise self._timed_out(operation_name, project, timeout, status) from error
            last_seen = self._log_progress(operation_name, operation, last_seen)
            status = operation.get("status")
            if status == "DONE":
                metrics.detection_latency("worker", parse_timestamp(operation.get("endTime")), time.time())
                raise_for_operation_error(operation)
                return operation
            now = time.monotonic()
            if now >= deadline:
                raise self._timed_out(operation_name, project, timeout, status)
            pause = backoff.pause_after(now - asked, max_early_backoff)
            if pause > 0:
                time.sleep(min(pause, deadline - now))

    @staticmethod
    def _timed_out(operation_name: str, project: str, timeout: float, status: object) -> OperationTimeoutError:
        """The error for an operation not DONE within ``timeout``, naming its last status.

        :param operation_name: the operation's name.
        :param project: its project.
        :param timeout: the seconds waited.
        :param status: the last status read (None: no answer yet).
        """
        last = f"last status {status}" if status is not None else "no answer yet"
        return OperationTimeoutError(
            f"Operation {operation_name} in project {project} was not DONE after {timeout:g} s ({last}); "
            "it continues on the server."
        )

    def _log_progress(
        self, operation_name: str, operation: Mapping[str, Any], last_seen: tuple[str, int | None] | None
    ) -> tuple[str, int | None]:
        """Log the operation's status and progress if they changed; return them.

        :param operation_name: the operation's name.
        :param operation: the operation as just read.
        :param last_seen: the (status, progress) logged last, if any.
        """
        seen = describe_progress(operation)
        if seen != last_seen:
            status, progress = seen
            self.log.info(
                "Operation %s: %s%s", operation_name, status, f" ({progress}%)" if progress is not None else ""
            )
        return seen

    def wait_for_machine_image(
        self,
        *,
        name: str,
        project_id: str | None = None,
        timeout: float = 3600.0,
        poll_interval: float = 10.0,
    ) -> dict[str, Any]:
        """Poll ``machineImages.get`` until the image is READY; return it.

        Used when there is no operation to wait on (reusing an image someone else is creating).

        :param name: the image name.
        :param project_id: the project; defaults to the connection's.
        :param timeout: overall seconds before :class:`OperationTimeoutError`.
        :param poll_interval: seconds between reads.
        :raises MachineImageNotUsableError: the image is INVALID or being deleted.
        :raises ResourceNotFoundError: the image disappeared.
        """
        deadline = time.monotonic() + timeout
        last_status = None
        while True:
            image = self.get_machine_image(name=name, project_id=project_id)
            status = image.get("status")
            if status != last_status:
                self.log.info("Machine image %s: %s", name, status)
                last_status = status
            if status == "READY":
                return image
            if status in UNUSABLE_IMAGE_STATES:
                raise MachineImageNotUsableError(f"Machine image {name} is {status}; it will not become READY.")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise OperationTimeoutError(f"Machine image {name} was not READY after {timeout:.0f} s ({status}).")
            time.sleep(min(poll_interval, remaining))


def _earliest(*deadlines: float | None) -> float | None:
    """The earliest of the given deadlines (None: no deadline).

    :param deadlines: deadlines in epoch seconds, None where there is none.
    """
    given = [d for d in deadlines if d is not None]
    return min(given) if given else None
