"""Checks of request parts that several methods share, each refused with the 400 the real API answers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_machine_images.emulator import errors
from airflow_machine_images.emulator.schema import (
    LABEL_KEY_RE,
    LABEL_VALUE_RE,
    NAME_PATTERN,
    NAME_RE,
    valid_request_id,
)

if TYPE_CHECKING:
    from airflow_machine_images.emulator.routing import Call

__all__ = ["MAX_LABELS", "object_body", "optional_field", "request_id", "resource_body", "validate_labels"]

#: The most labels a resource may have.
MAX_LABELS = 64


def request_id(call: Call) -> str | None:
    """The ``requestId`` query parameter.

    :param call: the request.
    :return: the requestId, or None when none (or an empty one) was sent.
    :raises ApiError: 400 when it is not a valid, non-zero UUID.
    """
    value = call.query.get("requestId")
    if value is None or value == "":
        return None
    if not valid_request_id(value):
        raise errors.invalid_field("requestId", value, "Must be a valid UUID, and the zero UUID is not supported.")
    return value


def object_body(call: Call, where: str) -> dict[str, Any]:
    """The JSON body, which must be an object.

    :param call: the request.
    :param where: the body's name in errors (``resource``, ``body``).
    :return: the body ({} when none was sent).
    """
    if call.body is None:
        return {}
    if not isinstance(call.body, dict):
        raise errors.invalid(f"Invalid JSON payload received. Expected an object for '{where}'.")
    return call.body


def resource_body(call: Call, known: dict[str, bool]) -> tuple[dict[str, Any], str]:
    """An insert's ``resource``: only fields of its schema, and a valid ``name`` (machine images, instances).

    :param call: the request.
    :param known: the schema's top-level fields (from the discovery document).
    :return: the body and its name.
    """
    body = object_body(call, "resource")
    for field_name in body:
        if field_name not in known:
            raise errors.invalid(
                f"Invalid JSON payload received. Unknown name \"{field_name}\" at 'resource': Cannot find field."
            )
    name = body.get("name")
    if name is None or name == "":
        raise errors.required("resource.name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise errors.invalid_field("resource.name", name, f"Must be a match of regex '{NAME_PATTERN}'")
    return body, name


def validate_labels(value: Any, where: str) -> dict[str, str]:
    """Check labels like the API does.

    :param value: the labels sent.
    :param where: the field name for errors.
    :return: the labels.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise errors.invalid_field(where, value, "Labels must be a map of strings.")
    if len(value) > MAX_LABELS:
        raise errors.invalid_field(where, "", f"At most {MAX_LABELS} labels are allowed.")
    for key, label in value.items():
        if not LABEL_KEY_RE.fullmatch(key):
            raise errors.invalid_field(
                where,
                "",
                f"Label key '{key}' violates format constraints. The key must start with a lowercase "
                "character, can only contain lowercase letters, numeric characters, underscores and "
                "dashes. The key can be at most 63 characters long.",
            )
        if not isinstance(label, str) or not LABEL_VALUE_RE.fullmatch(label):
            raise errors.invalid_field(
                where,
                "",
                f"Label value '{label}' violates format constraints. The value can only contain "
                "lowercase letters, numeric characters, underscores and dashes. The value can be at "
                "most 63 characters long.",
            )
    return dict(value)


def optional_field(body: dict[str, Any], name: str, kind: type, rule: str) -> Any:
    """A ``resource`` field that may be left out, of one JSON type.

    :param body: the resource.
    :param name: the field, e.g. ``description``.
    :param kind: its Python type (``str``, ``bool``).
    :param rule: the error's rule, e.g. ``Must be a string.``.
    :return: its value, or None when it was not sent.
    :raises ApiError: 400 ``invalid`` naming ``resource.NAME`` when it has another type.
    """
    value = body.get(name)
    if value is not None and not isinstance(value, kind):
        raise errors.invalid_field(f"resource.{name}", value, rule)
    return value
