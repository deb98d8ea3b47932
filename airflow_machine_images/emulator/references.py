"""Reading the references one resource makes to another: full URLs or partial paths of instances and images.

Shared by the handler modules (``machineImages.insert`` names an instance, ``instances.insert`` an
image) and by seeding, so that neither handler module imports the other.
"""

from __future__ import annotations

import re

from airflow_machine_images.emulator import errors
from airflow_machine_images.emulator.schema import PROJECT_RE

__all__ = ["parse_machine_image", "parse_source_instance"]

_SOURCE = re.compile(
    r"(?:https?://[^/]+/compute/(?:v1|beta|alpha)/(?=projects/))?"
    r"(?:projects/(?P<project>[^/]+)/)?zones/(?P<zone>[^/]+)/instances/(?P<instance>[^/]+)"
)
_IMAGE = re.compile(
    r"(?:https?://[^/]+/compute/(?:v1|beta|alpha)/(?=projects/))?"
    r"(?:projects/(?P<project>[^/]+)/)?global/machineImages/(?P<name>[^/]+)"
)


def parse_source_instance(text: str, project: str) -> tuple[str, str, str]:
    """Read ``sourceInstance``: a full URL, ``projects/P/zones/Z/instances/I`` or ``zones/Z/instances/I``.

    :param text: the value sent.
    :param project: the request's project (for the short form).
    :return: project, zone, instance.
    :raises ApiError: 400 when it is not such a URL.
    """
    match = _SOURCE.fullmatch(text.strip())
    if match is None:
        raise errors.invalid_field(
            "sourceInstance", text, "The URL is malformed. Expected 'projects/P/zones/Z/instances/I' or a full URL."
        )
    return match.group("project") or project, match.group("zone"), match.group("instance")


def parse_machine_image(text: str, project: str) -> tuple[str, str]:
    """Read ``sourceMachineImage``: a full URL, ``projects/P/global/machineImages/N`` or ``global/machineImages/N``.

    :param text: the value sent.
    :param project: the request's project (for the short form).
    :return: project and image name.
    :raises ApiError: 400 when it is not such a URL.
    """
    match = _IMAGE.fullmatch(text.strip())
    if match is None or not PROJECT_RE.fullmatch(match.group("project") or project):
        raise errors.invalid_field(
            "sourceMachineImage",
            text,
            "The URL is malformed. Expected 'projects/P/global/machineImages/N', 'global/machineImages/N' "
            "or a full URL.",
        )
    return match.group("project") or project, match.group("name")
