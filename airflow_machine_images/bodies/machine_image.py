"""Build the JSON body of ``machineImages.insert`` from the insert operator's arguments.

The dedicated arguments (``labels``, ``storage_locations``, the encryption keys, ...) and any other
``MachineImage`` fields given as ``body`` merge into one body, each field checked by its own
validator, the whole checked against the discovery document's schema. A field given twice is an
error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from airflow_machine_images.bodies.keys import validate_encryption_key, validate_source_disk_encryption_keys
from airflow_machine_images.bodies.merging import arguments_by_field, body_fields
from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.validation.body_schema import validate_body
from airflow_machine_images.validation.names import (
    validate_labels,
    validate_machine_image_name,
    validate_storage_locations,
)
from airflow_machine_images.validation.primitives import show_value
from airflow_machine_images.validation.references import InstanceRef

if TYPE_CHECKING:
    from collections.abc import Mapping

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
    arguments: dict[str, Any] = {
        "description": description,
        "labels": labels,
        "storageLocations": storage_locations,
        "guestFlush": guest_flush,
        "machineImageEncryptionKey": machine_image_encryption_key,
        "sourceDiskEncryptionKeys": source_disk_encryption_keys,
        "params": machine_image_params,
    }
    extra = machine_image_body_fields(body, schemas, given=arguments)
    merged: dict[str, Any] = {"name": checked_name, "sourceInstance": source_instance.partial_url}
    merged.update(_dedicated_fields(arguments, extra, schemas))
    merged.update(extra)
    return validate_body(merged, schemas, parameter="body")


def machine_image_body_fields(
    body: Mapping[str, Any] | None, schemas: Mapping[str, Any], *, given: Mapping[str, object]
) -> dict[str, Any]:
    """The insert operator's ``body``: MachineImage fields only (writable ones, checked against the schema),
    none of them the name or source, none also given by its own argument. Run when the DAG is parsed (a
    literal body) and by :func:`build_machine_image_body`.

    :param body: the operator's ``body`` (None: no extra fields).
    :param schemas: the discovery document's ``schemas`` map.
    :param given: the dedicated arguments' values by MachineImage field (None: not given).
    :raises MachineImageValidationError: naming ``body.<field>`` and the rule.
    """
    return body_fields(
        body,
        schemas,
        schema_name="MachineImage",
        reserved={"name": "name", "sourceInstance": "source_instance"},
        dedicated=_DEDICATED_FIELDS,
        given=given,
    )


def dedicated_field_arguments(**arguments: object) -> dict[str, object]:
    """The insert operator's dedicated arguments by the MachineImage field each sets.

    :param arguments: the arguments by their own names (``storage_locations=...``).
    """
    return arguments_by_field(_DEDICATED_FIELDS, arguments)


def _dedicated_fields(
    arguments: Mapping[str, Any], extra: dict[str, Any], schemas: Mapping[str, Any]
) -> dict[str, Any]:
    """Each dedicated field, from its argument or else from ``extra`` (taken out of it), checked.

    :param arguments: the dedicated arguments by field (None: not given).
    :param extra: the other fields of ``body``; a dedicated field found here is removed.
    :param schemas: the discovery document's ``schemas`` map.
    """
    fields: dict[str, Any] = {}
    for field, argument in _DEDICATED_FIELDS.items():
        given, where = arguments[field], argument
        if given is None:
            if field not in extra:
                continue
            given, where = extra.pop(field), f"body.{field}"
        fields[field] = _check_dedicated(field, given, where, schemas)
    return fields


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
