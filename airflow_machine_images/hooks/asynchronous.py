"""The async hook for the Compute Engine machine-image API, for triggers (``aiohttp``).

Requests, responses, errors, retries and settings are those of the sync hook
(:mod:`airflow_machine_images.api`, :mod:`.settings`, :mod:`.transport_security`); only the
transport differs: hooks with the same connection share one aiohttp session and one set of
credentials per event loop (:mod:`.shared_clients`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from airflow.providers.google.common.hooks.base_google import GoogleBaseAsyncHook

from airflow_machine_images import metrics
from airflow_machine_images.api.calls import API_VERSIONS, ApiCall, ComputeApi
from airflow_machine_images.api.responses import deadline_exceeded, transport_error
from airflow_machine_images.api.retry import Attempts, AttemptTimeouts
from airflow_machine_images.hooks import shared_clients
from airflow_machine_images.hooks.settings import MachineImageHookSettings, user_agent
from airflow_machine_images.hooks.shared_clients import ClientKey, SharedClient
from airflow_machine_images.hooks.sync import ComputeEngineMachineImageHook
from airflow_machine_images.hooks.transport_security import (
    check_key_transport,
    check_transport_security,
    credentials_are_anonymous,
    proxy_for,
)
from airflow_machine_images.validation import validate_choice, validate_project_id

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from contextlib import AbstractAsyncContextManager


class ComputeEngineMachineImageAsyncHook(MachineImageHookSettings, GoogleBaseAsyncHook):
    """The async face of :class:`ComputeEngineMachineImageHook`, for triggers (aiohttp).

    Only as large as the triggers' pollers (:mod:`airflow_machine_images.triggers.polling`) need: one
    ``globalOperations.wait``, one page of ``globalOperations.list`` or of ``machineImages.list``;
    :meth:`execute_call` sends any other call the builder makes. Credentials come from the sync hook
    (built off the event loop) and are refreshed in a thread. Hooks with the same connection,
    impersonation chain, endpoint and API version share one HTTP session and one set of credentials
    per event loop (:mod:`airflow_machine_images.hooks.shared_clients`). Requests, responses, errors and
    retries are those of the sync hook.

    :param gcp_conn_id: the Airflow connection to Google Cloud.
    :param impersonation_chain: service account(s) to impersonate.
    :param api_version: ``beta`` or ``v1``.
    :param api_endpoint: another API root (e.g. the emulator); defaults to the connection extra.
    :param retry_policy: when and how long to back off.
    :param connect_timeout: seconds to wait for a TCP connection.
    :param read_timeout: seconds to wait for an answer to an ordinary call.
    :param long_poll_timeout: seconds to wait for an answer to ``globalOperations.wait``.
    :param call_timeout: seconds for one attempt as a whole (None: connect plus read timeout).
    :param max_response_bytes: the largest answer accepted (32 MiB).
    """

    sync_hook_class = ComputeEngineMachineImageHook

    def _base_hook_kwargs(self, api_version: str, api_endpoint: str | None, extra: dict[str, Any]) -> dict[str, Any]:
        """The sync hook's settings, which :class:`GoogleBaseAsyncHook` builds the sync hook with.

        The sync hook gives this hook its credentials, endpoint and default project.

        :param api_version: the ``api_version`` argument (checked here).
        :param api_endpoint: the ``api_endpoint`` argument.
        :param extra: the constructor's other keyword arguments: none is taken.
        :raises TypeError: ``extra`` is not empty.
        """
        if extra:
            raise TypeError(f"{type(self).__name__}() got unexpected keyword argument(s): {', '.join(extra)}")
        return {"api_version": validate_choice(api_version, "api_version", API_VERSIONS), "api_endpoint": api_endpoint}

    @property
    def client_key(self) -> ClientKey:
        """What this hook shares its HTTP session and credentials by."""
        chain = self.impersonation_chain
        chain_key = (chain,) if isinstance(chain, str) else tuple(chain or ())
        return (self.gcp_conn_id, chain_key, self.api_endpoint or "", self.api_version)

    async def _new_client(self) -> SharedClient:
        """A new shared client: the sync hook's credentials (read off the event loop), checked endpoint, proxy."""
        import aiohttp

        sync_hook: ComputeEngineMachineImageHook = await self.get_sync_hook()
        # The endpoint (form, allow-list; reading the connection and the option) before the credentials.
        api = await asyncio.to_thread(lambda: sync_hook.api)
        credentials = await asyncio.to_thread(sync_hook.get_credentials)
        anonymous = credentials_are_anonymous(credentials)
        check_transport_security(api.endpoint, anonymous=anonymous)
        proxy = await asyncio.to_thread(proxy_for, api.endpoint)  # may consult the OS (macOS)
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout),
        )
        return SharedClient(
            api=api,
            session=session,
            credentials=credentials,
            anonymous=anonymous,
            user_agent=user_agent(),
            proxy=proxy,
        )

    def lease_client(self) -> AbstractAsyncContextManager[SharedClient]:
        """Borrow the shared client (hold it across many calls to keep its connections warm)."""
        return shared_clients.lease(self.client_key, self._new_client)

    async def resolve_project_id(self, project_id: str | None) -> str:
        """The given project, else the connection's; validated.

        :param project_id: the project, or None for the connection's default.
        """
        if project_id:
            return validate_project_id(project_id)
        sync_hook: ComputeEngineMachineImageHook = await self.get_sync_hook()
        default = await asyncio.to_thread(lambda: sync_hook.default_project_id)
        return validate_project_id(default)

    async def execute_call(self, build: Callable[[ComputeApi], ApiCall]) -> dict[str, Any]:
        """Send one call (built against the shared client's endpoint), retrying transient faults.

        :param build: makes the call from the request builder.
        """
        async with self.lease_client() as client:
            call = build(client.api)
            check_key_transport(call)
            attempts = Attempts(self.retry_policy, self.log)
            while True:
                try:
                    answer = await self._send(client, call)
                except Exception as error:
                    metrics.api_request(call.action, metrics.error_kind(error))
                    await asyncio.sleep(attempts.pause_after(error))
                else:
                    metrics.api_request(call.action, "ok")
                    return answer

    async def _send(self, client: SharedClient, call: ApiCall) -> dict[str, Any]:
        """One attempt: send ``call`` within its whole-call deadline and map the answer.

        :param client: the leased shared client.
        :param call: the call to send.
        """
        limits = self._attempt_timeouts(call)
        try:
            status, raw, headers = await asyncio.wait_for(self._exchange(client, call, limits), limits.total)
        except asyncio.TimeoutError as exc:  # the whole-call deadline (per-read timeouts are caught inside)
            raise deadline_exceeded(call, limits.total, limits.read) from exc
        return self._parse_answer(call, status, raw, headers, client.credentials)

    async def _exchange(
        self, client: SharedClient, call: ApiCall, limits: AttemptTimeouts
    ) -> tuple[int, bytes | None, Mapping[str, str]]:
        """Send ``call`` and read the answer, at most :attr:`max_response_bytes` of it.

        :param client: the leased shared client.
        :param call: the call to send.
        :param limits: the attempt's timeouts (connect and per read; the whole call is bounded by the caller).
        :return: the status, the body (None if it was larger than allowed) and the headers.
        """
        import aiohttp

        try:
            async with client.session.request(
                call.method,
                call.url,
                params=dict(call.params),
                json=dict(call.body) if call.body is not None else None,
                headers=await client.headers(),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=limits.connect, sock_read=limits.read),
                allow_redirects=False,
                proxy=client.proxy,
            ) as response:
                limit = self.max_response_bytes
                if response.content_length is not None and response.content_length > limit:
                    return response.status, None, response.headers
                parts: list[bytes] = []
                size = 0
                async for chunk in response.content.iter_chunked(65536):
                    size += len(chunk)
                    if size > limit:
                        return response.status, None, response.headers
                    parts.append(chunk)
                return response.status, b"".join(parts), response.headers
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise transport_error(call, exc) from exc

    async def wait_operation(
        self, *, operation_name: str, project_id: str | None = None, zone: str | None = None
    ) -> dict[str, Any]:
        """One ``globalOperations.wait`` (``zoneOperations.wait`` with ``zone``) long-poll.

        :param operation_name: the operation's name.
        :param project_id: the project; defaults to the connection's.
        :param zone: the zone of a zonal operation (None: a global operation).
        """
        project = await self.resolve_project_id(project_id)
        return await self.execute_call(lambda api: api.wait_operation(project, operation_name, zone=zone))

    async def get_operation(
        self, *, operation_name: str, project_id: str | None = None, zone: str | None = None
    ) -> dict[str, Any]:
        """One ``globalOperations.get`` (``zoneOperations.get`` with ``zone``).

        :param operation_name: the operation's name.
        :param project_id: the project; defaults to the connection's.
        :param zone: the zone of a zonal operation (None: a global operation).
        :raises ResourceNotFoundError: no such operation (the only evidence that it does not exist).
        """
        project = await self.resolve_project_id(project_id)
        return await self.execute_call(lambda api: api.get_operation(project, operation_name, zone=zone))

    async def get_machine_image(self, *, name: str, project_id: str | None = None) -> dict[str, Any]:
        """One ``machineImages.get``.

        :param name: the image name.
        :param project_id: the project; defaults to the connection's.
        :raises ResourceNotFoundError: no such image.
        """
        project = await self.resolve_project_id(project_id)
        return await self.execute_call(lambda api: api.get_machine_image(project, name))

    async def list_operations_page(
        self,
        *,
        project_id: str | None = None,
        filter_: str | None = None,
        page_token: str | None = None,
        zone: str | None = None,
    ) -> dict[str, Any]:
        """One page of ``globalOperations.list`` (``zoneOperations.list`` with ``zone``).

        :param project_id: the project; defaults to the connection's.
        :param filter_: a Compute list filter.
        :param page_token: the page to read (None for the first).
        :param zone: the zone of zonal operations (None: global operations).
        """
        project = await self.resolve_project_id(project_id)
        return await self.execute_call(
            lambda api: api.list_operations(project, filter_=filter_, page_token=page_token, zone=zone)
        )

    async def list_machine_images_page(
        self, *, project_id: str | None = None, filter_: str | None = None, page_token: str | None = None
    ) -> dict[str, Any]:
        """One page of ``machineImages.list`` (``items``, ``nextPageToken``).

        :param project_id: the project; defaults to the connection's.
        :param filter_: a Compute list filter.
        :param page_token: the page to read (None for the first).
        """
        project = await self.resolve_project_id(project_id)
        return await self.execute_call(
            lambda api: api.list_machine_images(project, filter_=filter_, page_token=page_token)
        )

    async def get_serial_port_output(
        self, *, zone: str, name: str, start: int, port: int = 1, project_id: str | None = None
    ) -> dict[str, Any]:
        """One ``instances.getSerialPortOutput``: the console from byte ``start`` on (``contents``, ``start``,
        ``next``; see :mod:`airflow_machine_images.api.serial_console`).

        :param zone: the instance's zone.
        :param name: its name or numeric id.
        :param start: the first byte wanted (the previous answer's ``next``).
        :param port: the serial port, 1 to 4.
        :param project_id: its project; defaults to the connection's.
        :raises ResourceNotFoundError: no such instance.
        """
        project = await self.resolve_project_id(project_id)
        return await self.execute_call(
            lambda api: api.get_serial_port_output(project, zone, name, port=port, start=start)
        )
