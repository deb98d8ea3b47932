"""Request bodies against the discovery schema: a checked deep copy, or an error naming the field's path.

:func:`validate_body` walks a value alongside a schema of Google's Compute Engine discovery document
(``MachineImage``, ``MachineImageParams``, ...): unknown fields (with the closest known one suggested),
output-only fields, wrong JSON types, enum values, integer ranges and string patterns are errors naming
the dotted path, and values under encryption-key fields are never shown.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from typing import Any, Final

from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.validation.primitives import (
    IDENTIFIER_PATTERN,
    describe_secret,
    mapping_items,
    show_key,
    show_value,
)

#: Deeper values are an error, not a RecursionError (and a cyclic value ends here).
_MAX_DEPTH: Final = 32
#: The bounds of the discovery document's integer formats.
_INT_RANGES: Final = {
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}
#: ``int64``/``uint64`` values, which JSON carries as decimal strings.
_INT64_STRING_PATTERN: Final = r"-?[0-9]{1,19}"
_UINT64_STRING_PATTERN: Final = r"[0-9]{1,20}"
#: Property names whose values are (or contain) key material: never echoed in messages.
_SECRET_PROPERTY_WORDS: Final = ("encryptionkey", "rawkey", "rsaencryptedkey")


def _join(path: str, key: str) -> str:
    """``body`` + ``labels`` -> ``body.labels``; odd keys as ``body['a b']``."""
    if re.fullmatch(IDENTIFIER_PATTERN, key):
        return f"{path}.{key}"
    return f"{path}[{show_key(key)}]"


def _is_output_only(prop: Mapping[str, Any]) -> bool:
    """Output-only by ``readOnly`` or by the description's conventions."""
    if prop.get("readOnly") is True:
        return True
    description = prop.get("description")
    if not isinstance(description, str):
        return False
    return description.startswith("Output only.") or "[Output Only]" in description or "[Output only]" in description


def _is_secret_name(name: str) -> bool:
    """Whether a property of this name holds (or contains) key material."""
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_PROPERTY_WORDS)


