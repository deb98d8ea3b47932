"""Names and labels: resource names and ids, label keys and values, Cloud Storage locations.

The resource-name patterns are the path-parameter patterns of Google's Compute Engine discovery
documents (``compute.beta.json`` / ``compute.v1.json``); ``tests/unit/validation/test_names.py`` checks that
they still agree with the installed documents. The patterns (text, compiled by :mod:`re` on first use,
never at import) and the rules (the words of the error messages) are public because the resource
references are made of these names.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Final

from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.validation.primitives import (
    full_match,
    mapping_items,
    sequence_items,
    show_key,
    show_value,
)

# The zone check lives in validation/zones.py; importable from here too, as before it moved.
from airflow_machine_images.validation.zones import validate_zone as validate_zone

#: Machine image names (``MachineImage.name``): RFC 1035, 1-63 characters.
NAME_PATTERN: Final = r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?"
#: The ``project`` path parameter: project ids, domain-scoped ids (``example.com:p``) and project numbers.
PROJECT_PATTERN: Final = (
    r"(?:(?:[-a-z0-9]{1,63}\.)*(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?):)?"
    r"(?:[0-9]{1,19}|(?:[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?))"
)
#: The ``zone`` path parameter (what a URL may carry; what a zone is: :mod:`~airflow_machine_images.validation.zones`).
ZONE_PATTERN: Final = r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?"
#: The ``instance`` path parameter: a name or a numeric id.
INSTANCE_PATTERN: Final = r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?|[1-9][0-9]{0,19}"
#: The ``operation`` path parameter of ``globalOperations``: a name or a numeric id.
OPERATION_PATTERN: Final = r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?|[1-9][0-9]{0,19}"
#: The ``machineImage`` path parameter of ``machineImages.get``/``delete``: a name or a numeric id.
MACHINE_IMAGE_REF_PATTERN: Final = r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?|[1-9][0-9]{0,19}"
#: ``requestId``: a UUID in canonical 8-4-4-4-12 hex form.
REQUEST_ID_PATTERN: Final = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
LABEL_KEY_PATTERN: Final = r"[a-z][a-z0-9_-]{0,62}"
LABEL_VALUE_PATTERN: Final = r"[a-z0-9_-]{0,63}"
#: Cloud Storage locations for ``storageLocations``: ``us``, ``eu``, ``us-central1``, ``nam4``...
STORAGE_LOCATION_PATTERN: Final = r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?"

#: A character a label value may not hold (:func:`sanitize_label_value` replaces it).
_LABEL_VALUE_BAD_CHAR_PATTERN: Final = r"[^a-z0-9_-]"

_NAME_RULE: Final = (
    f"must match {NAME_PATTERN} (1-63 characters: lowercase letters, digits and hyphens, "
    "starting with a letter and not ending with a hyphen)"
)
PROJECT_RULE: Final = (
    f"must be a project id or number matching {PROJECT_PATTERN} "
    "(e.g. 'my-project', 'example.com:my-project' or '123456789012')"
)
NAME_OR_ID_RULE: Final = (
    f"must match {INSTANCE_PATTERN} (a name: 1-63 lowercase letters, digits and hyphens, starting with "
    "a letter and not ending with a hyphen; or a numeric id)"
)
_REQUEST_ID_RULE: Final = (
    "must be a UUID in canonical 8-4-4-4-12 hexadecimal form, e.g. '6f1c1f56-5f0e-4c1b-9a57-3c2b8f6f0a11' "
    "(no braces, no 'urn:uuid:' prefix)"
)
_LABEL_KEY_RULE: Final = (
    f"label keys must match {LABEL_KEY_PATTERN} (1-63 characters: lowercase letters, digits, '_' and '-', "
    "starting with a letter)"
)
_LABEL_VALUE_RULE: Final = (
    f"label values must match {LABEL_VALUE_PATTERN} (0-63 characters: lowercase letters, digits, '_' and '-')"
)
#: The most labels a resource may carry.
MAX_LABELS: Final = 64


def validate_machine_image_name(value: object, parameter: str = "name") -> str:
    """Check a machine image name (``MachineImage.name``).

    :param value: the name.
    :param parameter: the argument name used in the error message.
    :return: the name.
    """
    return full_match(NAME_PATTERN, value, parameter, _NAME_RULE)


def validate_project_id(value: object, parameter: str = "project_id") -> str:
    """Check a project id or number against the discovery document's ``project`` pattern.

    :param value: ``my-project``, ``example.com:my-project`` or a project number.
    :param parameter: the argument name used in the error message.
    :return: the project id.
    """
    return full_match(PROJECT_PATTERN, value, parameter, PROJECT_RULE)


def validate_request_id(value: object, parameter: str = "request_id") -> str:
    """Check a ``requestId``: a canonical UUID, not the zero UUID.

    :param value: the request id (upper case accepted).
    :param parameter: the argument name used in the error message.
    :return: the request id in lower case.
    """
    text = full_match(REQUEST_ID_PATTERN, value, parameter, _REQUEST_ID_RULE).lower()
    if text == "00000000-0000-0000-0000-000000000000":
        raise MachineImageValidationError(
            parameter, "must not be the zero UUID 00000000-0000-0000-0000-000000000000 (the API rejects it)"
        )
    return text


def validate_operation_name(value: object, parameter: str = "operation_name") -> str:
    """Check a global operation name (or numeric id).

    :param value: the operation name, e.g. ``operation-1700000000000-abc``.
    :param parameter: the argument name used in the error message.
    :return: the operation name.
    """
    return full_match(OPERATION_PATTERN, value, parameter, NAME_OR_ID_RULE)


def validate_instance_name(value: object, parameter: str = "instance") -> str:
    """Check an instance name (or numeric id).

    :param value: the instance name.
    :param parameter: the argument name used in the error message.
    :return: the instance name.
    """
    return full_match(INSTANCE_PATTERN, value, parameter, NAME_OR_ID_RULE)


def validate_labels(value: object, parameter: str = "labels") -> dict[str, str]:
    """Check labels: at most 64, lowercase keys and values (the error names the offending key).

    :param value: a dict of label keys to values.
    :param parameter: the argument name used in the error message.
    :return: a new dict of the labels.
    """
    if not isinstance(value, Mapping):
        raise MachineImageValidationError(parameter, "must be a dict of label keys to values", show_value(value))
    items = mapping_items(value, parameter)
    if len(items) > MAX_LABELS:
        raise MachineImageValidationError(parameter, f"must have at most {MAX_LABELS} labels", f"{len(items)} labels")
    labels: dict[str, str] = {}
    for key, label_value in items:
        where = f"{parameter}[{show_key(key)}]"
        if not isinstance(key, str) or re.fullmatch(LABEL_KEY_PATTERN, key) is None:
            raise MachineImageValidationError(where, _LABEL_KEY_RULE, show_value(key))
        if not isinstance(label_value, str) or re.fullmatch(LABEL_VALUE_PATTERN, label_value) is None:
            raise MachineImageValidationError(where, _LABEL_VALUE_RULE, show_value(label_value))
        labels[str.__str__(key)] = str.__str__(label_value)
    return labels


def split_label_selector(text: str, parameter: str = "label_selector") -> dict[str, str]:
    """The dict a label selector written as text ``"key=value,key2=value2"`` stands for (not yet validated).

    :param text: the selector's text form.
    :param parameter: the argument name used in the error message.
    """
    pairs = [part.strip() for part in text.split(",") if part.strip()]
    if not all(part.count("=") == 1 for part in pairs):
        raise MachineImageValidationError(
            parameter, 'must be a dict of labels or text of the form "key=value,key2=value2"', show_value(text)
        )
    return {key.strip(): value.strip() for key, value in (part.split("=") for part in pairs)}


def sanitize_label_value(text: str) -> str:
    """Turn any string (a dag_id, a task_id) into a valid label value.

    Lower-cases it, replaces every character outside ``[a-z0-9_-]`` with ``-`` and, if longer than
    63 characters, keeps 54 and appends ``-`` and 8 hex digits of a SHA-256 of the original text, so
    different long ids stay distinct.

    :param text: the text.
    :return: a label value matching ``[a-z0-9_-]{0,63}``.
    """
    if not isinstance(text, str):
        raise MachineImageValidationError("text", "must be a string", show_value(text))
    cleaned = re.sub(_LABEL_VALUE_BAD_CHAR_PATTERN, "-", text.lower())
    if len(cleaned) <= 63:
        return cleaned
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{cleaned[:54]}-{digest}"


def validate_storage_locations(value: object, parameter: str = "storage_locations") -> list[str]:
    """Check ``storageLocations``: Cloud Storage regions or multi-regions such as ``us`` or ``us-central1``.

    :param value: a list of locations (an empty list is passed on as it is).
    :param parameter: the argument name used in the error message.
    :return: a new list of the locations.
    """
    rule = f"each location must match {STORAGE_LOCATION_PATTERN} (e.g. 'us', 'eu' or 'us-central1')"
    locations = sequence_items(value, parameter, "Cloud Storage locations such as ['us']")
    result: list[str] = []
    for index, location in enumerate(locations):
        text = full_match(STORAGE_LOCATION_PATTERN, location, f"{parameter}[{index}]", rule)
        if text in result:
            raise MachineImageValidationError(f"{parameter}[{index}]", "must not repeat a location", show_value(text))
        result.append(text)
    return result
