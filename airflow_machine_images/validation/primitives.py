"""What every check builds on: safe renderings of bad values, and the checks of basic types.

The name, reference, body-schema and key-material checks all report a bad value through
:func:`show_value` (short, and never the contents of anything that looks like key material) or
:func:`describe_secret` (the type only), and read their inputs through the type checks here, so that
any value of any type ends in a :class:`~airflow_machine_images.exceptions.MachineImageValidationError`,
never in a ``TypeError`` or an echoed secret.
"""

from __future__ import annotations

import math
import re
import reprlib
from typing import TYPE_CHECKING, Any, Final

from airflow_machine_images.api.redaction import MASK, SECRET_KEY_FIELDS, redact_key_material
from airflow_machine_images.exceptions import MachineImageValidationError

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

#: A field name that a path may show after a dot (``body.labels``); other keys are shown in brackets.
IDENTIFIER_PATTERN: Final = r"[A-Za-z_$][A-Za-z0-9_$]{0,63}"

_HIDDEN: Final = "a value that is not shown (key material)"
#: Values mentioning these field names may hold key material: never echoed in messages.
_SECRET_HINT_PATTERN: Final = r"(?i)rawkey|rsaencryptedkey|encryptionkey"
#: A camelCase field name ending in ``Key``: key material when it sits under an encryption-key field.
_KEY_NAMED_PATTERN: Final = r"[a-z][A-Za-z0-9]*Key"
#: Items of a container copied for its rendering (reprlib shows far fewer).
_SHOWN_ITEMS: Final = 64
#: What a container nested deeper than the rendering shows stands for (reprlib prints ``[...]`` for them).
_ELIDED: Final[dict[type, object]] = {dict: {0: 0}, list: [0], tuple: (0,), set: {0}, frozenset: frozenset({0})}

_REPR = reprlib.Repr()
_REPR.maxstring = 80
_REPR.maxother = 80
_REPR.maxlevel = 3


class _Redacted:
    """Stands for an object of another type in a rendering: its ``repr`` with key-shaped text hidden.

    :param value: the object.
    """

    def __init__(self, value: object) -> None:
        self.value = value

    def __repr__(self) -> str:
        return redact_key_material(repr(self.value))


def _mentions_key_fields(value: object) -> bool:
    """Whether ``value`` (text in full, a container as far as it is rendered) names an encryption-key field."""
    if isinstance(value, str):
        return re.search(_SECRET_HINT_PATTERN, value) is not None
    try:
        return re.search(_SECRET_HINT_PATTERN, _REPR.repr(value)) is not None
    except Exception:
        return False


def _is_key_field(name: object, under_key: bool) -> bool:
    """Whether a mapping key names key material: ``rawKey``, ``rsaEncryptedKey``, or any ``*Key`` under a key."""
    if not isinstance(name, str):
        return False
    return name in SECRET_KEY_FIELDS or (under_key and re.fullmatch(_KEY_NAMED_PATTERN, name) is not None)


def _without_key_material(value: object, depth: int = 0, under_key: bool = False) -> object:
    """A copy of ``value``, as deep as it is rendered, with key material hidden: the values of key-named
    fields replaced by the mask, and text shaped like a key (``redaction.looks_like_key_material``) too.

    Text is redacted whole before it is cut for display, so no part of a key survives the cut.
    """
    if isinstance(value, str):
        return redact_key_material(str.__str__(value))
    if isinstance(value, (bool, int, float, type(None))):
        return value
    if depth > _REPR.maxlevel:  # elided by the rendering: a stand-in of the same kind (non-empty, so "[...]")
        return _ELIDED.get(type(value), _Redacted(value))
    if isinstance(value, dict):
        return {
            _without_key_material(key, depth + 1): MASK
            if _is_key_field(key, under_key)
            else _without_key_material(
                item,
                depth + 1,
                under_key or (isinstance(key, str) and re.search(_SECRET_HINT_PATTERN, key) is not None),
            )
            for key, item in list(value.items())[:_SHOWN_ITEMS]
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_without_key_material(item, depth + 1, under_key) for item in list(value)[:_SHOWN_ITEMS]]
        if isinstance(value, (set, frozenset)):
            return frozenset(items) if isinstance(value, frozenset) else set(items)
        return items if isinstance(value, list) else tuple(items)
    return _Redacted(value)


def show_value(value: object) -> str:
    """A short, safe rendering of any value for an error message (type name added for non-strings).

    Never key material: text or a container that names an encryption-key field (``rawKey``,
    ``rsaEncryptedKey``, ``...EncryptionKey``: a key argument or a body, possibly as text) is described by
    its type only; anywhere else, the value of a key-named field and any text shaped like a key (base64
    of 32 bytes, or of 256 bytes and more) are replaced by ``***`` before the rendering is cut short.

    :param value: the bad value.
    :return: the text to put after ``got`` in a message.
    """
    if _mentions_key_fields(value):
        return f"a {type(value).__name__} that is not shown (it holds encryption key fields)"
    try:
        text = _REPR.repr(_without_key_material(value))
    except Exception:
        text = "<unprintable>"
    if isinstance(value, str):
        return text
    return f"{text} ({type(value).__name__})"


def describe_secret(value: object) -> str:
    """Describe a secret value by its type only.

    :param value: a value that is, or may hold, key material.
    :return: the text to put after ``got`` in a message.
    """
    return f"{_HIDDEN}, of type {type(value).__name__}"


def show_key(key: object) -> str:
    """A mapping key for a path such as ``labels['Team']``.

    :param key: the key, of any type.
    :return: its short rendering.
    """
    try:
        return _REPR.repr(_without_key_material(key))
    except Exception:
        return "<unprintable>"


