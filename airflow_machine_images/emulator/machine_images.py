"""``machineImages.insert``, ``get``, ``list``, ``delete`` and ``setLabels``: global resources with global operations.

``insert`` checks the ``resource`` like the API: only MachineImage fields (from the discovery
document), a valid ``name``, a ``sourceInstance`` (query parameter or field) that exists, labels,
``storageLocations`` (at most one), ``params``, and customer keys, of which only the ``sha256`` (and
KMS names) are kept and shown, as the API does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow_machine_images.emulator import errors
from airflow_machine_images.emulator.errors import ApiError
from airflow_machine_images.emulator.keys import echo_key
from airflow_machine_images.emulator.references import parse_source_instance
from airflow_machine_images.emulator.routing import RoutePattern
from airflow_machine_images.emulator.schema import machine_image_fields
from airflow_machine_images.emulator.validation import (
    object_body,
    optional_field,
    request_id,
    resource_body,
    validate_labels,
)

if TYPE_CHECKING:
    from airflow_machine_images.emulator.context import ApiContext
    from airflow_machine_images.emulator.instance_store import InstanceStore
    from airflow_machine_images.emulator.machine_image_store import MachineImageStore
    from airflow_machine_images.emulator.resources import Instance, MachineImage, Operation
    from airflow_machine_images.emulator.routing import Call, Handler
    from airflow_machine_images.emulator.state import Origin

__all__ = ["MachineImageHandlers"]


class MachineImageHandlers:
    """The ``machineImages`` methods.

    :param context: the state, links and shared steps.
    :param images: the machine images.
    :param instances: the instances images are made from.
    """

    ROUTES: ClassVar[tuple[RoutePattern, ...]] = (
        RoutePattern("global/machineImages", {"GET": "machineImages.list", "POST": "machineImages.insert"}),
        RoutePattern(
            "global/machineImages/{machineImage}", {"GET": "machineImages.get", "DELETE": "machineImages.delete"}
        ),
        RoutePattern("global/machineImages/{machineImage}/setLabels", {"POST": "machineImages.setLabels"}),
    )

    def __init__(self, context: ApiContext, images: MachineImageStore, instances: InstanceStore) -> None:
        self._context = context
        self._state = context.state
        self._images = images
        self._instances = instances

    def actions(self) -> dict[str, Handler]:
        """:return: the handler of each action of :attr:`ROUTES`."""
        return {
            "machineImages.insert": self.insert,
            "machineImages.get": self.get,
            "machineImages.list": self.list_images,
            "machineImages.delete": self.delete,
            "machineImages.setLabels": self.set_labels,
        }

    def insert(self, call: Call) -> dict[str, Any]:
        """``machineImages.insert``: validate, replay a remembered requestId, else create.

        :param call: the request.
        """
        rid = request_id(call)
        body, name = resource_body(call, machine_image_fields(call.version))
        source = _source_instance(call, body)
        fields = _image_fields(body)

        def create(now: float, origin: Origin) -> Operation:
            instance = self._existing_instance(source)
            if self._images.get(call.project, name) is not None:
                raise errors.already_exists(_image_path(call.project, name))
            scale = self._context.options().source_image_limit_scale if self._context.options else None
            origin = self._images.source_limit.check(instance.path, now, scale, origin)
            _, operation = self._images.create(
                project=call.project,
                name=name,
                source=instance,
                now=now,
                origin=origin,
                version=call.version,
                fields=fields,
            )
            assert operation is not None
            return operation

        return self._context.start_once(call, rid, create)

    def get(self, call: Call) -> dict[str, Any]:
        """``machineImages.get`` (by name or numeric id). :param call: the request."""
        with self._state.session():
            return self._image_or_404(call).render(self._context.links, call.version)

    def list_images(self, call: Call) -> dict[str, Any]:
        """``machineImages.list``: filtered, ordered, paged. :param call: the request."""
        with self._state.session():
            items = [image.render(self._context.links, call.version) for image in self._images.in_project(call.project)]
        return self._context.page(call, items, "compute#machineImageList", "machineImages")

    def delete(self, call: Call) -> dict[str, Any]:
        """``machineImages.delete``: replay a remembered requestId, else start deleting an image not in flux.

        :param call: the request.
        """

        def start_deleting(now: float, origin: Origin) -> Operation:
            image = self._image_or_404(call)
            if image.status in ("CREATING", "DELETING"):
                raise ApiError(400, "resourceNotReady", f"The resource '{image.path}' is not ready")
            return self._images.delete(image, now=now, origin=origin)

        return self._context.start_once(call, request_id(call), start_deleting)

    def set_labels(self, call: Call) -> dict[str, Any]:
        """``machineImages.setLabels``: no ``requestId`` (not a parameter of the method in either discovery
        document, so the API refused it); the ``labelFingerprint`` makes a repeat harmless.

        :param call: the request.
        """
        body = object_body(call, "body")
        unknown = set(body) - {"labels", "labelFingerprint"}
        if unknown:
            raise errors.invalid(
                f"Invalid JSON payload received. Unknown name \"{sorted(unknown)[0]}\" at 'body': Cannot find field."
            )
        labels = validate_labels(body.get("labels"), "labels")

        def relabel(now: float, origin: Origin) -> Operation:
            image = self._image_or_404(call)
            current = image.render(self._context.links, call.version)["labelFingerprint"]
            if body.get("labelFingerprint") != current:
                raise ApiError(
                    412, "conditionNotMet", "Labels fingerprint either invalid or resource labels have changed"
                )
            return self._images.set_labels(image, labels, now=now, origin=origin)

        return self._context.start_once(call, None, relabel)

    def _image_or_404(self, call: Call) -> MachineImage:
        """:return: the image the path names (lock held). :raises ApiError: 404."""
        name = call.route.args["machineImage"]
        image = self._images.get(call.project, name)
        if image is None:
            raise errors.not_found(_image_path(call.project, name))
        return image

    def _existing_instance(self, source: tuple[str, str, str]) -> Instance:
        """:param source: project, zone, name. :return: the instance (lock held). :raises ApiError: 404."""
        instance = self._instances.get(*source)
        if instance is None:
            raise errors.not_found(f"projects/{source[0]}/zones/{source[1]}/instances/{source[2]}")
        return instance


def _image_path(project: str, name: str) -> str:
    return f"projects/{project}/global/machineImages/{name}"


def _source_instance(call: Call, body: dict[str, Any]) -> tuple[str, str, str]:
    """``sourceInstance``, from the query or the resource. :return: project, zone, name."""
    source_text = call.query.get("sourceInstance") or body.get("sourceInstance")
    if not source_text:
        raise errors.required("sourceInstance")
    if not isinstance(source_text, str):
        raise errors.invalid_field("resource.sourceInstance", source_text, "Must be a URL.")
    return parse_source_instance(source_text, call.project)


def _image_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The MachineImage attributes the emulator keeps, checked like the API checks them (in this order).

    :param body: the ``resource``.
    :return: labels, and description, guest_flush, storage_locations, encryption_key, source_disk_keys when given.
    """
    fields: dict[str, Any] = {"labels": validate_labels(body.get("labels"), "resource.labels")}
    description = optional_field(body, "description", str, "Must be a string.")
    if description is not None:
        fields["description"] = description
    guest_flush = optional_field(body, "guestFlush", bool, "Must be a boolean.")
    if guest_flush is not None:
        fields["guest_flush"] = guest_flush
    locations = body.get("storageLocations")
    if locations is not None:
        fields["storage_locations"] = _storage_locations(locations)
    _check_params(body.get("params"))
    if body.get("machineImageEncryptionKey") is not None:
        fields["encryption_key"] = echo_key(body["machineImageEncryptionKey"], "resource.machineImageEncryptionKey")
    if body.get("sourceDiskEncryptionKeys") is not None:
        fields["source_disk_keys"] = _disk_keys(body["sourceDiskEncryptionKeys"])
    return fields


