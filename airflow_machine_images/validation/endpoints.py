"""Which API endpoints requests (and so tokens and keys) may go to: ``[machine_images] allowed_endpoints``.

The endpoint a hook calls comes from an operator's ``api_endpoint`` argument, the connection extra
``compute_api_endpoint`` or a trigger's stored kwargs: places a DAG author, a connection editor or a
database writer controls. The allow-list is an administrator's setting, read where the hooks run;
an endpoint outside it is refused before any credentials are read or a token attached.

An entry is ``loopback`` (any loopback host, ``http`` or ``https``, any port: the emulator, a local
proxy or tunnel), or ``SCHEME://HOST[:PORT]``: ``https`` or ``http``; a host name, an IP address, or
``*.DOMAIN`` (one or more labels before ``DOMAIN``); a port, ``*`` for any, or none for the scheme's
default (443, 80). The default (:data:`airflow_machine_images.config.DEFAULT_ALLOWED_ENDPOINTS`)
allows Google's API hosts over https and loopback:

* ``compute.googleapis.com``, the API's root (``rootUrl`` of ``compute.v1.json``/``compute.beta.json``);
* the other ``*.googleapis.com`` forms Google documents for it: regional endpoints
  ``compute.REGION.rep.googleapis.com`` and their private ``compute.REGION.p.rep.googleapis.com``,
  locational ``REGION-compute.googleapis.com`` (Google Cloud docs, "API endpoint types"), and Private
  Service Connect names ``compute-ENDPOINT.p.googleapis.com`` (VPC docs, "About accessing Google APIs
  through endpoints").

Pure: the option's text is parsed and matched here; the hooks read it
(:mod:`~airflow_machine_images.hooks.transport_security`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.validation.primitives import show_value
from airflow_machine_images.validation.references import is_loopback_host

#: The entry that allows every loopback host, over either scheme, on any port.
LOOPBACK: Final = "loopback"
_DEFAULT_PORTS: Final = {"https": 443, "http": 80}
_LABEL: Final = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_ENTRY_PATTERN: Final = rf"(?P<scheme>https?)://(?P<host>(?:\*\.)?{_LABEL}(?:\.{_LABEL})*|\[[0-9a-f:.]{{2,45}}\])(?::(?P<port>\*|[0-9]{{1,5}}))?/?"
_ENTRY_RULE: Final = (
    f"must be a comma-separated list of entries, each {LOOPBACK!r} or SCHEME://HOST[:PORT] "
    "(SCHEME https or http; HOST a name, an IP address or *.DOMAIN; PORT a number or *)"
)


@dataclass(frozen=True)
class AllowedEndpoint:
    """One entry of ``allowed_endpoints``.

    :param scheme: ``https`` or ``http``; None for :data:`LOOPBACK` (either).
    :param host: the host in lower case (``*.DOMAIN`` for a wildcard); empty for :data:`LOOPBACK`.
    :param port: the port; None for any.
    """

    scheme: str | None
    host: str
    port: int | None

    def allows(self, scheme: str, host: str, port: int) -> bool:
        """Whether this entry allows an endpoint.

        :param scheme: the endpoint's scheme (lower case).
        :param host: its host (lower case; IPv6 in brackets).
        :param port: its port (the scheme's default if it names none).
        """
        if self.scheme is None:
            return scheme in _DEFAULT_PORTS and is_loopback_host(host)
        if scheme != self.scheme or (self.port is not None and port != self.port):
            return False
        if self.host.startswith("*."):
            return host.endswith(self.host[1:]) and len(host) > len(self.host) - 1
        return host == self.host


def parse_allowed_endpoints(text: object, parameter: str) -> tuple[AllowedEndpoint, ...]:
    """The entries of ``allowed_endpoints`` (see the module docstring); an empty list allows nothing.

    :param text: the option's value.
    :param parameter: the option's name, for the error.
    :raises MachineImageValidationError: an entry breaks the rule (the message names it).
    """
    if not isinstance(text, str):
        raise MachineImageValidationError(parameter, _ENTRY_RULE, show_value(text))
    entries = []
    for raw in (part.strip() for part in text.split(",")):
        if not raw:
            continue
        entry = raw.lower()
        if entry == LOOPBACK:
            entries.append(AllowedEndpoint(None, "", None))
            continue
        match = re.fullmatch(_ENTRY_PATTERN, entry)
        port = match.group("port") if match else None
        if match is None or (port not in (None, "*") and not 0 < int(port) < 65536):
            raise MachineImageValidationError(parameter, _ENTRY_RULE, show_value(raw))
        scheme = match.group("scheme")
        number = None if port == "*" else int(port) if port else _DEFAULT_PORTS[scheme]
        entries.append(AllowedEndpoint(scheme, match.group("host"), number))
    return tuple(entries)


def endpoint_is_allowed(endpoint: str, allowed: tuple[AllowedEndpoint, ...]) -> bool:
    """Whether a (format-checked) API endpoint is allowed by any entry.

    :param endpoint: ``http(s)://HOST[:PORT][/BASE]`` (as :func:`validate_api_endpoint` returns it).
    :param allowed: the entries.
    """
    try:
        parts = urlsplit(endpoint)
        scheme, port = parts.scheme.lower(), parts.port
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    if scheme not in _DEFAULT_PORTS or not host:
        return False
    return any(entry.allows(scheme, host, port or _DEFAULT_PORTS[scheme]) for entry in allowed)