def require_str(value: object, parameter: str, rule: str) -> str:
    """Return ``value`` as a plain str, or raise naming ``rule``.

    :param value: the value.
    :param parameter: the argument name used in the error message.
    :param rule: what the string must be, in words.
    :return: the value as a plain ``str`` (a subclass's overrides dropped).
    """
    if not isinstance(value, str):
        raise MachineImageValidationError(parameter, f"must be a string; {rule}", show_value(value))
    return str.__str__(value)


def mapping_items(value: Mapping[Any, Any], parameter: str) -> list[tuple[Any, Any]]:
    """The items of a mapping; a mapping that cannot be read is a validation error.

    :param value: the mapping.
    :param parameter: the argument name used in the error message.
    :return: its ``(key, value)`` pairs.
    """
    try:
        return list(value.items())
    except Exception:
        raise MachineImageValidationError(parameter, "must be a readable dict", f"a {type(value).__name__}") from None


def sequence_items(value: object, parameter: str, what: str, *, secret: bool = False) -> list[Any]:
    """A list or tuple's items (not a str, bytes, set or dict).

    :param value: the list or tuple.
    :param parameter: the argument name used in the error message.
    :param what: what the items must be, in words (``Cloud Storage locations such as ['us']``).
    :param secret: the value may hold key material: describe it by its type only.
    :return: a new list of the items.
    """
    if not isinstance(value, (list, tuple)):
        raise MachineImageValidationError(
            parameter, f"must be a list of {what}", describe_secret(value) if secret else show_value(value)
        )
    return list(value)


def full_match(pattern: str, value: object, parameter: str, rule: str) -> str:
    """Check that ``value`` is a string ``pattern`` matches in full.

    :param pattern: the regular expression, as text (compiled on first use and cached by :mod:`re`, so
        that importing a module that holds it compiles nothing).
    :param value: the value.
    :param parameter: the argument name used in the error message.
    :param rule: what the string must be, in words.
    :return: the value as a plain ``str``.
    """
    text = require_str(value, parameter, rule)
    if re.fullmatch(pattern, text) is None:
        raise MachineImageValidationError(parameter, rule, show_value(text))
    return text


def validate_choice(value: object, parameter: str, choices: Collection[str]) -> str:
    """Check that ``value`` is one of ``choices``.

    :param value: the value.
    :param parameter: the argument name used in the error message.
    :param choices: the allowed strings.
    :return: the value.
    """
    ordered = list(choices) if isinstance(choices, (list, tuple)) else sorted(choices)
    rule = "must be one of " + ", ".join(repr(choice) for choice in ordered)
    if not isinstance(value, str) or value not in ordered:
        raise MachineImageValidationError(parameter, rule, show_value(value))
    return str.__str__(value)


def validate_positive_number(value: object, parameter: str) -> float:
    """Check a positive, finite number (seconds, intervals); booleans and None are not numbers here.

    :param value: an int or float.
    :param parameter: the argument name used in the error message.
    :return: the value as a float.
    """
    rule = "must be a positive, finite number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MachineImageValidationError(parameter, rule, show_value(value))
    try:
        number = float(value)
    except Exception:
        raise MachineImageValidationError(parameter, rule, show_value(value)) from None
    if not math.isfinite(number) or number <= 0:
        raise MachineImageValidationError(parameter, rule, show_value(value))
    return number


def validate_bool(value: object, parameter: str, *, rule: str = "must be True or False") -> bool:
    """Check a boolean: ``True`` or ``False`` only (a string such as ``"false"`` is truthy, so it is an error).

    :param value: the argument.
    :param parameter: the argument name used in the error message.
    :param rule: what the error says the argument must be.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        rule += "; a string is not a boolean here (only a templated parameter may be given as a template)"
    raise MachineImageValidationError(parameter, rule, show_value(value))


def validate_optional_bool(value: object, parameter: str) -> bool | None:
    """Check a boolean that may also be None (left out of the request).

    :param value: the argument.
    :param parameter: the argument name used in the error message.
    """
    return None if value is None else validate_bool(value, parameter, rule="must be True, False or None")


_TRUE_TEXT = frozenset({"true", "yes", "1", "on"})
_FALSE_TEXT = frozenset({"false", "no", "0", "off"})


def coerce_rendered_bool(value: object, parameter: str) -> bool:
    """A templated boolean after rendering: ``True``/``False``, or their text (``"False"``, ``"true"``...).

    Jinja renders ``{{ params.dry_run }}`` to the text ``"False"`` unless the DAG renders native
    objects; that text must mean False, not "a non-empty string".

    :param value: the rendered value.
    :param parameter: the argument name used in the error message.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE_TEXT:
            return True
        if text in _FALSE_TEXT:
            return False
    raise MachineImageValidationError(
        parameter, "must render to a boolean (True/False, or the text true/false, yes/no, 1/0)", show_value(value)
    )


def validate_positive_int(value: object, parameter: str) -> int:
    """Check a whole number >= 1 (booleans and text are not numbers here).

    :param value: the argument.
    :param parameter: the argument name used in the error message.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MachineImageValidationError(parameter, "must be an integer >= 1", show_value(value))
    return value


def validate_optional_positive_int(value: object, parameter: str) -> int | None:
    """Check None or a whole number >= 1 (see :func:`validate_positive_int`).

    :param value: the argument.
    :param parameter: the argument name used in the error message.
    """
    return None if value is None else validate_positive_int(value, parameter)
