"""How an operator's dedicated arguments and its free-form ``body`` meet: one rule for every request body.

A field with an argument of its own (``labels``, ``machineType``, ...) may come either from that
argument or from ``body``, never from both; the fields that identify the request (the name, the
source) come only from their arguments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.validation.body_schema import validate_body

if TYPE_CHECKING:
    from collections.abc import Mapping


def body_fields(
    body: Mapping[str, Any] | None,
    schemas: Mapping[str, Any],
    *,
    schema_name: str,
    reserved: Mapping[str, str],
    dedicated: Mapping[str, str],
    given: Mapping[str, object],
) -> dict[str, Any]:
    """The fields of ``body``, checked against the schema, none of them also set by an argument.

    :param body: the operator's ``body`` (None: no extra fields).
    :param schemas: the discovery document's ``schemas`` map.
    :param schema_name: the resource's schema (``MachineImage``, ``Instance``).
    :param reserved: fields only their own argument may set (field to argument name).
    :param dedicated: fields with an argument of their own (field to argument name).
    :param given: the dedicated arguments' values by field (None: not given).
    :raises MachineImageValidationError: naming ``body.<field>`` and the argument to use.
    """
    fields = dict(validate_body(body, schemas, schema_name=schema_name, parameter="body")) if body is not None else {}
    for field, argument in reserved.items():
        if field in fields:
            raise MachineImageValidationError(f"body.{field}", f"set it with the {argument} argument, not in body")
    for field, argument in dedicated.items():
        if given.get(field) is not None and field in fields:
            raise MachineImageValidationError(f"body.{field}", f"also given as the {argument} argument; use one")
    return fields


def arguments_by_field(dedicated: Mapping[str, str], arguments: Mapping[str, object]) -> dict[str, object]:
    """An operator's dedicated arguments keyed by the body field each sets (what :func:`body_fields` takes
    as ``given``).

    :param dedicated: fields with an argument of their own (field to argument name).
    :param arguments: the arguments by their own names (``machine_type=...``).
    """
    by_argument = {argument: field for field, argument in dedicated.items()}
    return {by_argument[name]: value for name, value in arguments.items()}
