"""The Instance body of a restore (``instances.insert`` from a machine image), the restore labels and who owns one.

The restore operator's dedicated arguments (machine type, network interfaces, labels, metadata,
description, deletion protection, service accounts, the image's key) and any other Instance fields given
as ``body`` merge into one body, checked against the ``Instance`` schema of Google's discovery document
(``compute.beta.json``/``compute.v1.json``) before any request. Every restored instance carries
:func:`restore_labels`: ``restored-by``/``restored-from`` say a restore made it, ``restore-dag`` and
``restore-id`` bind it to the DAG and the one restore (task instance) that made it. The labels anyone can
write prove nothing alone: :class:`RestoreOwnership` is what the delete-restored operator (and a failed
restore's cleanup) asks before deleting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from airflow_machine_images.bodies.keys import validate_encryption_key
from airflow_machine_images.bodies.merging import arguments_by_field, body_fields
from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.flows.request_ids import dag_key
from airflow_machine_images.validation import validate_labels, validate_machine_image_name, validate_optional_bool
from airflow_machine_images.validation.body_schema import validate_body
from airflow_machine_images.validation.primitives import show_value

if TYPE_CHECKING:
    from collections.abc import Mapping

#: Label every restored instance carries: the delete-restored operator deletes nothing without it.
RESTORED_BY_LABEL: Final = "restored-by"
RESTORED_BY_VALUE: Final = "airflow-machine-images"
#: Label naming the machine image an instance was restored from (image names are valid label values).
RESTORED_FROM_LABEL: Final = "restored-from"
#: Label binding a restored instance to the DAG whose restore made it: the DAG id's
#: :func:`~airflow_machine_images.flows.request_ids.dag_key` (label values hold 63 of ``[a-z0-9_-]``).
RESTORE_DAG_LABEL: Final = "restore-dag"
#: Label binding it to the one restore that made it: the restore task instance's key, in its XCom as ``restore_id``.
RESTORE_ID_LABEL: Final = "restore-id"
RESTORE_LABEL_KEYS: Final = frozenset({RESTORED_BY_LABEL, RESTORED_FROM_LABEL, RESTORE_DAG_LABEL, RESTORE_ID_LABEL})
#: The readable DAG label of :func:`~airflow_machine_images.bodies.labels.default_labels`, quoted in refusals.
_DAG_LABEL: Final = "airflow-dag"

#: Instance fields with their own operator argument.
_DEDICATED_FIELDS: Final = {
    "machineType": "machine_type",
    "networkInterfaces": "network_interfaces",
    "labels": "labels",
    "metadata": "metadata",
    "description": "description",
    "deletionProtection": "deletion_protection",
    "serviceAccounts": "service_accounts",
    "sourceMachineImageEncryptionKey": "source_machine_image_encryption_key",
}
_MACHINE_TYPE_NAME_PATTERN: Final = r"[a-z0-9][-a-z0-9]{0,62}"
_MACHINE_TYPE_PATH_PATTERN: Final = (
    r"(?:https://[^/]+/compute/(?:v1|beta)/)?(?:projects/[^/]+/)?zones/(?P<zone>[^/]+)/machineTypes/"
    r"[a-z0-9][-a-z0-9]{0,62}"
)


def restore_labels(image_name: str, *, dag_id: str, restore_id: str) -> dict[str, str]:
    """The labels that mark an instance as restored by this package, and by which DAG and restore.

    :param image_name: the source machine image's name (a valid label value: ``[a-z0-9-]``, at most 63).
    :param dag_id: the restoring task's DAG id (labelled as its :func:`dag_key`).
    :param restore_id: the restoring task instance's key (32 hex digits).
    """
    return {
        RESTORED_BY_LABEL: RESTORED_BY_VALUE,
        RESTORED_FROM_LABEL: image_name,
        RESTORE_DAG_LABEL: dag_key(dag_id),
        RESTORE_ID_LABEL: restore_id,
    }


def labels_of(resource: Mapping[str, Any]) -> dict[str, Any]:
    """A resource's ``labels``, or an empty dict when it has none (or something else there).

    :param resource: an Instance (or any labelled resource).
    """
    labels = resource.get("labels")
    return dict(labels) if isinstance(labels, dict) else {}


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


@dataclass(frozen=True)
class RestoreOwnership:
    """Which restored instances a task may delete: its own DAG's restores and those of the DAGs it names
    (``allow_dag_ids``, never templated), narrowed to one restore when a ``restore_id`` is given.

    A ``restore_id`` only narrows: it is templated (it may come from ``dag_run.conf``) and is readable in
    any restored instance's labels, so on its own it would let any DAG delete a restore it names.

    :param dag_ids: the task's own DAG id first, then any others whose restores it may delete.
    :param restore_id: the ``restore_id`` of one restore (its XCom): only the instance that restore made.
    """

    dag_ids: tuple[str, ...]
    restore_id: str | None = None

    def refusal(self, instance: Mapping[str, Any]) -> str | None:
        """Why ``instance`` may not be deleted by this owner, or None when it may.

        :param instance: the Instance resource, as just read.
        """
        labels = labels_of(instance)
        if not is_restored(instance):
            return (
                f"it does not carry the restore labels ({RESTORED_BY_LABEL}={RESTORED_BY_VALUE} and "
                f"{RESTORED_FROM_LABEL}), so it was not made by ComputeEngineRestoreMachineImageOperator"
            )
        found = labels.get(RESTORE_DAG_LABEL)
        if found is None:
            return (
                f"it carries no {RESTORE_DAG_LABEL} label, so nothing binds it to a DAG (restored by an earlier "
                "release, or labelled by hand)"
            )
        if found not in {dag_key(dag_id) for dag_id in self.dag_ids}:
            made_by = labels.get(_DAG_LABEL)
            return f"it was restored by another DAG ({_DAG_LABEL}={made_by!r}), not by " + " or ".join(
                repr(dag_id) for dag_id in self.dag_ids
            )
        if self.restore_id is not None and labels.get(RESTORE_ID_LABEL) != self.restore_id:
            found_id = labels.get(RESTORE_ID_LABEL)
            return f"its {RESTORE_ID_LABEL} label is {found_id!r}, not the restore_id given ({self.restore_id!r})"
        return None

    def what_to_do(self) -> str:
        """What a refused task can do about it, for messages."""
        if self.restore_id is not None:
            return (
                "pass the restore_id of the restore that made it (its XCom), with allow_dag_ids=[...] naming its "
                "DAG if another DAG made it, or delete it yourself"
            )
        return (
            "pass allow_dag_ids=[...] to delete restores of other DAGs by intent (with the restore task's "
            "restore_id, its XCom, to delete exactly what it made), or delete it yourself"
        )


def check_cross_project(body: Mapping[str, Any], *, image_project: str, project_id: str) -> None:
    """Refuse, before any request, a restore into another project than the image's that would carry across
    what Compute Engine refuses there: the image's service account and its networks.

    Terraform sends a service account because "ServiceAccount is required when the image is from a
    different project" (terraform-provider-google-beta, ``resource_compute_instance_from_machine_image``),
    and a network of another project is refused with "Cross-project references for this resource are not
    allowed". The image's own are of its project, so both must be given (a shared VPC subnetwork of a host
    project included: whether the image's would pass cannot be told here, the safe reading).

    :param body: the Instance body about to be sent.
    :param image_project: the image's project id (canonical: a number resolved).
    :param project_id: the new instance's project.
    :raises MachineImageValidationError: naming the argument to set.
    """
    if image_project == project_id:
        return
    where = f"the image is in project {image_project}, the new instance in {project_id}"
    if not body.get("serviceAccounts"):
        raise MachineImageValidationError(
            "service_accounts",
            f"is required for a restore across projects ({where}): Compute Engine requires a service account when "
            "the image is from a different project; give one of the new instance's project, e.g. "
            "[{'email': 'NAME@PROJECT.iam.gserviceaccount.com', 'scopes': ['https://www.googleapis.com/auth/cloud-platform']}]",
        )
    if not body.get("networkInterfaces"):
        raise MachineImageValidationError(
            "network_interfaces",
            f"is required for a restore across projects ({where}): the image's network interfaces name networks "
            f"of project {image_project}, and Compute Engine refuses them ('Cross-project references for this "
            "resource are not allowed'); give interfaces on a network of the new instance's project (or a shared VPC)",
        )


def machine_type_url(value: object, zone: str, parameter: str = "machine_type") -> str:
    """``machineType`` as the API takes it: ``zones/ZONE/machineTypes/TYPE`` (a bare type is expanded).

    :param value: ``e2-standard-2``, ``zones/Z/machineTypes/T`` or a full URL; the zone must be the instance's.
    :param zone: the instance's zone.
    :param parameter: the argument name used in errors.
    """
    if isinstance(value, str) and re.fullmatch(_MACHINE_TYPE_NAME_PATTERN, value):
        return f"zones/{zone}/machineTypes/{value}"
    match = re.fullmatch(_MACHINE_TYPE_PATH_PATTERN, value) if isinstance(value, str) else None
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


def _service_accounts(value: object) -> list[dict[str, Any]]:
    """``serviceAccounts``: a non-empty list of ServiceAccount dicts, each with an ``email``.

    :param value: the ``service_accounts`` argument.
    """
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(a, dict) and isinstance(a.get("email"), str) and a["email"] for a in value)
    ):
        raise MachineImageValidationError(
            "service_accounts",
            "must be a non-empty list of ServiceAccount dicts, each with an email",
            show_value(value),
        )
    return [dict(account) for account in value]


def _protection_and_identity(
    deletion_protection: object, service_accounts: object, image_key: object
) -> dict[str, Any]:
    """The deletion protection, service accounts and image key arguments as Instance fields (None ones left out)."""
    fields: dict[str, Any] = {}
    if deletion_protection is not None:
        fields["deletionProtection"] = validate_optional_bool(deletion_protection, "deletion_protection")
    if service_accounts is not None:
        fields["serviceAccounts"] = _service_accounts(service_accounts)
    if image_key is not None:
        fields["sourceMachineImageEncryptionKey"] = validate_encryption_key(
            image_key, "source_machine_image_encryption_key"
        )
    return fields


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


def instance_body_fields(
    body: Mapping[str, Any] | None, schemas: Mapping[str, Any], *, given: Mapping[str, object]
) -> dict[str, Any]:
    """The restore operator's ``body``: Instance fields only (writable ones, checked against the schema), none
    of them the name, image or labels, none also given by its own argument. Run when the DAG is parsed (a
    literal body) and by :func:`build_instance_body`.

    :param body: the operator's ``body`` (None: no extra fields).
    :param schemas: the discovery document's ``schemas`` map.
    :param given: the dedicated arguments' values by Instance field (None: not given).
    :raises MachineImageValidationError: naming ``body.<field>`` and the rule.
    """
    return body_fields(
        body,
        schemas,
        schema_name="Instance",
        reserved={"name": "name", "sourceMachineImage": "source_machine_image", "labels": "labels"},
        dedicated=_DEDICATED_FIELDS,
        given=given,
    )


def dedicated_field_arguments(**arguments: object) -> dict[str, object]:
    """The restore operator's dedicated arguments by the Instance field each sets.

    :param arguments: the arguments by their own names (``machine_type=...``).
    """
    return arguments_by_field(_DEDICATED_FIELDS, arguments)


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
    deletion_protection: bool | None = None,
    service_accounts: list[dict[str, Any]] | None = None,
    source_machine_image_encryption_key: Mapping[str, Any] | None = None,
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
    :param deletion_protection: ``deletionProtection`` (None: the image's, kept from its source).
    :param service_accounts: ``serviceAccounts``.
    :param source_machine_image_encryption_key: ``sourceMachineImageEncryptionKey``.
    :return: the body to send.
    """
    arguments = {
        "machineType": machine_type,
        "networkInterfaces": network_interfaces,
        "metadata": metadata,
        "description": description,
        "deletionProtection": deletion_protection,
        "serviceAccounts": service_accounts,
        "sourceMachineImageEncryptionKey": source_machine_image_encryption_key,
    }
    extra = instance_body_fields(body, schemas, given=arguments)
    merged: dict[str, Any] = {
        "name": validate_machine_image_name(name, "name"),
        "sourceMachineImage": source_machine_image,
    }
    if machine_type is not None or "machineType" in extra:
        where = "machine_type" if machine_type is not None else "body.machineType"
        merged["machineType"] = machine_type_url(extra.pop("machineType", machine_type), zone, where)
    merged.update(_dedicated_fields(metadata, network_interfaces, description))
    merged.update(_protection_and_identity(deletion_protection, service_accounts, source_machine_image_encryption_key))
    merged["labels"] = validate_labels(labels, "labels")
    merged.update(extra)
    return validate_body(merged, schemas, schema_name="Instance", parameter="body")
