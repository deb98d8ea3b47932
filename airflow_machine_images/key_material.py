"""Find customer-supplied key material in operator arguments, so it can be masked everywhere.

A ``CustomerEncryptionKey`` may carry a ``rawKey`` or an ``rsaEncryptedKey``: both are secrets.
They can arrive through ``machine_image_encryption_key``, ``source_disk_encryption_keys`` or
``body``, as literals or rendered from templates (``{{ conn.csek.password }}``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

SECRET_KEY_FIELDS = frozenset({"rawKey", "rsaEncryptedKey"})


def iter_key_material(*values: object) -> Iterator[str]:
    """Yield every non-empty string stored under a secret key field, at any depth.

    :param values: argument values (dicts, lists, anything else is skipped).
    """
    stack = list(values)
    seen: set[int] = set()
    while stack:
        value = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, Mapping):
            for key, item in value.items():
                if key in SECRET_KEY_FIELDS and isinstance(item, str) and item:
                    yield item
                else:
                    stack.append(item)
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
