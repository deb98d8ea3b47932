"""What the sync and the async hook share: their constructor settings, the User-Agent, the answer limit.

:class:`MachineImageHookSettings` takes and stores the settings both hooks are built with (API version
and endpoint, retry policy, timeouts, the largest answer), sizes each attempt's timeouts and turns an
answer into data; the hooks add only their transport.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.google.common.hooks.base_google import GoogleBaseHook

from airflow_machine_images.api.calls import API_VERSIONS
from airflow_machine_images.api.responses import parse_response, response_too_large
from airflow_machine_images.api.retry import AttemptTimeouts, RetryPolicy
from airflow_machine_images.compat import airflow_version
from airflow_machine_images.validation import validate_choice
from airflow_machine_images.version import __version__

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow_machine_images.api.calls import ApiCall

#: Connection extra naming another API root (the emulator, a private endpoint).
ENDPOINT_EXTRA = "compute_api_endpoint"
#: The largest answer a hook accepts: no Compute Engine answer comes near it (a page of 500 images is
#: well under 1 MiB), and a misbehaving endpoint cannot fill the worker's memory.
MAX_RESPONSE_BYTES = 32 * 2**20


def user_agent() -> str:
    """The User-Agent our requests carry."""
    return f"airflow-machine-images/{__version__} airflow/{airflow_version}"


class MachineImageHookSettings:
    """The constructor and settings of both machine-image hooks; a mixin placed before the Google base hook.

    The Google base hook is built with the connection, the impersonation chain and whatever
    :meth:`_base_hook_kwargs` adds.

    :param gcp_conn_id: the Airflow connection to Google Cloud.
    :param impersonation_chain: service account(s) to impersonate, as in the Google provider.
    :param api_version: ``beta`` or ``v1``.
    :param api_endpoint: another API root (e.g. the emulator); defaults to the connection extra
        ``compute_api_endpoint``, then ``https://compute.googleapis.com``.
    :param retry_policy: when and how long to back off.
    :param connect_timeout: seconds to wait for a TCP connection.
    :param read_timeout: seconds to wait for an answer to an ordinary call.
    :param long_poll_timeout: seconds to wait for an answer to ``globalOperations.wait``.
    :param call_timeout: seconds for one attempt as a whole (None: connect plus read timeout).
    :param max_response_bytes: the largest answer accepted; a larger one is refused unread.
    :param kwargs: passed on to the Google base hook, if it takes them (:meth:`_base_hook_kwargs`).
    """

    def __init__(
        self,
        gcp_conn_id: str = GoogleBaseHook.default_conn_name,
        impersonation_chain: str | Sequence[str] | None = None,
        *,
        api_version: str = "beta",
        api_endpoint: str | None = None,
        retry_policy: RetryPolicy | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        long_poll_timeout: float = 150.0,
        call_timeout: float | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        **kwargs: Any,
    ) -> None:
        connection = {"gcp_conn_id": gcp_conn_id, "impersonation_chain": impersonation_chain}
        super().__init__(**connection, **self._base_hook_kwargs(api_version, api_endpoint, kwargs))
        self.gcp_conn_id = gcp_conn_id
        self.impersonation_chain = impersonation_chain
        self.api_version = validate_choice(api_version, "api_version", API_VERSIONS)
        self.api_endpoint = api_endpoint
        self.retry_policy = retry_policy or RetryPolicy()
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.long_poll_timeout = long_poll_timeout
        self.call_timeout = call_timeout
        self.max_response_bytes = max_response_bytes

    def _base_hook_kwargs(self, api_version: str, api_endpoint: str | None, extra: dict[str, Any]) -> dict[str, Any]:
        """The Google base hook's keyword arguments besides the connection and the impersonation chain.

        :param api_version: the ``api_version`` argument.
        :param api_endpoint: the ``api_endpoint`` argument.
        :param extra: the constructor's other keyword arguments (here: all passed on).
        """
        return extra

    def _attempt_timeouts(self, call: ApiCall, deadline: float | None = None) -> AttemptTimeouts:
        """The limits of the next attempt of ``call``: the long-poll read timeout for ``wait``, none past ``deadline``.

        :param call: the call about to be sent.
        :param deadline: ``time.monotonic()`` by which the caller needs the call over, or None.
        :raises DeadlineExceededError: the deadline has passed.
        """
        read = self.long_poll_timeout if call.long_poll else self.read_timeout
        return AttemptTimeouts.of(self.connect_timeout, read, self.call_timeout, deadline)

    def _parse_answer(
        self, call: ApiCall, status: int, raw: bytes | None, headers: Mapping[str, str], credentials: object
    ) -> dict[str, Any]:
        """The answer's JSON object, or the typed error it stands for (the access token never shown).

        :param call: the call that was made.
        :param status: the HTTP status.
        :param raw: the body, or None if it was larger than :attr:`max_response_bytes`.
        :param headers: the response headers.
        :param credentials: the credentials the call was sent with (their token is scrubbed from errors).
        :raises ResponseLimitError: the body was too large.
        """
        if raw is None:
            raise response_too_large(call, self.max_response_bytes)
        token = getattr(credentials, "token", None)
        return parse_response(call, status, raw, headers, secrets=[token])