def _storage_locations(locations: Any) -> list[str]:
    """:param locations: ``storageLocations`` as sent. :return: it, when a list of at most one location."""
    if not isinstance(locations, list) or len(locations) > 1 or not all(isinstance(x, str) and x for x in locations):
        raise errors.invalid_field("resource.storageLocations", locations, "Must be a list of at most one location.")
    return locations


def _check_params(params: Any) -> None:
    """Check ``resource.params`` (MachineImageParams) like the API: known fields of the right types.

    :param params: the value sent, or None.
    """
    if params is None:
        return
    where = "resource.params"
    if not isinstance(params, dict):
        raise errors.invalid_field(where, "", "Must be a MachineImageParams object.")
    for name, value in params.items():
        if name in ("includedDisks", "excludedDisks"):
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise errors.invalid_field(f"{where}.{name}", "", "Must be a list of strings.")
        elif name == "resourceManagerTags":
            if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
                raise errors.invalid_field(f"{where}.{name}", "", "Must be a map of strings.")
        else:
            raise errors.invalid(f"Invalid JSON payload received. Unknown name \"{name}\" at '{where}'.")


def _disk_keys(disk_keys: Any) -> list[dict[str, Any]]:
    """``sourceDiskEncryptionKeys`` as the API echoes them (each disk with its key's sha256).

    :param disk_keys: the list sent.
    """
    if not isinstance(disk_keys, list):
        raise errors.invalid_field("resource.sourceDiskEncryptionKeys", "", "Must be a list.")
    echoed = []
    for index, entry in enumerate(disk_keys):
        where = f"resource.sourceDiskEncryptionKeys[{index}]"
        if not isinstance(entry, dict) or not entry.get("sourceDisk"):
            raise errors.required(f"{where}.sourceDisk")
        if not isinstance(entry["sourceDisk"], str):
            raise errors.invalid_field(f"{where}.sourceDisk", "", "Must be a URL.")
        item: dict[str, Any] = {"sourceDisk": entry["sourceDisk"]}
        if entry.get("diskEncryptionKey") is not None:
            item["diskEncryptionKey"] = echo_key(entry["diskEncryptionKey"], f"{where}.diskEncryptionKey")
        echoed.append(item)
    return echoed
