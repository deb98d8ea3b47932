"""Pure checks and normalisers for everything a DAG author hands us, before any request is sent.

Nothing here does I/O or imports Google or HTTP libraries (the one Airflow import is
``airflow.sdk.exceptions``, through :mod:`airflow_machine_images.exceptions`): DAG files import the
operators at parse time, and the operators import this module. Every check raises
:class:`~airflow_machine_images.exceptions.MachineImageValidationError` (a :class:`ValueError`) naming
the parameter and the rule, whatever the type of the bad value, and never echoes encryption key material.

The resource-name patterns are the path-parameter patterns of Google's Compute Engine discovery
documents (``compute.beta.json`` / ``compute.v1.json``); ``tests/unit/test_validation.py`` checks that
they still agree with the installed documents.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.validation.body_schema import validate_body
from airflow_machine_images.validation.names import (
    INSTANCE_PATTERN,
    LABEL_KEY_PATTERN,
    LABEL_VALUE_PATTERN,
    MACHINE_IMAGE_REF_PATTERN,
    MAX_LABELS,
    NAME_PATTERN,
    OPERATION_PATTERN,
    PROJECT_PATTERN,
    REQUEST_ID_PATTERN,
    STORAGE_LOCATION_PATTERN,
    ZONE_PATTERN,
    sanitize_label_value,
    validate_instance_name,
    validate_labels,
    validate_machine_image_name,
    validate_operation_name,
    validate_project_id,
    validate_request_id,
    validate_storage_locations,
    validate_zone,
)
from airflow_machine_images.validation.primitives import (
    IDENTIFIER_RE,
    describe_secret,
    mapping_items,
    sequence_items,
    show_key,
    show_value,
    validate_choice,
    validate_positive_number,
)
from airflow_machine_images.validation.references import (
    URL_API_VERSIONS,
    InstanceRef,
    is_loopback_host,
    parse_machine_image_ref,
    parse_source_instance,
    validate_api_endpoint,
    validate_disk_url,
)

__all__ = [
    "INSTANCE_PATTERN",
    "LABEL_KEY_PATTERN",
    "LABEL_VALUE_PATTERN",
    "MACHINE_IMAGE_REF_PATTERN",
    "MAX_LABELS",
    "NAME_PATTERN",
    "OPERATION_PATTERN",
    "PROJECT_PATTERN",
    "REQUEST_ID_PATTERN",
    "STORAGE_LOCATION_PATTERN",
    "URL_API_VERSIONS",
    "ZONE_PATTERN",
    "InstanceRef",
    "MachineImageValidationError",
    "build_machine_image_body",
    "is_loopback_host",
    "parse_machine_image_ref",
    "parse_source_instance",
    "sanitize_label_value",
    "validate_api_endpoint",
    "validate_body",
    "validate_choice",
    "validate_encryption_key",
    "validate_instance_name",
    "validate_labels",
    "validate_machine_image_name",
    "validate_operation_name",
    "validate_positive_number",
    "validate_project_id",
    "validate_request_id",
    "validate_source_disk_encryption_keys",
    "validate_storage_locations",
    "validate_zone",
]

# --------------------------------------------------------------------------------------------------
# Patterns (from the discovery documents) and their compiled forms
# --------------------------------------------------------------------------------------------------

#: Cloud KMS key (or key version) resource names.
KMS_KEY_NAME_PATTERN: Final = (
    rf"projects/(?:{PROJECT_PATTERN})/locations/[a-z][-a-z0-9]{{0,62}}"
    r"/keyRings/[A-Za-z0-9_-]{1,63}/cryptoKeys/[A-Za-z0-9_-]{1,63}"
    r"(?:/cryptoKeyVersions/[1-9][0-9]{0,19})?"
)

_KMS_KEY_NAME_RE: Final = re.compile(KMS_KEY_NAME_PATTERN)
_SERVICE_ACCOUNT_RE: Final = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.:-]+")
_BASE64_RE: Final = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_RAW_KEY_RE: Final = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=")

_KEY_FIELDS: Final = ("rawKey", "rsaEncryptedKey", "kmsKeyName")
_KEY_RULE: Final = "must be a dict with exactly one of rawKey, rsaEncryptedKey or kmsKeyName"


# --------------------------------------------------------------------------------------------------
# Message helpers
# --------------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------------
# Names and ids
# --------------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------------
# Resource paths and URLs
# --------------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------------
# Labels, locations, keys, choices, numbers
# --------------------------------------------------------------------------------------------------


def _is_canonical_base64(text: str) -> bytes | None:
    """The decoded bytes if ``text`` is canonical, padded RFC 4648 base64 (standard alphabet), else None."""
    import base64
    import binascii

    if _BASE64_RE.fullmatch(text) is None:
        return None
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded if base64.b64encode(decoded).decode("ascii") == text else None


def validate_encryption_key(value: object, parameter: str = "machine_image_encryption_key") -> dict[str, str]:
    """Check a ``CustomerEncryptionKey``; messages never contain key material.

    Exactly one of ``rawKey`` (RFC 4648 base64 of 32 bytes), ``rsaEncryptedKey`` (base64) or
    ``kmsKeyName`` (``projects/P/locations/L/keyRings/R/cryptoKeys/K[/cryptoKeyVersions/N]``);
    ``kmsKeyServiceAccount`` only with ``kmsKeyName``; nothing else (``sha256`` is output only).

    :param value: the key dict.
    :param parameter: the argument name used in the error message.
    :return: a new dict with the same fields.
    """
    import difflib

    if not isinstance(value, Mapping):
        raise MachineImageValidationError(parameter, _KEY_RULE, describe_secret(value))
    allowed = (*_KEY_FIELDS, "kmsKeyServiceAccount")
    key: dict[str, str] = {}
    for field, field_value in mapping_items(value, parameter):
        if not isinstance(field, str):
            raise MachineImageValidationError(
                parameter, f"{_KEY_RULE}; field names must be strings", describe_secret(field)
            )
        if field == "sha256":
            raise MachineImageValidationError(
                f"{parameter}.sha256", "is output only (the server computes it); remove it"
            )
        if field not in allowed:
            named = f"{parameter}.{field}" if IDENTIFIER_RE.fullmatch(field) else f"{parameter} (a field)"
            close = difflib.get_close_matches(field, allowed, n=1, cutoff=0.6) if len(field) < 100 else []
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise MachineImageValidationError(
                named, f"is not a CustomerEncryptionKey field (allowed: {', '.join(allowed)}){hint}"
            )
        where = f"{parameter}.{field}"
        if not isinstance(field_value, str):
            raise MachineImageValidationError(where, "must be a string", describe_secret(field_value))
        key[field] = str.__str__(field_value)
    present = [field for field in _KEY_FIELDS if field in key]
    if len(present) != 1:
        got = f"{', '.join(present)}" if present else "none of them"
        raise MachineImageValidationError(parameter, _KEY_RULE, got)
    if "rawKey" in key:
        raw = _is_canonical_base64(key["rawKey"]) if _RAW_KEY_RE.fullmatch(key["rawKey"]) else None
        if raw is None or len(raw) != 32:
            raise MachineImageValidationError(
                f"{parameter}.rawKey",
                "must be the RFC 4648 base64 encoding (standard alphabet, '=' padded) of exactly 32 bytes "
                "(44 characters); the value is not shown",
            )
    if "rsaEncryptedKey" in key and (
        not key["rsaEncryptedKey"] or _is_canonical_base64(key["rsaEncryptedKey"]) is None
    ):
        raise MachineImageValidationError(
            f"{parameter}.rsaEncryptedKey",
            "must be a non-empty RFC 4648 base64 string (standard alphabet, '=' padded, no line breaks); "
            "the value is not shown",
        )
    if "kmsKeyName" in key and _KMS_KEY_NAME_RE.fullmatch(key["kmsKeyName"]) is None:
        raise MachineImageValidationError(
            f"{parameter}.kmsKeyName",
            "must be projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY[/cryptoKeyVersions/N]",
            show_value(key["kmsKeyName"]),
        )
    if "kmsKeyServiceAccount" in key:
        if "kmsKeyName" not in key:
            raise MachineImageValidationError(
                f"{parameter}.kmsKeyServiceAccount", "may only be given together with kmsKeyName"
            )
        if _SERVICE_ACCOUNT_RE.fullmatch(key["kmsKeyServiceAccount"]) is None:
            raise MachineImageValidationError(
                f"{parameter}.kmsKeyServiceAccount",
                "must be a service account email such as name@project.iam.gserviceaccount.com",
                show_value(key["kmsKeyServiceAccount"]),
            )
    return key


def validate_source_disk_encryption_keys(
    value: object, parameter: str = "source_disk_encryption_keys"
) -> list[dict[str, Any]]:
    """Check ``sourceDiskEncryptionKeys``: ``[{"sourceDisk": URL, "diskEncryptionKey": {...}}, ...]``.

    :param value: the list.
    :param parameter: the argument name used in the error message.
    :return: a new list of new dicts.
    """
    rule = "each entry must be a dict with exactly the fields sourceDisk and diskEncryptionKey"
    entries = sequence_items(value, parameter, 'dicts {"sourceDisk": ..., "diskEncryptionKey": {...}}', secret=True)
    result: list[dict[str, Any]] = []
    for index, entry in enumerate(entries):
        where = f"{parameter}[{index}]"
        if not isinstance(entry, Mapping):
            raise MachineImageValidationError(where, rule, describe_secret(entry))
        fields = dict(mapping_items(entry, where))
        for field in fields:
            if field not in ("sourceDisk", "diskEncryptionKey"):
                shown = show_key(field) if isinstance(field, str) and IDENTIFIER_RE.fullmatch(field) else None
                raise MachineImageValidationError(where, f"{rule}; unexpected field", shown)
        for field in ("sourceDisk", "diskEncryptionKey"):
            if field not in fields:
                raise MachineImageValidationError(where, f"{rule}; {field} is missing")
        result.append(
            {
                "sourceDisk": validate_disk_url(fields["sourceDisk"], f"{where}.sourceDisk"),
                "diskEncryptionKey": validate_encryption_key(fields["diskEncryptionKey"], f"{where}.diskEncryptionKey"),
            }
        )
    return result


# --------------------------------------------------------------------------------------------------
# Request bodies against the discovery schema
# --------------------------------------------------------------------------------------------------


#: MachineImage fields with their own operator argument.
_DEDICATED_FIELDS: Final = {
    "description": "description",
    "labels": "labels",
    "storageLocations": "storage_locations",
    "guestFlush": "guest_flush",
    "machineImageEncryptionKey": "machine_image_encryption_key",
    "sourceDiskEncryptionKeys": "source_disk_encryption_keys",
    "params": "machine_image_params",
}


def build_machine_image_body(
    *,
    name: str,
    source_instance: InstanceRef,
    description: str | None,
    labels: Mapping[str, str] | None,
    storage_locations: list[str] | None,
    guest_flush: bool | None,
    machine_image_encryption_key: Mapping[str, Any] | None,
    source_disk_encryption_keys: list[Any] | None,
    machine_image_params: Mapping[str, Any] | None,
    body: Mapping[str, Any] | None,
    schemas: Mapping[str, Any],
) -> dict[str, Any]:
    """Merge the operator's arguments and ``body`` into one checked MachineImage JSON body.

    A field given both in ``body`` and by its own argument is an error, as are ``name`` and
    ``sourceInstance`` in ``body``. None arguments are left out.

    :param name: the machine image name.
    :param source_instance: the parsed source instance (sent as its partial URL).
    :param description: ``description``.
    :param labels: ``labels``.
    :param storage_locations: ``storageLocations``.
    :param guest_flush: ``guestFlush``.
    :param machine_image_encryption_key: ``machineImageEncryptionKey``.
    :param source_disk_encryption_keys: ``sourceDiskEncryptionKeys``.
    :param machine_image_params: ``params`` (resourceManagerTags etc.).
    :param body: any other MachineImage fields.
    :param schemas: the discovery document's ``schemas`` map.
    :return: the body to send.
    """
    checked_name = validate_machine_image_name(name, "name")
    if not isinstance(source_instance, InstanceRef):
        raise MachineImageValidationError(
            "source_instance", "must be an InstanceRef (see parse_source_instance)", show_value(source_instance)
        )
    extra = validate_body(body, schemas, parameter="body") if body is not None else {}
    for field, argument in (("name", "name"), ("sourceInstance", "source_instance")):
        if field in extra:
            raise MachineImageValidationError(f"body.{field}", f"set it with the {argument} argument, not in body")
    arguments: dict[str, Any] = {
        "description": description,
        "labels": labels,
        "storageLocations": storage_locations,
        "guestFlush": guest_flush,
        "machineImageEncryptionKey": machine_image_encryption_key,
        "sourceDiskEncryptionKeys": source_disk_encryption_keys,
        "params": machine_image_params,
    }
    for field, argument in _DEDICATED_FIELDS.items():
        if arguments[field] is not None and field in extra:
            raise MachineImageValidationError(f"body.{field}", f"also given as the {argument} argument; use one")

    merged: dict[str, Any] = {"name": checked_name, "sourceInstance": source_instance.partial_url}
    for field, argument in _DEDICATED_FIELDS.items():
        given = arguments[field]
        where = argument
        if given is None:
            if field not in extra:
                continue
            given, where = extra.pop(field), f"body.{field}"
        merged[field] = _check_dedicated(field, given, where, schemas)
    merged.update(extra)
    return validate_body(merged, schemas, parameter="body")


def _check_dedicated(field: str, value: object, parameter: str, schemas: Mapping[str, Any]) -> Any:
    """Check one dedicated field, given as an argument or inside ``body``."""
    if field == "description":
        if not isinstance(value, str):
            raise MachineImageValidationError(parameter, "must be a string", show_value(value))
        return str.__str__(value)
    if field == "labels":
        return validate_labels(value, parameter)
    if field == "storageLocations":
        return validate_storage_locations(value, parameter)
    if field == "guestFlush":
        if not isinstance(value, bool):
            raise MachineImageValidationError(parameter, "must be a boolean (True or False)", show_value(value))
        return value
    if field == "machineImageEncryptionKey":
        return validate_encryption_key(value, parameter)
    if field == "sourceDiskEncryptionKeys":
        return validate_source_disk_encryption_keys(value, parameter)
    params_schema = "MachineImageParams"
    try:
        ref = schemas["MachineImage"]["properties"]["params"]["$ref"]
        if isinstance(ref, str):
            params_schema = ref
    except (KeyError, TypeError):
        pass
    return validate_body(value, schemas, schema_name=params_schema, parameter=parameter)
