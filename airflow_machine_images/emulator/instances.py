"""``instances.get``, ``aggregatedList``, ``insert`` from a machine image, ``delete`` and ``setDeletionProtection``.

What the real API does, and where it is written:

- ``instances.insert`` takes ``sourceMachineImage`` as a query parameter and as a field of the
  Instance body (``compute.beta.json`` and ``compute.v1.json``, ``resources.instances.methods.insert``
  and ``schemas.Instance``); Google's REST example in "Create VMs from machine images" sends the body
  field. Either is accepted here; both with different values is refused (no source settles which
  would win: the safe reading is an error).
- The insert answers a zonal Operation (``zoneOperations``); the instance is PROVISIONING, then
  STAGING, then RUNNING ("VM instance life cycle"). A taken name is 409 ``alreadyExists``, a missing
  image 404; an image that is not READY is refused with 400 ``resourceNotReady`` (the documentation
  does not say; the safe reading is that nothing is made from an image still being created).
- ``instances.delete`` takes a name or a numeric id (the path parameter's pattern allows both) and
  answers a zonal Operation; the instance is STOPPING until it is gone, and its disks without
  ``autoDelete`` survive it (:mod:`.disk_store`).
- Deletion protection: an instance restored from a machine image inherits
  ``sourceInstanceProperties.deletionProtection`` unless the request sets ``deletionProtection`` (discovery
  documents: "Whether the instance created from this machine image should be protected against
  deletion"); ``instances.delete`` of a protected instance answers 400 ``invalidResourceUsage``, "Invalid
  resource usage: 'Resource cannot be deleted if it's protected against deletion.'"
  (terraform-provider-google PR 1211, googleapis/python-compute PR 208);
  ``instances.setDeletionProtection?deletionProtection=false`` (a requestId, a zonal Operation) clears it.
- Disks are named after the instance; a taken disk name is 409 ``alreadyExists`` naming the disk, not the
  instance (hashicorp/terraform issue 7998; :func:`.instance_store.restored_disk_names`).
- Restoring into another project than the image's: a ``serviceAccounts`` entry is required (Terraform
  sends one because "ServiceAccount is required when the image is from a different project",
  terraform-provider-google-beta ``resource_compute_instance_from_machine_image``), and a network of
  another project is refused, 400 "Cross-project references for this resource are not allowed." (shared
  VPC is not modelled; the exact shape of both answers is unverified).
- An image protected by a customer-supplied key needs ``sourceMachineImageEncryptionKey`` (Instance schema;
  Terraform's ``source_machine_image_encryption_key``); the key must be the image's (the wording of both
  refusals is unverified).
- Both deduplicate by ``requestId`` exactly as ``machineImages.insert`` does.
- ``instances.aggregatedList`` answers every zone scope (:mod:`.aggregated_instances`).

Only the machine-image path of ``instances.insert`` is emulated: an insert without
``sourceMachineImage`` is refused for having no boot disk, as the real API refuses an Instance with
neither disks nor a source.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_machine_images.emulator import errors
from airflow_machine_images.emulator.aggregated_instances import LabelFilterDrop, aggregated_instances, label_filtered
from airflow_machine_images.emulator.errors import ApiError
from airflow_machine_images.emulator.keys import echo_key
from airflow_machine_images.emulator.references import parse_machine_image
from airflow_machine_images.emulator.routing import RoutePattern
from airflow_machine_images.emulator.schema import instance_fields
from airflow_machine_images.emulator.validation import optional_field, request_id, resource_body, validate_labels

if TYPE_CHECKING:
    from airflow_machine_images.emulator.context import ApiContext
    from airflow_machine_images.emulator.instance_store import InstanceStore
    from airflow_machine_images.emulator.machine_image_store import MachineImageStore
    from airflow_machine_images.emulator.resources import Instance, MachineImage, Operation
    from airflow_machine_images.emulator.routing import Call, Handler
    from airflow_machine_images.emulator.state import Origin

__all__ = ["InstanceHandlers"]

_NETWORK_PROJECT = re.compile(r"projects/(?P<project>[^/]+)/global/networks/")
_MACHINE_TYPE = re.compile(
    r"(?:https?://[^/]+/compute/(?:v1|beta|alpha)/(?=projects/))?"
    r"(?:projects/(?P<project>[^/]+)/)?zones/(?P<zone>[^/]+)/machineTypes/(?P<type>[a-z0-9][-a-z0-9]{0,62})"
)


class InstanceHandlers:
    """The ``instances`` methods.

    :param context: the state, links and shared steps.
    :param instances: the instances.
    :param images: the machine images instances are restored from.
    """

    ROUTES: ClassVar[tuple[RoutePattern, ...]] = (
        RoutePattern("zones/{zone}/instances", {"POST": "instances.insert"}),
        RoutePattern("zones/{zone}/instances/{instance}", {"GET": "instances.get", "DELETE": "instances.delete"}),
        RoutePattern(
            "zones/{zone}/instances/{instance}/setDeletionProtection", {"POST": "instances.setDeletionProtection"}
        ),
        RoutePattern("aggregated/instances", {"GET": "instances.aggregatedList"}),
    )

    def __init__(self, context: ApiContext, instances: InstanceStore, images: MachineImageStore) -> None:
        self._context = context
        self._state = context.state
        self._instances = instances
        self._images = images

    def actions(self) -> dict[str, Handler]:
        """:return: the handler of each action of :attr:`ROUTES`."""
        return {
            "instances.get": self.get,
            "instances.aggregatedList": self.aggregated_list,
            "instances.insert": self.insert,
            "instances.delete": self.delete,
            "instances.setDeletionProtection": self.set_deletion_protection,
        }

    def get(self, call: Call) -> dict[str, Any]:
        """``instances.get`` (by name or numeric id). :param call: the request."""
        with self._state.session() as now:
            return self._instance_or_404(call).render(self._context.links, call.version, now)

    def aggregated_list(self, call: Call) -> dict[str, Any]:
        """``instances.aggregatedList``: every zone scope of the project (see :mod:`.aggregated_instances`).

        A ``label_filter_drop`` fault leaves instances out of an answer whose filter has a ``labels.`` term,
        silently; on a request without one it has no effect and is given back for the next.

        :param call: the request.
        """
        fault = call.fault
        drop = None
        if fault is not None and fault.kind == "label_filter_drop":
            if label_filtered(call.query.get("filter")):
                drop = LabelFilterDrop(fault.instance_names, fault.omit_fraction)
            elif self._context.give_back is not None:
                self._context.give_back(fault)
        with self._state.session() as now:
            return aggregated_instances(
                self._instances.in_project(call.project),
                zones={instance.zone for instance in self._instances.everywhere()},
                query=call.query,
                project=call.project,
                version=call.version,
                links=self._context.links,
                unreachable=self._instances.unreachable_zones,
                now=now,
                drop=drop,
            )

    def insert(self, call: Call) -> dict[str, Any]:
        """``instances.insert`` from a machine image: validate, replay a remembered requestId, else create.

        :param call: the request.
        """
        rid = request_id(call)
        body, name = resource_body(call, instance_fields(call.version))
        zone = call.route.args["zone"]
        image_project, image_name = parse_machine_image(_source_image(call, body), call.project)
        fields = _instance_fields(body, zone)
        source_key = _source_image_key(body)

        def restore(now: float, origin: Origin) -> Operation:
            if self._instances.get(call.project, zone, name) is not None:
                raise errors.already_exists(f"projects/{call.project}/zones/{zone}/instances/{name}")
            image = self._ready_image(image_project, image_name)
            _check_source_image_key(image, source_key)
            if image.project != call.project:
                _check_cross_project(call.project, image, body)
            taken = self._instances.taken_disk(call.project, zone, name, image)
            if taken is not None:
                raise errors.already_exists(taken)
            return self._instances.restore(
                project=call.project,
                zone=zone,
                name=name,
                image=image,
                now=now,
                origin=origin,
                version=call.version,
                fields=fields,
            )

        return self._context.start_once(call, rid, restore)

    def delete(self, call: Call) -> dict[str, Any]:
        """``instances.delete`` (by name or numeric id): replay a remembered requestId, else start deleting.

        :param call: the request.
        """

        def start_deleting(now: float, origin: Origin) -> Operation:
            instance = self._instance_or_404(call)
            if instance.operation is not None and instance.operation.operation_type == "delete":
                raise ApiError(400, "resourceNotReady", f"The resource '{instance.path}' is not ready")
            if instance.deletion_protection:
                raise ApiError(
                    400,
                    "invalidResourceUsage",
                    "Invalid resource usage: 'Resource cannot be deleted if it's protected against deletion.'.",
                )
            return self._instances.delete(instance, now=now, origin=origin)

        return self._context.start_once(call, request_id(call), start_deleting)

    def set_deletion_protection(self, call: Call) -> dict[str, Any]:
        """``instances.setDeletionProtection`` (by name or numeric id): ``deletionProtection`` defaults to true
        (discovery documents); a remembered requestId is replayed.

        :param call: the request.
        """
        value = call.query.get("deletionProtection", "true")
        if value not in ("true", "false"):
            raise errors.invalid_field("deletionProtection", value, "Must be a boolean.")

        def protect(now: float, origin: Origin) -> Operation:
            instance = self._instance_or_404(call)
            return self._instances.set_deletion_protection(instance, value == "true", now=now, origin=origin)

        return self._context.start_once(call, request_id(call), protect)

    def _instance_or_404(self, call: Call) -> Instance:
        """:return: the instance the path names (lock held). :raises ApiError: 404."""
        zone, name = call.route.args["zone"], call.route.args["instance"]
        instance = self._instances.get(call.project, zone, name)
        if instance is None:
            raise errors.not_found(f"projects/{call.project}/zones/{zone}/instances/{name}")
        return instance

    def _ready_image(self, project: str, name: str) -> MachineImage:
        """The source image, its project named by id or number (``sourceMachineImage`` takes either, as every
        project reference does: see :mod:`.api`). Lock held.

        :return: the image. :raises ApiError: 404 when missing, 400 when not READY.
        """
        image = self._images.get(self._state.project_id(project) or project, name)
        if image is None:
            raise errors.not_found(f"projects/{project}/global/machineImages/{name}")
        if image.status != "READY":
            raise ApiError(400, "resourceNotReady", f"The resource '{image.path}' is not ready")
        return image


def _source_image(call: Call, body: dict[str, Any]) -> str:
    """``sourceMachineImage``, from the query or the resource (both: the same image)."""
    query, field = call.query.get("sourceMachineImage") or None, body.get("sourceMachineImage")
    if field is not None and not isinstance(field, str):
        raise errors.invalid_field("resource.sourceMachineImage", field, "Must be a URL.")
    if query and field and parse_machine_image(query, call.project) != parse_machine_image(field, call.project):
        raise errors.invalid_field(
            "sourceMachineImage", query, "The query parameter and resource.sourceMachineImage name different images."
        )
    source = query or field
    if not source:
        raise errors.invalid_field("resource.disks", "", "No disks are specified.")
    return source


def _source_image_key(body: dict[str, Any]) -> dict[str, str] | None:
    """``sourceMachineImageEncryptionKey`` as the API keeps it (its sha256, never the key), or None."""
    given = body.get("sourceMachineImageEncryptionKey")
    return None if given is None else echo_key(given, "resource.sourceMachineImageEncryptionKey")


def _check_source_image_key(image: MachineImage, given: dict[str, str] | None) -> None:
    """Refuse to read an image protected by a customer-supplied key without that key.

    The API refuses to read a resource protected by a customer-supplied key when the request gives none:
    400 ``resourceIsEncryptedWithCustomerEncryptionKey``, "'...' is protected with a customer supplied
    encryption key, but none was provided." (for disks and snapshots: terraform-provider-google issue
    5967, ansible-collections/google.cloud pull 468). An instance insert gives the image's key as
    ``sourceMachineImageEncryptionKey`` (Instance schema; Terraform's
    ``source_machine_image_encryption_key``). The same answer for a machine image, and for a key whose
    sha256 is not the image's, is the safe reading (unverified: no source shows either).

    :param image: the source image.
    :param given: the key the request gave, as kept (its sha256), or None.
    """
    protected = (image.encryption_key or {}).get("sha256")
    if protected is None:
        return
    if given is None:
        problem = "but none was provided"
    elif given.get("sha256") != protected:
        problem = "and the key provided is not that key"
    else:
        return
    message = f"'{image.path}' is protected with a customer supplied encryption key, {problem}."
    raise ApiError(400, "resourceIsEncryptedWithCustomerEncryptionKey", message)


def _machine_type(value: object, zone: str) -> str:
    """:param value: ``machineType`` as sent. :param zone: the instance's zone. :return: the type's name."""
    if not isinstance(value, str):
        raise errors.invalid_field("resource.machineType", value, "Must be a URL.")
    match = _MACHINE_TYPE.fullmatch(value)
    if match is None:
        raise errors.invalid_field(
            "resource.machineType", value, "Invalid value. Expected 'zones/ZONE/machineTypes/TYPE' or a full URL."
        )
    if match.group("zone") != zone:
        raise errors.invalid_field(
            "resource.machineType", value, f"The machine type must be in the instance's zone {zone}."
        )
    return match.group("type")


def _metadata(value: object) -> list[dict[str, str]]:
    """:param value: ``metadata`` as sent. :return: its items as key/value pairs."""
    if not isinstance(value, dict):
        raise errors.invalid_field("resource.metadata", "", "Must be a Metadata object.")
    unknown = set(value) - {"items", "fingerprint", "kind"}
    if unknown:
        raise errors.invalid(
            f"Invalid JSON payload received. Unknown name \"{sorted(unknown)[0]}\" at 'resource.metadata'."
        )
    items = value.get("items") or []
    if not isinstance(items, list):
        raise errors.invalid_field("resource.metadata.items", "", "Must be a list.")
    checked: list[dict[str, str]] = []
    for index, item in enumerate(items):
        where = f"resource.metadata.items[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("key"), str) or not item["key"]:
            raise errors.required(f"{where}.key")
        if not isinstance(item.get("value", ""), str):
            raise errors.invalid_field(f"{where}.value", "", "Must be a string.")
        checked.append({"key": item["key"], "value": item.get("value", "")})
    return checked


def _instance_fields(body: dict[str, Any], zone: str) -> dict[str, Any]:
    """The Instance attributes the emulator keeps, checked like the API checks them (in this order).

    :param body: the ``resource``.
    :param zone: the instance's zone.
    :return: labels, and machine_type, metadata, description when given.
    """
    fields: dict[str, Any] = {"labels": validate_labels(body.get("labels"), "resource.labels")}
    if body.get("machineType") is not None:
        fields["machine_type"] = _machine_type(body["machineType"], zone)
    if body.get("metadata") is not None:
        fields["metadata"] = _metadata(body["metadata"])
    description = optional_field(body, "description", str, "Must be a string.")
    if description is not None:
        fields["description"] = description
    interfaces = body.get("networkInterfaces")
    if interfaces is not None:
        if not isinstance(interfaces, list) or not all(isinstance(i, dict) for i in interfaces):
            raise errors.invalid_field("resource.networkInterfaces", "", "Must be a list of NetworkInterface objects.")
        fields["network_interfaces"] = [dict(interface) for interface in interfaces]
    accounts = body.get("serviceAccounts")
    if accounts is not None:
        if not isinstance(accounts, list) or not all(isinstance(a, dict) and a.get("email") for a in accounts):
            raise errors.invalid_field("resource.serviceAccounts", "", "Must be a list of ServiceAccount objects.")
        fields["service_accounts"] = [dict(account) for account in accounts]
    protection = optional_field(body, "deletionProtection", bool, "Must be a boolean.")
    if protection is not None:
        fields["deletion_protection"] = protection
    return fields


def _check_cross_project(project: str, image: MachineImage, body: dict[str, Any]) -> None:
    """Restoring an image of another project: a service account is required, and the network interfaces (the
    request's, else the image's) must not name a network of another project (see the module text).

    :param project: the new instance's project.
    :param image: the source image (of another project).
    :param body: the Instance resource sent.
    """
    if not body.get("serviceAccounts"):
        raise errors.invalid(
            "Invalid value for field 'resource.serviceAccounts': ''. ServiceAccount is required when the image is "
            "from a different project."
        )
    interfaces = body.get("networkInterfaces")
    if interfaces is None:
        interfaces = image.saved_network or [{"network": f"projects/{image.source.project}/global/networks/default"}]
    for interface in interfaces:
        network = str(interface.get("network") or "")
        match = _NETWORK_PROJECT.search(network)
        if match is not None and match.group("project") != project:
            raise errors.invalid_field(
                "resource.networkInterfaces[].network",
                network,
                "Cross-project references for this resource are not allowed.",
            )
