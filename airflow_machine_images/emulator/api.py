"""The Compute Engine REST surface: routing, request validation, and each method's semantics."""

from __future__ import annotations

import base64
import binascii
import hashlib
import random
import re
import threading
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from airflow_machine_images.emulator import errors, instances_api
from airflow_machine_images.emulator.aggregated_instances import aggregated_instances
from airflow_machine_images.emulator.errors import ApiError
from airflow_machine_images.emulator.filters import sort_resources
from airflow_machine_images.emulator.paging import ListQuery
from airflow_machine_images.emulator.resources import OperationFailure
from airflow_machine_images.emulator.schema import (
    LABEL_KEY_RE,
    LABEL_VALUE_RE,
    NAME_PATTERN,
    NAME_RE,
    PROJECT_RE,
    machine_image_fields,
    query_params,
    valid_request_id,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_machine_images.emulator.faults import Fault
    from airflow_machine_images.emulator.resources import Links, Operation
    from airflow_machine_images.emulator.state import ComputeState

__all__ = ["ComputeApi", "Route", "parse_source_instance"]

VERSIONS = frozenset({"beta", "v1"})
_RESOURCE_ID = re.compile(rf"{NAME_PATTERN}|[1-9][0-9]{{0,19}}")
_SOURCE = re.compile(
    r"(?:https?://[^/]+/compute/(?:v1|beta|alpha)/(?=projects/))?"
    r"(?:projects/(?P<project>[^/]+)/)?zones/(?P<zone>[^/]+)/instances/(?P<instance>[^/]+)"
)
_MAX_LABELS = 64


@dataclass(frozen=True)
class Route:
    """What a request path and method address.

    :param action: e.g. ``machineImages.insert``; ``unknown`` when nothing matches.
    :param version: ``beta`` or ``v1``.
    :param project: the project of the path.
    :param args: the other path parameters (``machineImage``, ``operation``, ``zone``, ``instance``).
    :param error: the 404/405 to answer when nothing matches.
    """

    action: str
    version: str = "v1"
    project: str = ""
    args: dict[str, str] = field(default_factory=dict)
    error: ApiError | None = None


def _path_segments(path: str) -> list[str]:
    return [unquote(segment) for segment in path.split("/")]


def route(method: str, path: str) -> Route:
    """Map a method and path to an action.

    :param method: the HTTP method.
    :param path: the URL path (percent-encoded, without query).
    :return: the route (``unknown`` with a 404 or 405 error when nothing matches).
    """
    parts = _path_segments(path)
    not_found = Route("unknown", error=ApiError(404, "notFound", f"The requested URL {path} was not found."))
    if len(parts) < 6 or parts[:2] != ["", "compute"] or parts[2] not in VERSIONS or parts[3] != "projects":
        return not_found
    version, project, rest = parts[2], parts[4], parts[5:]
    table: list[tuple[list[str], dict[str, str]]] = [
        (["global", "machineImages"], {"GET": "machineImages.list", "POST": "machineImages.insert"}),
        (["global", "machineImages", "*"], {"GET": "machineImages.get", "DELETE": "machineImages.delete"}),
        (["global", "machineImages", "*", "setLabels"], {"POST": "machineImages.setLabels"}),
        (["global", "operations"], {"GET": "globalOperations.list"}),
        (["global", "operations", "*"], {"GET": "globalOperations.get"}),
        (["global", "operations", "*", "wait"], {"POST": "globalOperations.wait"}),
        (["zones", "*", "instances"], {"POST": "instances.insert"}),
        (["zones", "*", "instances", "*"], {"GET": "instances.get", "DELETE": "instances.delete"}),
        (["zones", "*", "operations"], {"GET": "zoneOperations.list"}),
        (["zones", "*", "operations", "*"], {"GET": "zoneOperations.get"}),
        (["zones", "*", "operations", "*", "wait"], {"POST": "zoneOperations.wait"}),
        (["aggregated", "instances"], {"GET": "instances.aggregatedList"}),
    ]
    names = {
        "machineImages": "machineImage",
        "operations": "operation",
        "zones": "zone",
        "instances": "instance",
    }
    for pattern, methods in table:
        if len(pattern) != len(rest) or any(p != "*" and p != r for p, r in zip(pattern, rest, strict=True)):
            continue
        if any(p == "*" and not r for p, r in zip(pattern, rest, strict=True)):
            continue
        args = {names[pattern[i - 1]]: rest[i] for i, p in enumerate(pattern) if p == "*"}
        action = methods.get(method)
        if action is None:
            allowed = ", ".join(sorted(methods))
            return Route(
                "unknown",
                error=ApiError(405, "methodNotAllowed", f"Method {method} is not allowed here (allowed: {allowed})."),
            )
        return Route(action, version, project, args)
    return not_found


def parse_source_instance(text: str, project: str) -> tuple[str, str, str]:
    """Read ``sourceInstance``: a full URL, ``projects/P/zones/Z/instances/I`` or ``zones/Z/instances/I``.

    :param text: the value sent.
    :param project: the request's project (for the short form).
    :return: project, zone, instance.
    :raises ApiError: 400 when it is not such a URL.
    """
    match = _SOURCE.fullmatch(text.strip())
    if match is None:
        raise errors.invalid_field(
            "sourceInstance", text, "The URL is malformed. Expected 'projects/P/zones/Z/instances/I' or a full URL."
        )
    return match.group("project") or project, match.group("zone"), match.group("instance")


def _validate_labels(value: Any, where: str) -> dict[str, str]:
    """Check labels like the API does. :param value: the labels sent. :param where: the field name for errors.
    :return: the labels."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise errors.invalid_field(where, value, "Labels must be a map of strings.")
    if len(value) > _MAX_LABELS:
        raise errors.invalid_field(where, "", f"At most {_MAX_LABELS} labels are allowed.")
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


def _echo_key(value: Any, where: str) -> dict[str, str]:
    """What the API shows of a customer key: its sha256 and KMS name, never the key material."""
    if not isinstance(value, dict):
        raise errors.invalid_field(where, "", "Expected a CustomerEncryptionKey object.")
    unknown = set(value) - {"rawKey", "rsaEncryptedKey", "kmsKeyName", "sha256", "kmsKeyServiceAccount"}
    if unknown:
        raise errors.invalid(f"Invalid JSON payload received. Unknown name \"{sorted(unknown)[0]}\" at '{where}'.")
    for name, item in value.items():
        if not isinstance(item, str):
            raise errors.invalid_field(f"{where}.{name}", "", "Must be a string.")
    out: dict[str, str] = {}
    for material in ("rawKey", "rsaEncryptedKey"):
        if material in value:
            try:
                decoded = base64.b64decode(str(value[material]), validate=True)
            except (binascii.Error, ValueError):
                raise errors.invalid_field(f"{where}.{material}", "", "The key must be base64 encoded.") from None
            if material == "rawKey" and len(decoded) != 32:
                raise errors.invalid_field(f"{where}.{material}", "", "The key must be a 256-bit AES key.")
            out["sha256"] = base64.b64encode(hashlib.sha256(decoded).digest()).decode()
    for name in ("kmsKeyName", "kmsKeyServiceAccount"):
        if name in value:
            out[name] = str(value[name])
    if not out:
        raise errors.invalid_field(where, "", "A key needs rawKey, rsaEncryptedKey or kmsKeyName.")
    return out


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


@dataclass
class Call:
    """One API request after routing.

    :param route: the route.
    :param query: query parameters.
    :param body: the parsed JSON body, or None when there was none.
    :param fault: the fault injected into it, if any.
    """

    route: Route
    query: dict[str, str]
    body: Any = field(repr=False)  # may hold customer-supplied keys
    fault: Fault | None = None

    @property
    def project(self) -> str:
        """:return: the path's project."""
        return self.route.project

    @property
    def version(self) -> str:
        """:return: the path's API version."""
        return self.route.version


class ComputeApi:
    """Answers routed requests from the state (instance inserts and deletes: :mod:`.instances_api`).

    :param state: the state.
    :param links: selfLink builder.
    :param wait_deadline_seconds: how long ``globalOperations.wait`` long-polls at most.
    :param early_wait_probability: chance a wait answers at once.
    :param seed: seed for early-wait draws.
    :param give_back: returns a scripted fault that had no effect (an ``operation_error`` on a replay).
    """

    def __init__(
        self,
        state: ComputeState,
        links: Links,
        *,
        wait_deadline_seconds: float,
        early_wait_probability: float,
        seed: int | None,
        give_back: Callable[[Fault], None] | None = None,
    ) -> None:
        self.state = state
        self.give_back = give_back
        self.links = links
        self.wait_deadline_seconds = wait_deadline_seconds
        self.early_wait_probability = early_wait_probability
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        #: Zones whose ``instances.aggregatedList`` scope answers UNREACHABLE (set by the control API).
        self.unreachable_zones: frozenset[str] = frozenset()

    # -- entry point -------------------------------------------------------------------------------

    def call(self, call: Call) -> dict[str, Any]:
        """Do what the request asks.

        :param call: the routed request.
        :return: the JSON answer (HTTP 200).
        :raises ApiError: for every error answer.
        """
        route_ = call.route
        if route_.error is not None:
            raise route_.error
        allowed = query_params(route_.version, route_.action)
        for name in call.query:
            if name not in allowed and not name.startswith("$"):
                raise errors.invalid(
                    f'Invalid JSON payload received. Unknown name "{name}": Cannot bind query parameter. '
                    f"Field '{name}' could not be found in request message."
                )
        if not PROJECT_RE.fullmatch(route_.project):
            raise self._bad_parameter(route_.project, PROJECT_RE.pattern)
        for key, value in route_.args.items():
            pattern = NAME_RE if key == "zone" else _RESOURCE_ID
            if not pattern.fullmatch(value):
                raise self._bad_parameter(value, pattern.pattern)
        # A project number goes wherever a project id does (the discovery documents' ``project`` pattern
        # allows ``[0-9]{1,19}``); answers name the project by id, as Compute Engine's do (a Terraform
        # maintainer: APIs "accept either and return the id", terraform-provider-google issue 11454).
        with self.state.session():
            project_id = self.state.project_id(route_.project)
        if project_id is None:
            raise errors.not_found(f"projects/{route_.project}")
        if project_id != route_.project:
            call.route = replace(route_, project=project_id)
        handler = {
            "machineImages.insert": self._insert,
            "machineImages.get": self._get,
            "machineImages.list": self._list_images,
            "machineImages.delete": self._delete,
            "machineImages.setLabels": self._set_labels,
            "globalOperations.get": self._get_operation,
            "globalOperations.wait": self._wait,
            "globalOperations.list": self._list_operations,
            "instances.get": self._get_instance,
            "instances.aggregatedList": self._aggregated_instances,
            "instances.insert": lambda c: instances_api.insert_instance(self, c),
            "instances.delete": lambda c: instances_api.delete_instance(self, c),
            "zoneOperations.get": self._get_operation,
            "zoneOperations.wait": self._wait,
            "zoneOperations.list": self._list_operations,
        }[route_.action]
        return handler(call)

    #: Label checks as the API does them (shared with :mod:`.instances_api`).
    validate_labels = staticmethod(_validate_labels)

    @staticmethod
    def _bad_parameter(value: str, pattern: str) -> ApiError:
        return ApiError(
            400,
            "invalidParameter",
            f"Invalid value '{value}'. Values must match the following regular expression: '{pattern}'",
        )

    # -- helpers -----------------------------------------------------------------------------------

    @staticmethod
    def _request_id(call: Call) -> str | None:
        value = call.query.get("requestId")
        if value is None or value == "":
            return None
        if not valid_request_id(value):
            raise errors.invalid_field("requestId", value, "Must be a valid UUID, and the zero UUID is not supported.")
        return value

    @classmethod
    def resource_body(cls, call: Call, known: dict[str, bool]) -> tuple[dict[str, Any], str]:
        """An insert's ``resource``: only fields of its schema, and a valid ``name`` (machine images, instances).

        :param call: the request.
        :param known: the schema's top-level fields (from the discovery document).
        :return: the body and its name.
        """
        body = cls._object_body(call, "resource")
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

    @staticmethod
    def _object_body(call: Call, where: str) -> dict[str, Any]:
        if call.body is None:
            return {}
        if not isinstance(call.body, dict):
            raise errors.invalid(f"Invalid JSON payload received. Expected an object for '{where}'.")
        return call.body

    def _unused(self, call: Call) -> None:
        """A replayed request makes no operation: an ``operation_error`` fault waits for the next that does."""
        if call.fault is not None and call.fault.kind == "operation_error" and self.give_back is not None:
            self.give_back(call.fault)

    @staticmethod
    def _failure(call: Call) -> OperationFailure | None:
        fault = call.fault
        if fault is None or fault.kind != "operation_error":
            return None
        return OperationFailure(
            fault.error_code, fault.error_message, fault.http_error_status_code, fault.http_error_message
        )

    @staticmethod
    def _user(project: str) -> str:
        return f"emulator-user@{project}.iam.gserviceaccount.com"

    def _render_operation(self, operation: Operation, now: float, version: str) -> dict[str, Any]:
        return operation.render(now, self.state.clock, self.links, version)

    def _image_path(self, project: str, name: str) -> str:
        return f"projects/{project}/global/machineImages/{name}"

    def _page(self, call: Call, items: list[dict[str, Any]], kind: str, collection: str) -> dict[str, Any]:
        """Filter, order and page rendered items into a ``*List`` answer.

        :param call: the request (filter, orderBy, maxResults, pageToken).
        :param items: every rendered resource of the collection.
        :param kind: the list kind.
        :param collection: ``machineImages`` or ``operations`` (global), or ``zones/Z/operations``.
        :return: the list JSON.
        """
        listing = ListQuery.read(call.query)
        selected = sort_resources([item for item in items if listing.predicate(item)], listing.order)
        page = selected[listing.offset : listing.offset + listing.size]
        scope = collection if "/" in collection else f"global/{collection}"  # zones/Z/operations
        path = f"projects/{call.project}/{scope}"
        out: dict[str, Any] = {"kind": kind, "id": path}
        if page:
            out["items"] = page
        token = listing.next_token(len(selected))
        if token is not None:
            out["nextPageToken"] = token
        out["selfLink"] = self.links.url(call.version, path)
        return out

    # -- machine images ----------------------------------------------------------------------------

    def _insert(self, call: Call) -> dict[str, Any]:
        """``machineImages.insert``: validate, replay a remembered requestId, else create.

        :param call: the request.
        """
        request_id = self._request_id(call)
        body, name = self.resource_body(call, machine_image_fields(call.version))
        source_text = call.query.get("sourceInstance") or body.get("sourceInstance")
        if not source_text:
            raise errors.required("sourceInstance")
        if not isinstance(source_text, str):
            raise errors.invalid_field("resource.sourceInstance", source_text, "Must be a URL.")
        source = parse_source_instance(source_text, call.project)
        fields: dict[str, Any] = {"labels": _validate_labels(body.get("labels"), "resource.labels")}
        description = body.get("description")
        if description is not None:
            if not isinstance(description, str):
                raise errors.invalid_field("resource.description", description, "Must be a string.")
            fields["description"] = description
        guest_flush = body.get("guestFlush")
        if guest_flush is not None:
            if not isinstance(guest_flush, bool):
                raise errors.invalid_field("resource.guestFlush", guest_flush, "Must be a boolean.")
            fields["guest_flush"] = guest_flush
        locations = body.get("storageLocations")
        if locations is not None:
            if (
                not isinstance(locations, list)
                or len(locations) > 1
                or not all(isinstance(x, str) and x for x in locations)
            ):
                raise errors.invalid_field(
                    "resource.storageLocations", locations, "Must be a list of at most one location."
                )
            fields["storage_locations"] = locations
        _check_params(body.get("params"))
        if body.get("machineImageEncryptionKey") is not None:
            fields["encryption_key"] = _echo_key(
                body["machineImageEncryptionKey"], "resource.machineImageEncryptionKey"
            )
        disk_keys = body.get("sourceDiskEncryptionKeys")
        if disk_keys is not None:
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
                    item["diskEncryptionKey"] = _echo_key(entry["diskEncryptionKey"], f"{where}.diskEncryptionKey")
                echoed.append(item)
            fields["source_disk_keys"] = echoed
        with self.state.session() as now:
            original = self.state.remembered(call.project, request_id, now)
            if original is not None:
                self._unused(call)
                return self._render_operation(original, now, call.version)
            instance = self.state.instance(*source)
            if instance is None:
                raise errors.not_found(f"projects/{source[0]}/zones/{source[1]}/instances/{source[2]}")
            if self.state.image(call.project, name) is not None:
                raise errors.already_exists(self._image_path(call.project, name))
            _, operation = self.state.create_image(
                project=call.project,
                name=name,
                source=instance,
                now=now,
                request_id=request_id,
                failure=self._failure(call),
                user=self._user(call.project),
                version=call.version,
                fields=fields,
            )
            assert operation is not None
            return self._render_operation(operation, now, call.version)

    def _get(self, call: Call) -> dict[str, Any]:
        name = call.route.args["machineImage"]
        with self.state.session():
            image = self.state.image(call.project, name)
            if image is None:
                raise errors.not_found(self._image_path(call.project, name))
            return image.render(self.links, call.version)

    def _list_images(self, call: Call) -> dict[str, Any]:
        with self.state.session():
            items = [image.render(self.links, call.version) for image in self.state.images(call.project)]
        return self._page(call, items, "compute#machineImageList", "machineImages")

    def _delete(self, call: Call) -> dict[str, Any]:
        request_id = self._request_id(call)
        name = call.route.args["machineImage"]
        with self.state.session() as now:
            original = self.state.remembered(call.project, request_id, now)
            if original is not None:
                self._unused(call)
                return self._render_operation(original, now, call.version)
            image = self.state.image(call.project, name)
            if image is None:
                raise errors.not_found(self._image_path(call.project, name))
            if image.status in ("CREATING", "DELETING"):
                raise ApiError(400, "resourceNotReady", f"The resource '{image.path}' is not ready")
            operation = self.state.delete_image(
                image, now=now, request_id=request_id, failure=self._failure(call), user=self._user(call.project)
            )
            return self._render_operation(operation, now, call.version)

    def _set_labels(self, call: Call) -> dict[str, Any]:
        """``machineImages.setLabels``: no ``requestId`` (not a parameter of the method in either discovery
        document, so :meth:`call` refused it); the ``labelFingerprint`` makes a repeat harmless."""
        body = self._object_body(call, "body")
        unknown = set(body) - {"labels", "labelFingerprint"}
        if unknown:
            raise errors.invalid(
                f"Invalid JSON payload received. Unknown name \"{sorted(unknown)[0]}\" at 'body': Cannot find field."
            )
        labels = _validate_labels(body.get("labels"), "labels")
        name = call.route.args["machineImage"]
        with self.state.session() as now:
            image = self.state.image(call.project, name)
            if image is None:
                raise errors.not_found(self._image_path(call.project, name))
            current = image.render(self.links, call.version)["labelFingerprint"]
            if body.get("labelFingerprint") != current:
                raise ApiError(
                    412,
                    "conditionNotMet",
                    "Labels fingerprint either invalid or resource labels have changed",
                )
            operation = self.state.set_labels(image, labels, now=now, request_id=None, user=self._user(call.project))
            return self._render_operation(operation, now, call.version)

    # -- operations --------------------------------------------------------------------------------

    # Zonal operations (zoneOperations.get/wait/list) behave as global ones, in their zone: the same
    # handlers serve both, the scope taken from the path (discovery documents, zoneOperations).

    def _operation_or_404(self, call: Call) -> Operation:
        name, zone = call.route.args["operation"], call.route.args.get("zone")
        operation = self.state.operation(call.project, name, zone)
        if operation is None:
            scope = "global" if zone is None else f"zones/{zone}"
            raise errors.not_found(f"projects/{call.project}/{scope}/operations/{name}")
        return operation

    def _get_operation(self, call: Call) -> dict[str, Any]:
        with self.state.session() as now:
            return self._render_operation(self._operation_or_404(call), now, call.version)

    def _early(self, call: Call) -> bool:
        if call.fault is not None and call.fault.kind == "early_wait":
            return True
        if self.early_wait_probability <= 0:
            return False
        with self._rng_lock:
            return self._rng.random() < self.early_wait_probability

    def _wait(self, call: Call) -> dict[str, Any]:
        """``globalOperations.wait`` / ``zoneOperations.wait``: long-poll until DONE or the deadline (or early).

        :param call: the request.
        """
        early = self._early(call)
        with self.state.session() as now:
            operation = self._operation_or_404(call)
            if not early:
                self.state.wait(operation, now + self.wait_deadline_seconds)
            now = self.state.clock.now()
            self.state.settle(now)
            return self._render_operation(operation, now, call.version)

    def _list_operations(self, call: Call) -> dict[str, Any]:
        with self.state.session() as now:
            zone = call.route.args.get("zone")
            operations = self.state.operations(call.project, zone)
            items = [self._render_operation(op, now, call.version) for op in operations]
        collection = "operations" if zone is None else f"zones/{zone}/operations"
        return self._page(call, items, "compute#operationList", collection)

    # -- instances ---------------------------------------------------------------------------------

    def _get_instance(self, call: Call) -> dict[str, Any]:
        zone, name = call.route.args["zone"], call.route.args["instance"]
        with self.state.session() as now:
            instance = self.state.instance(call.project, zone, name)
            if instance is None:
                raise errors.not_found(f"projects/{call.project}/zones/{zone}/instances/{name}")
            return instance.render(self.links, call.version, now)

    def _aggregated_instances(self, call: Call) -> dict[str, Any]:
        """``instances.aggregatedList``: every project's zone scopes (see :mod:`.aggregated_instances`)."""
        with self.state.session() as now:
            return aggregated_instances(
                self.state.instances(call.project),
                zones={instance.zone for instance in self.state.all_instances()},
                query=call.query,
                project=call.project,
                version=call.version,
                links=self.links,
                unreachable=self.unreachable_zones,
                now=now,
            )
