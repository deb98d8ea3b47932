"""Transport security: where credentials, key material and requests may go.

Both hooks check every endpoint and call here before anything is sent: the endpoint must be one
``[machine_images] allowed_endpoints`` lists (:func:`check_endpoint_allowed`, before any credentials
are read), credentials go only over https or to a loopback address (:func:`check_transport_security`),
customer-supplied key material likewise even without credentials (:func:`check_key_transport`), and a
request goes through the proxy ``requests`` would choose for it, never for a loopback endpoint
(:func:`proxy_for`). Redirects are never followed: each transport sends with redirects off, and
:func:`airflow_machine_images.api.responses.redirect_error` reports one.

``requests`` and google-auth are imported inside the functions that need them (transports load only
when a hook is used).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from airflow_machine_images import config
from airflow_machine_images.api.redaction import iter_key_material
from airflow_machine_images.compat import conf
from airflow_machine_images.exceptions import InsecureEndpointError, MachineImageValidationError
from airflow_machine_images.validation import is_loopback_host
from airflow_machine_images.validation.endpoints import AllowedEndpoint, endpoint_is_allowed, parse_allowed_endpoints

if TYPE_CHECKING:
    from google.auth.credentials import Credentials

    from airflow_machine_images.api.calls import ApiCall


def configured_allowed_endpoints() -> tuple[AllowedEndpoint, ...]:
    """``[machine_images] allowed_endpoints`` of this process (its environment variable, airflow.cfg or the default).

    :raises InsecureEndpointError: the option breaks its rule (the message names the option and the
        rule): with no list to trust, nothing may be sent anywhere (not retried).
    """
    text = conf.get(config.SECTION, config.ALLOWED_ENDPOINTS, fallback=config.DEFAULT_ALLOWED_ENDPOINTS)
    try:
        return _parsed(text)
    except MachineImageValidationError as error:
        raise InsecureEndpointError(f"{error} Nothing was sent.") from error


@functools.lru_cache(maxsize=8)
def _parsed(text: object) -> tuple[AllowedEndpoint, ...]:
    parameter = f"[{config.SECTION}] {config.ALLOWED_ENDPOINTS} (or {config.env_var(config.ALLOWED_ENDPOINTS)})"
    return parse_allowed_endpoints(text, parameter)


def check_endpoint_allowed(endpoint: str, source: str) -> None:
    """Refuse an API endpoint that ``[machine_images] allowed_endpoints`` does not list.

    Called with the endpoint a hook is about to use, before it reads any credentials: a token or a key
    never goes to a host the administrator did not list, whoever chose the endpoint (an operator
    argument, a connection extra, a trigger's stored kwargs).

    :param endpoint: the API root, format-checked (:func:`~airflow_machine_images.validation.validate_api_endpoint`).
    :param source: where it came from, for the error (``the api_endpoint argument``).
    :raises InsecureEndpointError: the endpoint is not listed, or the option breaks its rule (then the
        message names the option and the rule): either way nothing may be sent (not retried).
    """
    if endpoint_is_allowed(endpoint, configured_allowed_endpoints()):
        return
    parts = urlsplit(endpoint)
    shown = f"{parts.scheme}://{parts.netloc}"[:200]
    raise InsecureEndpointError(
        f"Refusing to call {shown!r} ({source}): it is not in [{config.SECTION}] {config.ALLOWED_ENDPOINTS} "
        f"({config.env_var(config.ALLOWED_ENDPOINTS)}), the endpoints an administrator allows requests, "
        "credentials and keys to go to; nothing was sent. Add it there, where the tasks and triggers run."
    )


def check_transport_security(endpoint: str, *, anonymous: bool) -> None:
    """Refuse to send credentials in clear text.

    Credentials go only over https, or over http to a loopback address (a local emulator or proxy).

    :param endpoint: the API root.
    :param anonymous: whether the request carries no credentials.
    :raises InsecureEndpointError: credentials would cross the network unencrypted.
    """
    parts = urlsplit(endpoint)
    if anonymous or parts.scheme == "https" or is_loopback_host(parts.hostname or ""):
        return
    raise InsecureEndpointError(
        f"Refusing to send Google credentials over plain http to {parts.hostname!r}: use https, a loopback "
        "address, or a connection with is_anonymous=true (for an emulator)."
    )


def check_key_transport(call: ApiCall) -> None:
    """Refuse to send customer-supplied key material in clear text, with or without credentials.

    A body carrying a ``rawKey`` or ``rsaEncryptedKey`` goes only over https, or over http to a
    loopback address; an ``is_anonymous`` connection does not lift this rule (the key is the secret,
    not the token).

    :param call: the call about to be sent.
    :raises InsecureEndpointError: the call carries key material and would cross the network unencrypted.
    """
    parts = urlsplit(call.url)
    if parts.scheme == "https" or is_loopback_host(parts.hostname or ""):
        return
    if next(iter_key_material(call.body), None) is not None:
        raise InsecureEndpointError(
            f"Refusing to send customer-supplied key material ({call.action}) over plain http to "
            f"{parts.hostname!r}: keys go only over https or to a loopback address, with or without credentials."
        )


def proxy_for(url: str) -> str | None:
    """The proxy a request to ``url`` goes through: ``requests``' rules for the environment, never for loopback.

    ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` and ``NO_PROXY`` (and their lower-case forms) are
    read by ``requests.utils.get_environ_proxies``, so both transports choose exactly as ``requests``
    does; a loopback endpoint (the emulator, a tunnel) is always reached directly, so a bearer token
    sent over plain http to it never reaches a proxy.

    :param url: the request URL.
    :return: the proxy URL, or None to connect directly.
    """
    import requests.utils

    if is_loopback_host(urlsplit(url).hostname or ""):
        return None
    proxy: str | None = requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url))
    return proxy or None


def requests_proxies(proxy: str | None) -> dict[str, str | None]:
    """The ``proxies=`` argument that makes ``requests`` use ``proxy`` and nothing else.

    ``requests`` merges the environment's proxies into a request's unless the request names the
    scheme: a None value (which ``requests`` then drops) keeps the environment's proxy out.

    :param proxy: the proxy URL, or None to connect directly.
    """
    return {"http": proxy, "https": proxy, "all": None} if proxy else {"http": None, "https": None, "all": None}


def credentials_are_anonymous(credentials: Credentials) -> bool:
    """Whether ``credentials`` add nothing to requests (``is_anonymous`` connections).

    :param credentials: Google credentials.
    """
    from google.auth.credentials import AnonymousCredentials

    return isinstance(credentials, AnonymousCredentials)
