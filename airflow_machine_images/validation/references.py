"""Resource references and URLs: which instance, machine image or disk a string names, and API endpoints.

Users and the API write the same resource in several forms (``ZONE/INSTANCE``, ``projects/P/...``, a
full ``https://.../compute/v1/...`` self-link); the parsers here accept all of them and return one
form, so that references compare equal whatever form they came in. URLs must use https, or http to a
loopback host (the emulator), and carry no query, fragment, user information or percent-encoding.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final

from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.validation.names import (
    INSTANCE_PATTERN,
    MACHINE_IMAGE_REF_PATTERN,
    NAME_OR_ID_RULE,
    PROJECT_PATTERN,
    PROJECT_RULE,
    ZONE_PATTERN,
    validate_instance_name,
    validate_project_id,
)
from airflow_machine_images.validation.primitives import require_str, show_value
from airflow_machine_images.validation.zones import check_zone_component, validate_zone

#: API versions a Compute Engine URL may carry.
URL_API_VERSIONS: Final = ("v1", "beta", "alpha")
#: Host names (RFC 1123 labels), IPv6 literals in brackets, ports and URL path segments.
_HOSTNAME_PATTERN: Final = (
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_IPV6_LITERAL_PATTERN: Final = r"\[[0-9A-Fa-f:.]{2,45}\]"
_PORT_PATTERN: Final = r"[0-9]{1,5}"
_PATH_SEGMENT_PATTERN: Final = r"[A-Za-z0-9_~-]+(?:\.[A-Za-z0-9_~-]+)*"
#: Whitespace, control characters and anything outside printable ASCII.
_UNPRINTABLE_PATTERN: Final = r"[^\x21-\x7e]"
#: The longest reference or URL accepted.
_MAX_TEXT: Final = 2048
#: The forms each kind of reference may take, in the words of the error messages.
_SOURCE_FORMS: Final = (
    "must be ZONE/INSTANCE, zones/ZONE/instances/INSTANCE, projects/PROJECT/zones/ZONE/instances/INSTANCE "
    "or a URL https://HOST/compute/{v1|beta|alpha}/projects/PROJECT/zones/ZONE/instances/INSTANCE"
)
_MACHINE_IMAGE_FORMS: Final = (
    "must be NAME, global/machineImages/NAME, projects/PROJECT/global/machineImages/NAME or a URL "
    "https://HOST/compute/{v1|beta|alpha}/projects/PROJECT/global/machineImages/NAME"
)
_DISK_FORMS: Final = (
    "must be zones/ZONE/disks/DISK, projects/PROJECT/zones/ZONE/disks/DISK (or regions/REGION/... for a "
    "regional disk) or a URL https://HOST/compute/{v1|beta|alpha}/projects/PROJECT/zones/ZONE/disks/DISK"
)


@dataclass(frozen=True)
class InstanceRef:
    """A Compute Engine instance, whatever form it was written in.

    :param project: the project id (or number).
    :param zone: the zone.
    :param instance: the instance name (or numeric id).
    """

    project: str
    zone: str
    instance: str

    def __post_init__(self) -> None:
        validate_project_id(self.project, "project")
        validate_zone(self.zone, "zone")
        validate_instance_name(self.instance, "instance")

    @property
    def partial_url(self) -> str:
        """``projects/P/zones/Z/instances/I``: what we send as ``sourceInstance``."""
        return f"projects/{self.project}/zones/{self.zone}/instances/{self.instance}"

    def same_instance(self, other: object) -> bool:
        """Whether ``other`` names the same instance (same project, zone and name).

        A project number and a project id for the same project, or an instance id and its name,
        do not compare equal: there is no way to tell without asking the API.

        :param other: another :class:`InstanceRef`.
        """
        if not isinstance(other, InstanceRef):
            return False
        return (self.project, self.zone, self.instance) == (other.project, other.zone, other.instance)


def _check_path_text(value: object, parameter: str, forms: str) -> str:
    """Common rejections for resource paths and URLs, before they are split."""
    text = require_str(value, parameter, forms)
    if not text:
        raise MachineImageValidationError(parameter, forms, show_value(text))
    if len(text) > _MAX_TEXT:
        raise MachineImageValidationError(parameter, f"must be at most {_MAX_TEXT} characters", show_value(text))
    if re.search(_UNPRINTABLE_PATTERN, text):
        raise MachineImageValidationError(
            parameter, "must not contain whitespace, control or non-ASCII characters", show_value(text)
        )
    for bad, why in (("?", "a query string"), ("#", "a fragment"), ("%", "percent-encoding"), ("\\", "'\\'")):
        if bad in text:
            raise MachineImageValidationError(parameter, f"must not contain {why} ({bad!r}); {forms}", show_value(text))
    if ".." in text:
        raise MachineImageValidationError(parameter, f"must not contain '..'; {forms}", show_value(text))
    return text


def _parse_host_port(authority: str, parameter: str, shown: str) -> str:
    """Check ``host[:port]`` (no userinfo); return the host."""
    if "@" in authority:
        raise MachineImageValidationError(parameter, "must not contain user information ('user@host')", shown)
    host, port = authority, None
    if authority.startswith("["):
        end = authority.find("]")
        host, rest = authority[: end + 1], authority[end + 1 :]
        if end < 0 or (rest and not rest.startswith(":")):
            raise MachineImageValidationError(parameter, "has a malformed IPv6 host", shown)
        port = rest[1:] if rest else None
    elif ":" in authority:
        host, port = authority.split(":", 1)
    if host.startswith("["):
        ok = re.fullmatch(_IPV6_LITERAL_PATTERN, host) is not None and _is_ipv6(host[1:-1])
    else:
        ok = len(host) <= 253 and re.fullmatch(_HOSTNAME_PATTERN, host) is not None
    if not ok:
        raise MachineImageValidationError(parameter, "must have a valid host name or IP address", shown)
    if port is not None and (re.fullmatch(_PORT_PATTERN, port) is None or not 0 < int(port) < 65536):
        raise MachineImageValidationError(parameter, "must have a port between 1 and 65535", shown)
    return host


def _is_ipv6(text: str) -> bool:
    """Whether ``text`` (without brackets) is an IPv6 address."""
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _split_path(text: str, parameter: str, forms: str) -> list[str]:
    """Split a path (or a URL, after its scheme and host) into segments, rejecting empty ones."""
    if text.startswith(("https://", "http://")):
        scheme, rest = text.split("://", 1)
        authority, sep, path = rest.partition("/")
        host = _parse_host_port(authority, parameter, show_value(text))
        if scheme == "http" and not is_loopback_host(host):
            raise MachineImageValidationError(
                parameter,
                "must use https (http is accepted only for a loopback host such as 127.0.0.1)",
                show_value(text),
            )
        if not sep:
            raise MachineImageValidationError(parameter, forms, show_value(text))
        segments = path.split("/")
    elif "://" in text or text.startswith("//"):
        raise MachineImageValidationError(parameter, f"{forms} (only https or loopback http URLs)", show_value(text))
    else:
        segments = text.split("/")
    if "" in segments:
        raise MachineImageValidationError(
            parameter,
            f"must not contain empty path segments ('//', or a leading or trailing '/'); {forms}",
            show_value(text),
        )
    return segments


def _url_tail(segments: list[str], size: int) -> list[str] | None:
    """For URL paths ``[prefix...]/compute/VERSION/<size segments>``: the last ``size`` segments."""
    if len(segments) < size + 2 or segments[-size - 2] != "compute" or segments[-size - 1] not in URL_API_VERSIONS:
        return None
    if any(re.fullmatch(_PATH_SEGMENT_PATTERN, segment) is None for segment in segments[: -size - 2]):
        return None
    return segments[-size:]


def _component(pattern: str, value: str, parameter: str, what: str, rule: str, shown: str) -> str:
    """Check one component of a parsed reference; the error names the component and shows the whole text.

    :param pattern: the regular expression the component must match in full, as text.
    """
    if re.fullmatch(pattern, value) is None:
        raise MachineImageValidationError(parameter, f"its {what} {show_value(value)} {rule}", shown)
    return value


def _default_project(default_project: object, parameter: str, forms: str, shown: str) -> str:
    """The project for a reference that names none: ``default_project``, which must be given and valid."""
    if default_project is None:
        raise MachineImageValidationError(
            parameter,
            "names no project and no default project is known: write projects/PROJECT/... or set project_id "
            f"(or the connection's project); {forms}",
            shown,
        )
    return validate_project_id(default_project, "project_id")


def parse_source_instance(
    value: object, default_project: str | None, parameter: str = "source_instance"
) -> InstanceRef:
    """Parse an instance reference in any of the forms the API and users write.

    Accepts ``ZONE/INSTANCE`` (in ``default_project``), ``zones/Z/instances/I``,
    ``projects/P/zones/Z/instances/I`` and ``https://HOST/compute/{v1|beta|alpha}/projects/P/zones/Z/
    instances/I`` (``http://`` for a loopback host such as the emulator). Used for user input and to
    read an image's ``sourceInstance`` selfLink from the server, so that forms compare equal.

    :param value: the reference.
    :param default_project: the project for forms that name none; None makes those forms an error.
    :param parameter: the argument name used in the error message.
    :return: the instance.
    """
    text = _check_path_text(value, parameter, _SOURCE_FORMS)
    shown = show_value(text)
    segments = _split_path(text, parameter, _SOURCE_FORMS)
    project: str | None
    if "://" in text:
        tail = _url_tail(segments, 6)
        if tail is None or tail[0] != "projects" or tail[2] != "zones" or tail[4] != "instances":
            raise MachineImageValidationError(parameter, _SOURCE_FORMS, shown)
        project, zone, instance = tail[1], tail[3], tail[5]
    elif len(segments) == 6 and (segments[0], segments[2], segments[4]) == ("projects", "zones", "instances"):
        project, zone, instance = segments[1], segments[3], segments[5]
    elif len(segments) == 4 and (segments[0], segments[2]) == ("zones", "instances"):
        project, zone, instance = None, segments[1], segments[3]
    elif len(segments) == 2:
        project, zone, instance = None, segments[0], segments[1]
    else:
        raise MachineImageValidationError(parameter, _SOURCE_FORMS, shown)
    if project is not None:
        _component(PROJECT_PATTERN, project, parameter, "project", PROJECT_RULE, shown)
    check_zone_component(zone, parameter, shown)
    _component(INSTANCE_PATTERN, instance, parameter, "instance", NAME_OR_ID_RULE, shown)
    if project is None:
        project = _default_project(default_project, parameter, _SOURCE_FORMS, shown)
    return InstanceRef(project=project, zone=zone, instance=instance)


def parse_machine_image_ref(
    value: object, default_project: str | None, parameter: str = "machine_image"
) -> tuple[str, str]:
    """Parse a machine image reference: ``NAME``, ``global/machineImages/NAME``,
    ``projects/P/global/machineImages/NAME`` or a full URL (as in an image's ``selfLink``).

    :param value: the reference.
    :param default_project: the project for forms that name none; None makes those forms an error.
    :param parameter: the argument name used in the error message.
    :return: ``(project, name)``; the name may be a numeric id, as the API's path parameter allows.
    """
    text = _check_path_text(value, parameter, _MACHINE_IMAGE_FORMS)
    shown = show_value(text)
    segments = _split_path(text, parameter, _MACHINE_IMAGE_FORMS)
    project: str | None
    if "://" in text:
        tail = _url_tail(segments, 5)
        if tail is None or (tail[0], tail[2], tail[3]) != ("projects", "global", "machineImages"):
            raise MachineImageValidationError(parameter, _MACHINE_IMAGE_FORMS, shown)
        project, name = tail[1], tail[4]
    elif len(segments) == 5 and (segments[0], segments[2], segments[3]) == ("projects", "global", "machineImages"):
        project, name = segments[1], segments[4]
    elif len(segments) == 3 and (segments[0], segments[1]) == ("global", "machineImages"):
        project, name = None, segments[2]
    elif len(segments) == 1:
        project, name = None, segments[0]
    else:
        raise MachineImageValidationError(parameter, _MACHINE_IMAGE_FORMS, shown)
    if project is not None:
        _component(PROJECT_PATTERN, project, parameter, "project", PROJECT_RULE, shown)
    _component(MACHINE_IMAGE_REF_PATTERN, name, parameter, "name", NAME_OR_ID_RULE, shown)
    if project is None:
        project = _default_project(default_project, parameter, _MACHINE_IMAGE_FORMS, shown)
    return project, name


def validate_disk_url(value: object, parameter: str) -> str:
    """Check a disk reference (``sourceDisk``): full URL or partial path, zonal or regional.

    :param value: the reference.
    :param parameter: the argument name used in the error message.
    :return: the reference, unchanged.
    """
    text = _check_path_text(value, parameter, _DISK_FORMS)
    shown = show_value(text)
    segments = _split_path(text, parameter, _DISK_FORMS)
    project: str | None = None
    rest = segments
    if "://" in text:
        tail = _url_tail(segments, 6)
        if tail is None or tail[0] != "projects":
            raise MachineImageValidationError(parameter, _DISK_FORMS, shown)
        project, rest = tail[1], tail[2:]
    elif len(segments) == 6 and segments[0] == "projects":
        project, rest = segments[1], segments[2:]
    if project is not None:
        _component(PROJECT_PATTERN, project, parameter, "project", PROJECT_RULE, shown)
    if len(rest) != 4 or rest[0] not in ("zones", "regions") or rest[2] != "disks":
        raise MachineImageValidationError(parameter, _DISK_FORMS, shown)
    if rest[0] == "zones":
        check_zone_component(rest[1], parameter, shown)
    else:
        region_rule = f"must match {ZONE_PATTERN} (a region such as 'us-central1')"
        _component(ZONE_PATTERN, rest[1], parameter, "region", region_rule, shown)
    _component(INSTANCE_PATTERN, rest[3], parameter, "disk", NAME_OR_ID_RULE, shown)
    return text


def is_loopback_host(host: object) -> bool:
    """Whether ``host`` is a loopback address: ``localhost``, 127.0.0.0/8 or ``::1`` (bracketed or not).

    Host names other than ``localhost`` are not resolved, so they are never loopback here.

    :param host: a host name or IP address, without port.
    """
    if not isinstance(host, str):
        return False
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if text.lower() in ("localhost", "localhost."):
        return True
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def validate_api_endpoint(value: object, parameter: str = "api_endpoint") -> str:
    """Check an API root such as ``http://127.0.0.1:8085`` or ``https://compute.example.com/base``.

    :param value: ``http(s)://host[:port][/base/path]``, without query, fragment or user information.
    :param parameter: the argument name used in the error message.
    :return: the endpoint without a trailing slash (scheme in lower case).
    """
    rule = "must be http(s)://HOST[:PORT][/BASE/PATH] without query string, fragment or user information"
    text = require_str(value, parameter, rule)
    shown = show_value(text)
    if not text or len(text) > _MAX_TEXT or re.search(_UNPRINTABLE_PATTERN, text):
        raise MachineImageValidationError(parameter, f"{rule} (printable ASCII, at most {_MAX_TEXT} characters)", shown)
    if "?" in text or "#" in text or "%" in text or "\\" in text:
        raise MachineImageValidationError(parameter, rule, shown)
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        raise MachineImageValidationError(parameter, rule, shown)
    authority, _, path = rest.partition("/")
    _parse_host_port(authority, parameter, shown)
    if path.endswith("/"):
        path = path[:-1]
    if path and any(re.fullmatch(_PATH_SEGMENT_PATTERN, segment) is None for segment in path.split("/")):
        raise MachineImageValidationError(
            parameter, f"{rule}; path segments may hold letters, digits, '.', '_', '~' and '-'", shown
        )
    return f"{scheme.lower()}://{authority}" + (f"/{path}" if path else "")
