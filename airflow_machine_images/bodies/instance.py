"""The Instance body of a restore (``instances.insert`` from a machine image), and the restore labels.

The restore operator's dedicated arguments (machine type, network interfaces, labels, metadata,
description) and any other Instance fields given as ``body`` merge into one body, checked against
the ``Instance`` schema of Google's discovery document (``compute.beta.json``/``compute.v1.json``)
before any request. Every restored instance carries :func:`restore_labels`, which is how the
delete-restored operator recognises an instance a restore made (and refuses any other).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

from airflow_machine_images.bodies.merging import body_fields
from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.validation import validate_labels, validate_machine_image_name
from airflow_machine_images.validation.body_schema import validate_body
from airflow_machine_images.validation.primitives import show_value

if TYPE_CHECKING:
    from collections.abc import Mapping

#: Label every restored instance carries: the delete-restored operator deletes nothing without it.
RESTORED_BY_LABEL: Final = "restored-by"
RESTORED_BY_VALUE: Final = "airflow-machine-images"
#: Label naming the machine image an instance was restored from (image names are valid label values).
RESTORED_FROM_LABEL: Final = "restored-from"
RESTORE_LABEL_KEYS: Final = frozenset({RESTORED_BY_LABEL, RESTORED_FROM_LABEL})

#: Instance fields with their own operator argument.
_DEDICATED_FIELDS: Final = {
    "machineType": "machine_type",
    "networkInterfaces": "network_interfaces",
    "labels": "labels",
    "metadata": "metadata",
    "description": "description",
}
_MACHINE_TYPE_NAME: Final = re.compile(r"[a-z0-9][-a-z0-9]{0,62}")
_MACHINE_TYPE_PATH: Final = re.compile(
    r"(?:https://[^/]+/compute/(?:v1|beta)/)?(?:projects/[^/]+/)?zones/(?P<zone>[^/]+)/machineTypes/"
    r"[a-z0-9][-a-z0-9]{0,62}"
)


def restore_labels(image_name: str) -> dict[str, str]:
    """The labels that mark an instance as restored by this package, from ``image_name``.

    :param image_name: the source machine image's name (a valid label value: ``[a-z0-9-]``, at most 63).
    """
    return {RESTORED_BY_LABEL: RESTORED_BY_VALUE, RESTORED_FROM_LABEL: image_name}


def is_restored(instance: Mapping[str, Any]) -> bool:
    """Whether an Instance carries the restore labels (``restored-by=airflow-machine-images`` and ``restored-from``).

    :param instance: the Instance resource.
    """
    labels = instance.get("labels") or {}
    return (
        isinstance(labels, dict)
        and labels.get(RESTORED_BY_LABEL) == RESTORED_BY_VALUE
        and bool(labels.get(RESTORED_FROM_LABEL))
    )


def machine_type_url(value: object, zone: str, parameter: str = "machine_type") -> str:
    """``machineType`` as the API takes it: ``zones/ZONE/machineTypes/TYPE`` (a bare type is expanded).

    :param value: ``e2-standard-2``, ``zones/Z/machineTypes/T`` or a full URL; the zone must be the instance's.
    :param zone: the instance's zone.
    :param parameter: the argument name used in errors.
    """
    if isinstance(value, str) and _MACHINE_TYPE_NAME.fullmatch(value):
        return f"zones/{zone}/machineTypes/{value}"
    match = _MACHINE_TYPE_PATH.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise MachineImageValidationError(
            parameter,
            "must be a machine type (e2-standard-2), zones/ZONE/machineTypes/TYPE or a URL",
            show_value(value),
        )
    if match.group("zone") != zone:
        raise MachineImageValidationError(
            parameter, f"must be a machine type of the instance's zone {zone}", show_value(value)
        )
    return str(value)


def metadata_body(value: object, parameter: str = "metadata") -> dict[str, Any]:
    """The Metadata object from a dict of keys to string values (or a Metadata object with ``items``).

    :param value: ``{"startup-script": "..."}`` or ``{"items": [{"key": ..., "value": ...}]}``.
    :param parameter: the argument name used in errors.
    """
    if not isinstance(value, dict):
        raise MachineImageValidationError(parameter, "must be a dict of metadata keys to string values", "")
    if "items" in value:
        return dict(value)  # a Metadata object: checked against the schema with the whole body
    items = []
    for key, item in value.items():
        if not isinstance(key, str) or not key or not isinstance(item, str):
            # The value is not shown: metadata often holds scripts or keys.
            raise MachineImageValidationError(f"{parameter}[{key!r}]", "keys and values must be non-empty strings")
        items.append({"key": key, "value": item})
    return {"items": items}


def _dedicated_fields(metadata: object, network_interfaces: object, description: object) -> dict[str, Any]:
    """The metadata, network interfaces and description arguments as Instance fields (None ones left out)."""
    fields: dict[str, Any] = {}
    if metadata is not None:
        fields["metadata"] = metadata_body(metadata)
    if network_interfaces is not None:
        if not isinstance(network_interfaces, list) or not network_interfaces:
            raise MachineImageValidationError(
                "network_interfaces",
                "must be a non-empty list of NetworkInterface dicts",
                show_value(network_interfaces),
            )
        fields["networkInterfaces"] = network_interfaces
    if description is not None:
        if not isinstance(description, str):
            raise MachineImageValidationError("description", "must be a string", show_value(description))
        fields["description"] = description
    return fields


def build_instance_body(
    *,
    name: str,
    zone: str,
    source_machine_image: str,
    machine_type: str | None,
    network_interfaces: list[dict[str, Any]] | None,
    labels: Mapping[str, str],
    metadata: dict[str, Any] | None,
    description: str | None,
    body: Mapping[str, Any] | None,
    schemas: Mapping[str, Any],
) -> dict[str, Any]:
    """Merge the restore operator's arguments and ``body`` into one Instance body checked against the schema.

    A field given both in ``body`` and by its own argument is an error, as are ``name`` and
    ``sourceMachineImage`` in ``body``.

    :param name: the new instance's name.
    :param zone: its zone.
    :param source_machine_image: the image's partial URL (``projects/P/global/machineImages/N``).
    :param machine_type: ``machineType`` override.
    :param network_interfaces: ``networkInterfaces`` override.
    :param labels: the final labels (the user's, the restore labels, the default ones).
    :param metadata: ``metadata`` override (see :func:`metadata_body`).
    :param description: ``description``.
    :param body: any other Instance fields.
    :param schemas: the discovery document's ``schemas`` map.
    :return: the body to send.
    """
    checked_name = validate_machine_image_name(name, "name")
    arguments = {
        "machineType": machine_type,
        "networkInterfaces": network_interfaces,
        "metadata": metadata,
        "description": description,
    }
    extra = body_fields(
        body,
        schemas,
        schema_name="Instance",
        reserved={"name": "name", "sourceMachineImage": "source_machine_image", "labels": "labels"},
        dedicated=_DEDICATED_FIELDS,
        given=arguments,
    )
    merged: dict[str, Any] = {"name": checked_name, "sourceMachineImage": source_machine_image}
    if machine_type is not None or "machineType" in extra:
        where = "machine_type" if machine_type is not None else "body.machineType"
        merged["machineType"] = machine_type_url(extra.pop("machineType", machine_type), zone, where)
    merged.update(_dedicated_fields(metadata, network_interfaces, description))
    merged["labels"] = validate_labels(labels, "labels")
    merged.update(extra)
    return validate_body(merged, schemas, schema_name="Instance", parameter="body")
