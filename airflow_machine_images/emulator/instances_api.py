"""``instances.insert`` from a machine image and ``instances.delete``: zonal operations on instances.

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
  answers a zonal Operation; the instance is STOPPING until it is gone.
- Both deduplicate by ``requestId`` exactly as ``machineImages.insert`` does.

Only the machine-image path of ``instances.insert`` is emulated: an insert without
``sourceMachineImage`` is refused for having no boot disk, as the real API refuses an Instance with
neither disks nor a source.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from airflow_machine_images.emulator import errors
from airflow_machine_images.emulator.errors import ApiError
from airflow_machine_images.emulator.schema import PROJECT_RE, instance_fields

if TYPE_CHECKING:
    from airflow_machine_images.emulator.api import Call, ComputeApi

__all__ = ["delete_instance", "insert_instance", "parse_machine_image"]

_IMAGE = re.compile(
    r"(?:https?://[^/]+/compute/(?:v1|beta|alpha)/(?=projects/))?"
    r"(?:projects/(?P<project>[^/]+)/)?global/machineImages/(?P<name>[^/]+)"
)
_MACHINE_TYPE = re.compile(
    r"(?:https?://[^/]+/compute/(?:v1|beta|alpha)/(?=projects/))?"
    r"(?:projects/(?P<project>[^/]+)/)?zones/(?P<zone>[^/]+)/machineTypes/(?P<type>[a-z0-9][-a-z0-9]{0,62})"
)


def parse_machine_image(text: str, project: str) -> tuple[str, str]:
    """Read ``sourceMachineImage``: a full URL, ``projects/P/global/machineImages/N`` or ``global/machineImages/N``.

    :param text: the value sent.
    :param project: the request's project (for the short form).
    :return: project and image name.
    :raises ApiError: 400 when it is not such a URL.
    """
    match = _IMAGE.fullmatch(text.strip())
    if match is None or not PROJECT_RE.fullmatch(match.group("project") or project):
        raise errors.invalid_field(
            "sourceMachineImage",
            text,
            "The URL is malformed. Expected 'projects/P/global/machineImages/N', 'global/machineImages/N' "
            "or a full URL.",
        )
    return match.group("project") or project, match.group("name")


def _source_image(call: Call, body: dict[str, Any]) -> str:
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


def _machine_type(value: object, zone: str) -> str:
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


def _fields(api: ComputeApi, call: Call, body: dict[str, Any], zone: str) -> dict[str, Any]:
    """The Instance attributes the emulator keeps, checked like the API checks them."""
    fields: dict[str, Any] = {"labels": api.validate_labels(body.get("labels"), "resource.labels")}
    if body.get("machineType") is not None:
        fields["machine_type"] = _machine_type(body["machineType"], zone)
    if body.get("metadata") is not None:
        fields["metadata"] = _metadata(body["metadata"])
    description = body.get("description")
    if description is not None:
        if not isinstance(description, str):
            raise errors.invalid_field("resource.description", description, "Must be a string.")
        fields["description"] = description
    interfaces = body.get("networkInterfaces")
    if interfaces is not None and (
        not isinstance(interfaces, list) or not all(isinstance(i, dict) for i in interfaces)
    ):
        raise errors.invalid_field("resource.networkInterfaces", "", "Must be a list of NetworkInterface objects.")
    return fields


def insert_instance(api: ComputeApi, call: Call) -> dict[str, Any]:
    """``instances.insert`` from a machine image: validate, replay a remembered requestId, else create.

    :param api: the API (state, links, shared helpers).
    :param call: the request.
    """
    request_id = api._request_id(call)
    body, name = api.resource_body(call, instance_fields(call.version))
    zone = call.route.args["zone"]
    image_project, image_name = parse_machine_image(_source_image(call, body), call.project)
    fields = _fields(api, call, body, zone)
    with api.state.session() as now:
        original = api.state.remembered(call.project, request_id, now)
        if original is not None:
            api._unused(call)
            return api._render_operation(original, now, call.version)
        if api.state.instance(call.project, zone, name) is not None:
            raise errors.already_exists(f"projects/{call.project}/zones/{zone}/instances/{name}")
        image = api.state.image(image_project, image_name)
        if image is None:
            raise errors.not_found(f"projects/{image_project}/global/machineImages/{image_name}")
        if image.status != "READY":
            raise ApiError(400, "resourceNotReady", f"The resource '{image.path}' is not ready")
        operation = api.state.restore_instance(
            project=call.project,
            zone=zone,
            name=name,
            image=image,
            now=now,
            request_id=request_id,
            failure=api._failure(call),
            user=api._user(call.project),
            version=call.version,
            fields=fields,
        )
        return api._render_operation(operation, now, call.version)


def delete_instance(api: ComputeApi, call: Call) -> dict[str, Any]:
    """``instances.delete`` (by name or numeric id): replay a remembered requestId, else start deleting.

    :param api: the API (state, links, shared helpers).
    :param call: the request.
    """
    request_id = api._request_id(call)
    zone, name = call.route.args["zone"], call.route.args["instance"]
    with api.state.session() as now:
        original = api.state.remembered(call.project, request_id, now)
        if original is not None:
            api._unused(call)
            return api._render_operation(original, now, call.version)
        instance = api.state.instance(call.project, zone, name)
        if instance is None:
            raise errors.not_found(f"projects/{call.project}/zones/{zone}/instances/{name}")
        if instance.operation is not None and instance.operation.operation_type == "delete":
            raise ApiError(400, "resourceNotReady", f"The resource '{instance.path}' is not ready")
        operation = api.state.delete_instance(
            instance, now=now, request_id=request_id, failure=api._failure(call), user=api._user(call.project)
        )
        return api._render_operation(operation, now, call.version)
