"""Customer-supplied encryption keys as the API takes them and shows them: never the key material, only its hash.

Shared by the handler modules that take keys (``machineImages.insert``, ``instances.insert`` from a
protected image), so that neither imports the other.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from airflow_machine_images.emulator import errors

__all__ = ["echo_key"]

_KEY_FIELDS = frozenset({"rawKey", "rsaEncryptedKey", "kmsKeyName", "sha256", "kmsKeyServiceAccount"})


def echo_key(value: Any, where: str) -> dict[str, str]:
    """What the API shows of a customer key: its sha256 and KMS name, never the key material.

    :param value: the CustomerEncryptionKey sent.
    :param where: its field name, for errors.
    """
    if not isinstance(value, dict):
        raise errors.invalid_field(where, "", "Expected a CustomerEncryptionKey object.")
    unknown = set(value) - _KEY_FIELDS
    if unknown:
        raise errors.invalid(f"Invalid JSON payload received. Unknown name \"{sorted(unknown)[0]}\" at '{where}'.")
    for name, item in value.items():
        if not isinstance(item, str):
            raise errors.invalid_field(f"{where}.{name}", "", "Must be a string.")
    out: dict[str, str] = {}
    for material in ("rawKey", "rsaEncryptedKey"):
        if material in value:
            try:
                decoded = base64.b64decode(str(value[material]), validate=True)
            except (binascii.Error, ValueError):
                raise errors.invalid_field(f"{where}.{material}", "", "The key must be base64 encoded.") from None
            if material == "rawKey" and len(decoded) != 32:
                raise errors.invalid_field(f"{where}.{material}", "", "The key must be a 256-bit AES key.")
            out["sha256"] = base64.b64encode(hashlib.sha256(decoded).digest()).decode()
    for name in ("kmsKeyName", "kmsKeyServiceAccount"):
        if name in value:
            out[name] = str(value[name])
    if not out:
        raise errors.invalid_field(where, "", "A key needs rawKey, rsaEncryptedKey or kmsKeyName.")
    return out
