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

import importlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

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


# build_machine_image_body lives in airflow_machine_images.machine_image_body, which imports this
# package's modules; importing it here eagerly would fail whenever that module is imported first. So
# the name is resolved on first access (PEP 562). mypy sees the real import.
if TYPE_CHECKING:
    from airflow_machine_images.machine_image_body import build_machine_image_body
else:
    #: Re-exported names defined outside this package -> the module that defines each.
    _DEFINED_OUTSIDE: Final = {"build_machine_image_body": "airflow_machine_images.machine_image_body"}

    def __getattr__(name: str) -> Any:
        """Import a name re-exported from outside this package on its first access.

        :param name: the attribute looked up.
        :return: the attribute of its defining module (then kept in this module's namespace).
        :raises AttributeError: if no such name is re-exported.
        """
        module = _DEFINED_OUTSIDE.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value
