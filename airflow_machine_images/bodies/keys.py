"""Customer-supplied encryption key arguments: parse them, check them, and list their keys for masking.

A ``CustomerEncryptionKey`` carries exactly one of a ``rawKey``, an ``rsaEncryptedKey`` (both
secrets) or a Cloud KMS ``kmsKeyName``. Keys arrive through ``machine_image_encryption_key``,
``source_disk_encryption_keys`` or ``body``, as literals or rendered from templates
(``{{ conn.csek.password }}``). The checks here never put key material into a message;
:func:`key_material_in` lists the keys of the arguments in every form they are written there, so the
operators can mask them. Finding keys in a request body is redaction's job
(:func:`airflow_machine_images.api.redaction.iter_key_material`).
"""

from __future__ import annotations

import ast
import base64
import binascii
import difflib
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

from airflow_machine_images.api.redaction import iter_key_material, key_material_tokens, secret_pattern
from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.validation.names import PROJECT_PATTERN
from airflow_machine_images.validation.primitives import (
    IDENTIFIER_PATTERN,
    describe_secret,
    mapping_items,
    sequence_items,
    show_key,
    show_value,
)
from airflow_machine_images.validation.references import validate_disk_url

#: Cloud KMS key (or key version) resource names.
KMS_KEY_NAME_PATTERN: Final = (
    rf"projects/(?:{PROJECT_PATTERN})/locations/[a-z][-a-z0-9]{{0,62}}"
    r"/keyRings/[A-Za-z0-9_-]{1,63}/cryptoKeys/[A-Za-z0-9_-]{1,63}"
    r"(?:/cryptoKeyVersions/[1-9][0-9]{0,19})?"
)
#: ``kmsKeyServiceAccount``: a service account email.
_SERVICE_ACCOUNT_PATTERN: Final = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.:-]+"
#: Padded RFC 4648 base64 (standard alphabet), and that of exactly 32 bytes (a ``rawKey``).
_BASE64_PATTERN: Final = r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"
_RAW_KEY_PATTERN: Final = r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]="

#: A ``CustomerEncryptionKey`` holds exactly one of these.
_KEY_FIELDS: Final = ("rawKey", "rsaEncryptedKey", "kmsKeyName")
_KEY_RULE: Final = "must be a dict with exactly one of rawKey, rsaEncryptedKey or kmsKeyName"


def parse_key_argument(value: object) -> object:
    """A key argument that rendered to text, parsed; anything else unchanged.

    Without ``render_template_as_native_obj`` a template renders to a string: JSON text
    (``{{ var.value.csek }}`` holding ``{"rawKey": "..."}``) or a dict's ``repr``
    (``{{ var.json.csek }}``). Both are read back (``json.loads``, then :func:`ast.literal_eval`,
    which evaluates literals only) so the key is checked, sent and masked like the dict form.

    :param value: ``machine_image_encryption_key``, ``source_disk_encryption_keys`` or ``body`` as rendered.
    """
    if not isinstance(value, str) or value.lstrip()[:1] not in ("{", "["):
        return value
    try:
        return json.loads(value)
    except ValueError:
        pass
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value
    return parsed if isinstance(parsed, (dict, list)) else value


def key_material_in(*values: object) -> Iterator[str]:
    """Every piece of key material in the arguments, in each form it is written there (to mask).

    Dicts and lists as :func:`iter_key_material`; text (an argument that rendered to a string) is
    parsed (:func:`parse_key_argument`), and each key found is given also as every substring of the
    text that spells it in another encoding (``\\/``, ``\\u003d``, ...); text that cannot be parsed
    gives whatever in it is shaped like key material.

    :param values: argument values.
    """
    for value in values:
        parsed = parse_key_argument(value)
        if not isinstance(value, str):
            yield from iter_key_material(value)
        elif parsed is value:
            yield from key_material_tokens(value)
        else:
            for secret in iter_key_material(parsed):
                yield secret
                yield from secret_pattern(secret).findall(value)


def _is_canonical_base64(text: str) -> bytes | None:
    """The decoded bytes if ``text`` is canonical, padded RFC 4648 base64 (standard alphabet), else None."""
    if re.fullmatch(_BASE64_PATTERN, text) is None:
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
    key = _key_fields(value, parameter)
    present = [field for field in _KEY_FIELDS if field in key]
    if len(present) != 1:
        got = f"{', '.join(present)}" if present else "none of them"
        raise MachineImageValidationError(parameter, _KEY_RULE, got)
    _check_secret_values(key, parameter)
    _check_kms_values(key, parameter)
    return key


def _key_fields(value: object, parameter: str) -> dict[str, str]:
    """The fields of a ``CustomerEncryptionKey`` as a new dict of strings, none unknown or output only.

    :param value: the key dict.
    :param parameter: the argument name used in the error message.
    """
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
            named = f"{parameter}.{field}" if re.fullmatch(IDENTIFIER_PATTERN, field) else f"{parameter} (a field)"
            close = difflib.get_close_matches(field, allowed, n=1, cutoff=0.6) if len(field) < 100 else []
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise MachineImageValidationError(
                named, f"is not a CustomerEncryptionKey field (allowed: {', '.join(allowed)}){hint}"
            )
        where = f"{parameter}.{field}"
        if not isinstance(field_value, str):
            raise MachineImageValidationError(where, "must be a string", describe_secret(field_value))
        key[field] = str.__str__(field_value)
    return key


def _check_secret_values(key: Mapping[str, str], parameter: str) -> None:
    """Check ``rawKey`` and ``rsaEncryptedKey``, if present, without showing them.

    :param key: the key's fields.
    :param parameter: the argument name used in the error message.
    """
    if "rawKey" in key:
        raw = _is_canonical_base64(key["rawKey"]) if re.fullmatch(_RAW_KEY_PATTERN, key["rawKey"]) else None
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


def _check_kms_values(key: Mapping[str, str], parameter: str) -> None:
    """Check ``kmsKeyName`` and ``kmsKeyServiceAccount`` (the latter only with the former), if present.

    :param key: the key's fields.
    :param parameter: the argument name used in the error message.
    """
    if "kmsKeyName" in key and re.fullmatch(KMS_KEY_NAME_PATTERN, key["kmsKeyName"]) is None:
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
        if re.fullmatch(_SERVICE_ACCOUNT_PATTERN, key["kmsKeyServiceAccount"]) is None:
            raise MachineImageValidationError(
                f"{parameter}.kmsKeyServiceAccount",
                "must be a service account email such as name@project.iam.gserviceaccount.com",
                show_value(key["kmsKeyServiceAccount"]),
            )


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
                shown = show_key(field) if isinstance(field, str) and re.fullmatch(IDENTIFIER_PATTERN, field) else None
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