class _BodyChecker:
    """Walks a value alongside its discovery schema, building a checked deep copy.

    Every method takes the ``path`` of the value (for messages), its ``depth`` and whether it is
    ``secret`` (under a key-material field: then the value is never shown).

    :param schemas: the discovery document's ``schemas`` map, to resolve ``$ref``.
    """

    def __init__(self, schemas: Mapping[str, Any]) -> None:
        self.schemas = schemas

    def fail(self, path: str, rule: str, value: object, secret: bool) -> MachineImageValidationError:
        """The error for ``value`` at ``path``, shown only if it is not secret."""
        return MachineImageValidationError(path, rule, describe_secret(value) if secret else show_value(value))

    def check(self, value: object, prop: Mapping[str, Any], path: str, depth: int, secret: bool) -> Any:
        """Check ``value`` against the schema (or property) ``prop``; return the checked copy."""
        if depth > _MAX_DEPTH:
            raise MachineImageValidationError(path, f"is nested more than {_MAX_DEPTH} levels deep")
        ref = prop.get("$ref")
        if ref is not None:
            schema = self.schemas.get(ref) if isinstance(ref, str) else None
            if not isinstance(schema, Mapping):
                raise MachineImageValidationError(path, f"refers to schema {ref!r}, which the discovery document lacks")
            return self.check(value, schema, path, depth + 1, secret or ref == "CustomerEncryptionKey")
        kind = prop.get("type")
        if kind == "object":
            return self.check_object(value, prop, path, depth, secret)
        if kind == "array":
            if not isinstance(value, (list, tuple)):
                raise self.fail(path, "must be a list", value, secret)
            item_schema = prop.get("items")
            if not isinstance(item_schema, Mapping):
                return [self.json_value(item, f"{path}[{i}]", depth + 1, secret) for i, item in enumerate(value)]
            return [self.check(item, item_schema, f"{path}[{i}]", depth + 1, secret) for i, item in enumerate(value)]
        if kind == "string":
            return self.check_string(value, prop, path, secret)
        if kind == "boolean":
            if not isinstance(value, bool):
                raise self.fail(path, "must be a boolean (True or False)", value, secret)
            return value
        if kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.fail(path, "must be an integer", value, secret)
            self.check_range(value, prop, path, secret)
            return int(value)
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
                raise self.fail(path, "must be a finite number", value, secret)
            return value
        return self.json_value(value, path, depth, secret)

    def check_object(
        self, value: object, prop: Mapping[str, Any], path: str, depth: int, secret: bool
    ) -> dict[str, Any]:
        """Check a JSON object: declared ``properties``, or ``additionalProperties`` for a map."""
        schema_id = prop.get("id") if isinstance(prop.get("id"), str) else "object"
        if not isinstance(value, Mapping):
            raise self.fail(path, f"must be a dict (a JSON object: {schema_id})", value, secret)
        items = mapping_items(value, path)
        properties = prop.get("properties")
        result: dict[str, Any] = {}
        if isinstance(properties, Mapping):
            for key, item in items:
                if not isinstance(key, str):
                    raise MachineImageValidationError(f"{path}[{show_key(key)}]", "field names must be strings")
                where = _join(path, key)
                field = properties.get(key)
                if not isinstance(field, Mapping):
                    raise MachineImageValidationError(where, self.unknown_field_rule(key, properties, str(schema_id)))
                if _is_output_only(field):
                    raise MachineImageValidationError(where, "is an output-only field (set by the server); remove it")
                result[key] = self.check(item, field, where, depth + 1, secret or _is_secret_name(key))
            return result
        extra = prop.get("additionalProperties")
        for key, item in items:
            where = f"{path}[{show_key(key)}]"
            if not isinstance(key, str):
                raise MachineImageValidationError(where, "keys must be strings")
            if isinstance(extra, Mapping):
                result[key] = self.check(item, extra, where, depth + 1, secret)
            else:
                result[key] = self.json_value(item, where, depth + 1, secret)
        return result

    @staticmethod
    def unknown_field_rule(key: str, properties: Mapping[str, Any], schema_id: str) -> str:
        """The rule for an unknown field: the closest settable field, or the list of them."""
        writable = sorted(
            name for name, field in properties.items() if isinstance(field, Mapping) and not _is_output_only(field)
        )
        rule = f"is not a field of {schema_id}"
        by_case = [name for name in writable if name.lower() == key.lower()]
        close = by_case or (difflib.get_close_matches(key, writable, n=1, cutoff=0.6) if len(key) < 200 else [])
        if close:
            return f"{rule}; did you mean {close[0]!r}?"
        return f"{rule} (settable fields: {', '.join(writable)})"

    def check_string(self, value: object, prop: Mapping[str, Any], path: str, secret: bool) -> str | int:
        """Check a string property: 64-bit integer formats (int or decimal string), enum, pattern."""
        fmt = prop.get("format")
        if fmt in ("int64", "uint64"):
            if isinstance(value, int) and not isinstance(value, bool):
                self.check_range(value, prop, path, secret)
                return int(value)
            if isinstance(value, str):
                digits = _INT64_STRING_PATTERN if fmt == "int64" else _UINT64_STRING_PATTERN
                if re.fullmatch(digits, value) is None:
                    raise self.fail(path, f"must be an integer or a decimal string ({fmt})", value, secret)
                self.check_range(int(value), prop, path, secret)
                return str.__str__(value)
            raise self.fail(path, f"must be an integer or a decimal string ({fmt})", value, secret)
        if not isinstance(value, str):
            raise self.fail(path, "must be a string", value, secret)
        enum = prop.get("enum")
        if isinstance(enum, list) and value not in enum:
            raise self.fail(path, "must be one of " + ", ".join(repr(choice) for choice in enum), value, secret)
        pattern = prop.get("pattern")
        if isinstance(pattern, str) and _compiled(pattern).fullmatch(value) is None:
            raise self.fail(path, f"must match {pattern}", value, secret)
        return str.__str__(value)

    def check_range(self, value: int, prop: Mapping[str, Any], path: str, secret: bool) -> None:
        """Check an integer against the bounds of the property's ``format``, if it has one."""
        bounds = _INT_RANGES.get(str(prop.get("format")))
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            raise self.fail(path, f"must be between {bounds[0]} and {bounds[1]} ({prop.get('format')})", value, secret)

    def json_value(self, value: object, path: str, depth: int, secret: bool) -> Any:
        """Any JSON value (schema type ``any`` or an object without declared fields)."""
        if depth > _MAX_DEPTH:
            raise MachineImageValidationError(path, f"is nested more than {_MAX_DEPTH} levels deep")
        if value is None or isinstance(value, (str, bool, int)):
            return value
        if isinstance(value, float):
            if not math.isfinite(value):
                raise self.fail(path, "must be a finite number", value, secret)
            return value
        if isinstance(value, (list, tuple)):
            return [self.json_value(item, f"{path}[{i}]", depth + 1, secret) for i, item in enumerate(value)]
        if isinstance(value, Mapping):
            result: dict[str, Any] = {}
            for key, item in mapping_items(value, path):
                where = f"{path}[{show_key(key)}]"
                if not isinstance(key, str):
                    raise MachineImageValidationError(where, "keys must be strings")
                result[key] = self.json_value(item, where, depth + 1, secret)
            return result
        raise self.fail(path, "must be a JSON value (str, int, float, bool, None, list or dict)", value, secret)


def _finite(value: int | float) -> bool:
    """Whether ``value`` is finite (an int too large for a float is not)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


#: Discovery-document patterns, compiled once per process.
_PATTERN_CACHE: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    """Compile a discovery-document pattern once (a pattern Python cannot compile matches anything)."""
    compiled = _PATTERN_CACHE.get(pattern)
    if compiled is None:
        try:
            compiled = re.compile(pattern)
        except re.error:
            compiled = re.compile(r"(?s:.*)")
        _PATTERN_CACHE[pattern] = compiled
    return compiled


def validate_body(
    body: object,
    schemas: Mapping[str, Any],
    *,
    schema_name: str = "MachineImage",
    parameter: str = "body",
) -> dict[str, Any]:
    """Check a request body against a discovery-document schema.

    Unknown fields (with the closest known field suggested), output-only fields, wrong JSON types,
    enum values, integer ranges and string patterns are errors naming the dotted path
    (``body.sourceDiskEncryptionKeys[0].diskEncryptionKey.foo``). Values under encryption-key fields
    are never shown.

    :param body: the body (a dict).
    :param schemas: the discovery document's ``schemas`` map.
    :param schema_name: the schema the body must follow.
    :param parameter: the argument name used as the root of every path.
    :return: a checked deep copy of the body.
    """
    schema = schemas.get(schema_name) if isinstance(schemas, Mapping) else None
    if not isinstance(schema, Mapping):
        raise MachineImageValidationError(
            "schema_name", "must name a schema of the discovery document", show_value(schema_name)
        )
    if not isinstance(body, Mapping):
        raise MachineImageValidationError(parameter, f"must be a dict of {schema_name} fields", show_value(body))
    result: dict[str, Any] = _BodyChecker(schemas).check_object(body, schema, parameter, 0, False)
    return result
