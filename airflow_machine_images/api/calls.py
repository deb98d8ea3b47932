"""One transport-neutral description of the Compute Engine API's requests.

Both hooks (``requests`` on workers, ``aiohttp`` in the triggerer) build their requests with
:class:`ComputeApi`: URL building, path-segment encoding, list queries and the permission hints
exist once. Answers are read by :mod:`airflow_machine_images.api.responses`, paged lists walked by
:mod:`airflow_machine_images.api.paging`. Nothing here does I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, urlsplit

from airflow_machine_images.exceptions import MachineImageValidationError

if TYPE_CHECKING:
    from collections.abc import Mapping

#: Google's API root.
DEFAULT_ENDPOINT = "https://compute.googleapis.com"
#: The API versions the hooks can call.
API_VERSIONS = ("beta", "v1")

#: The IAM permissions each call needs, named in a permission-denied error.
_PERMISSIONS = {
    "machineImages.insert": ("compute.machineImages.create", "compute.instances.useReadOnly"),
    "machineImages.get": ("compute.machineImages.get",),
    "machineImages.list": ("compute.machineImages.list",),
    "machineImages.delete": ("compute.machineImages.delete",),
    "machineImages.setLabels": ("compute.machineImages.setLabels",),
    "globalOperations.get": ("compute.globalOperations.get",),
    "globalOperations.wait": ("compute.globalOperations.get",),
    "globalOperations.list": ("compute.globalOperations.list",),
    # instances.insert from a machine image: create on the instance's project, useReadOnly on the image
    # (Compute Engine docs, "Create VMs from machine images", required roles).
    "instances.insert": ("compute.instances.create", "compute.machineImages.useReadOnly"),
    "instances.get": ("compute.instances.get",),
    "instances.delete": ("compute.instances.delete",),
    "instances.setDeletionProtection": ("compute.instances.setDeletionProtection",),
    "instances.getSerialPortOutput": ("compute.instances.getSerialPortOutput",),
    "disks.get": ("compute.disks.get",),
    "disks.delete": ("compute.disks.delete",),
    "zoneOperations.get": ("compute.zoneOperations.get",),
    "zoneOperations.wait": ("compute.zoneOperations.get",),
    "zoneOperations.list": ("compute.zoneOperations.list",),
    "instances.aggregatedList": ("compute.instances.list",),
}

#: The ``/compute/{version}`` suffix of googleapiclient's endpoint form.
_VERSION_SUFFIX_PATTERN: Final = r"/compute/(?:beta|v1|alpha)/?$"


@dataclass(frozen=True)
class ApiCall:
    """One HTTP request, ready for any transport.

    :param action: the API method (``machineImages.insert``); used in logs, errors and retries.
    :param method: the HTTP method.
    :param url: the full URL without query string (path segments already encoded).
    :param params: the query parameters.
    :param body: the JSON body, if any (kept out of ``repr``: it may hold key material).
    :param long_poll: the server may hold the request open for up to ~2 minutes (``wait``).
    """

    action: str
    method: str
    url: str
    params: Mapping[str, str] = field(default_factory=dict)
    body: Mapping[str, Any] | None = field(default=None, repr=False)  # may hold key material
    long_poll: bool = False

    @property
    def permissions(self) -> tuple[str, ...]:
        """The IAM permissions this call needs."""
        return _PERMISSIONS.get(self.action, ())

    def describe(self) -> str:
        """Name the call for logs: the action and the resource path (no body, no credentials)."""
        return f"{self.action} {urlsplit(self.url).path}"


def normalize_endpoint(endpoint: str | None) -> str:
    """Return the API root without a trailing slash or ``/compute/{version}`` suffix.

    Accepts both our form (``http://127.0.0.1:8085``) and googleapiclient's
    (``http://127.0.0.1:8085/compute/beta/``).

    :param endpoint: the configured endpoint, or None for Google's.
    """
    if not endpoint:
        return DEFAULT_ENDPOINT
    return re.sub(_VERSION_SUFFIX_PATTERN, "", endpoint.rstrip("/")).rstrip("/")


#: Path segments HTTP clients drop or collapse (``requests`` and ``yarl`` both resolve ``..``, even
#: percent-encoded), so they would send the request to another resource.
_UNSAFE_SEGMENTS = frozenset({"", ".", ".."})


def _segment(value: str) -> str:
    """``value`` as exactly one encoded path segment.

    :param value: a project, name or literal path part.
    :raises MachineImageValidationError: ``value`` is not a string, or is empty, ``.`` or ``..``.
    """
    if not isinstance(value, str) or value in _UNSAFE_SEGMENTS:
        raise MachineImageValidationError(
            "URL path segment", "must be a string other than '', '.' and '..'", repr(value)[:80]
        )
    return quote(value, safe="")


@dataclass(frozen=True)
class ComputeApi:
    """Builds :class:`ApiCall` objects for one endpoint and API version.

    :param endpoint: the API root, e.g. ``https://compute.googleapis.com`` or the emulator's URL.
    :param version: ``beta`` or ``v1``.
    """

    endpoint: str = DEFAULT_ENDPOINT
    version: str = "beta"

    def _project_url(self, project: str, *segments: str) -> str:
        """The URL of ``projects/{project}/{segments...}``, every segment encoded as exactly one.

        :param project: the project id or number.
        :param segments: the path below the project.
        """
        path = "/".join(_segment(s) for s in ("projects", project, *segments))
        return f"{self.endpoint}/compute/{self.version}/{path}"

    def insert_machine_image(
        self, project: str, body: Mapping[str, Any], *, source_instance: str, request_id: str
    ) -> ApiCall:
        """``machineImages.insert``; the source instance travels as the query parameter, as Google's clients send it.

        :param project: the image's project.
        :param body: the MachineImage resource.
        :param source_instance: the source instance as a partial or full URL.
        :param request_id: the UUID the server deduplicates repeats by.
        """
        return ApiCall(
            "machineImages.insert",
            "POST",
            self._project_url(project, "global", "machineImages"),
            params={"requestId": request_id, "sourceInstance": source_instance},
            body=body,
        )

    def get_machine_image(self, project: str, name: str) -> ApiCall:
        """``machineImages.get``.

        :param project: the image's project.
        :param name: the image name.
        """
        return ApiCall("machineImages.get", "GET", self._project_url(project, "global", "machineImages", name))

    def list_machine_images(
        self,
        project: str,
        *,
        filter_: str | None = None,
        max_results: int = 500,
        page_token: str | None = None,
        order_by: str | None = None,
    ) -> ApiCall:
        """``machineImages.list``, one page.

        :param project: the project.
        :param filter_: a Compute list filter.
        :param max_results: items per page (at most 500).
        :param page_token: the page to read (None for the first).
        :param order_by: e.g. ``creationTimestamp desc`` (not together with ``filter_``).
        """
        params = _list_params(filter_, max_results, page_token, order_by)
        return ApiCall(
            "machineImages.list", "GET", self._project_url(project, "global", "machineImages"), params=params
        )

    def delete_machine_image(self, project: str, name: str, *, request_id: str) -> ApiCall:
        """``machineImages.delete`` (``name`` may be the numeric id: the ``machineImage`` path pattern of both
        discovery documents is ``[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?|[1-9][0-9]{0,19}``).

        :param project: the image's project.
        :param name: the image name or numeric id.
        :param request_id: the UUID the server deduplicates repeats by.
        """
        return ApiCall(
            "machineImages.delete",
            "DELETE",
            self._project_url(project, "global", "machineImages", name),
            params={"requestId": request_id},
        )

    def set_labels(self, project: str, name: str, *, labels: Mapping[str, str], label_fingerprint: str) -> ApiCall:
        """``machineImages.setLabels``.

        It takes no ``requestId``: its only parameters are ``project`` and ``resource`` in both
        ``googleapiclient/discovery_cache/documents/compute.beta.json`` and ``compute.v1.json``
        (``resources.machineImages.methods.setLabels.parameters``); the label fingerprint is what
        makes a repeat harmless (a stale one is refused with HTTP 412).

        :param project: the image's project.
        :param name: the image name.
        :param labels: the complete new label set.
        :param label_fingerprint: the fingerprint the labels must still have.
        """
        return ApiCall(
            "machineImages.setLabels",
            "POST",
            self._project_url(project, "global", "machineImages", name, "setLabels"),
            body={"labels": dict(labels), "labelFingerprint": label_fingerprint},
        )

    def _operations(self, project: str, zone: str | None, *segments: str) -> tuple[str, str]:
        """The collection prefix (``globalOperations``/``zoneOperations``) and the URL of an operations path.

        Global operations live at ``projects/P/global/operations``, zonal ones at
        ``projects/P/zones/Z/operations`` (discovery documents, ``globalOperations`` and ``zoneOperations``);
        the methods and their answers are otherwise the same.

        :param project: the project.
        :param zone: the zone of zonal operations (None: global ones).
        :param segments: the path below ``operations`` (an operation's name, ``wait``).
        """
        if zone is None:
            return "globalOperations", self._project_url(project, "global", "operations", *segments)
        return "zoneOperations", self._project_url(project, "zones", zone, "operations", *segments)

    def get_operation(self, project: str, operation: str, *, zone: str | None = None) -> ApiCall:
        """``globalOperations.get``, or ``zoneOperations.get`` with a ``zone``.

        :param project: the project.
        :param operation: the operation's name.
        :param zone: the zone of a zonal operation (None: a global operation).
        """
        collection, url = self._operations(project, zone, operation)
        return ApiCall(f"{collection}.get", "GET", url)

    def wait_operation(self, project: str, operation: str, *, zone: str | None = None) -> ApiCall:
        """``globalOperations.wait`` (or ``zoneOperations.wait``): held until DONE or about two minutes.

        :param project: the project.
        :param operation: the operation's name.
        :param zone: the zone of a zonal operation (None: a global operation).
        """
        collection, url = self._operations(project, zone, operation, "wait")
        return ApiCall(f"{collection}.wait", "POST", url, long_poll=True)

    def list_operations(
        self,
        project: str,
        *,
        filter_: str | None = None,
        max_results: int = 500,
        page_token: str | None = None,
        zone: str | None = None,
    ) -> ApiCall:
        """``globalOperations.list`` (or ``zoneOperations.list``), one page.

        :param project: the project.
        :param filter_: a Compute list filter.
        :param max_results: items per page (at most 500).
        :param page_token: the page to read (None for the first).
        :param zone: the zone of zonal operations (None: global operations).
        """
        params = _list_params(filter_, max_results, page_token, None)
        collection, url = self._operations(project, zone)
        return ApiCall(f"{collection}.list", "GET", url, params=params)

    def insert_instance(
        self, project: str, zone: str, body: Mapping[str, Any], *, request_id: str, source_machine_image: str
    ) -> ApiCall:
        """``instances.insert`` from a machine image.

        Both discovery documents (beta and v1) have ``sourceMachineImage`` as a query parameter of
        ``instances.insert`` and as a field of the Instance resource; Google's REST example ("Create
        VMs from machine images") sends the body field. We send both, with the same value.

        :param project: the new instance's project.
        :param zone: the new instance's zone.
        :param body: the Instance resource.
        :param request_id: the UUID the server deduplicates repeats by.
        :param source_machine_image: the image as a partial or full URL.
        """
        return ApiCall(
            "instances.insert",
            "POST",
            self._project_url(project, "zones", zone, "instances"),
            params={"requestId": request_id, "sourceMachineImage": source_machine_image},
            body=body,
        )

    def get_instance(self, project: str, zone: str, instance: str) -> ApiCall:
        """``instances.get``.

        ``instance`` may be a name or a numeric id (the discovery document's ``instance`` parameter
        pattern is ``[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?|[1-9][0-9]{0,19}``), and ``project`` a project id
        or number (its ``project`` pattern allows ``[0-9]{1,19}``).

        :param project: the instance's project, id or number.
        :param zone: the instance's zone.
        :param instance: its name or numeric id.
        """
        return ApiCall("instances.get", "GET", self._project_url(project, "zones", zone, "instances", instance))

    def delete_instance(self, project: str, zone: str, instance: str, *, request_id: str) -> ApiCall:
        """``instances.delete`` (``instance`` is a name or a numeric id: the discovery pattern allows both).

        :param project: the instance's project.
        :param zone: the instance's zone.
        :param instance: its name or numeric id.
        :param request_id: the UUID the server deduplicates repeats by.
        """
        return ApiCall(
            "instances.delete",
            "DELETE",
            self._project_url(project, "zones", zone, "instances", instance),
            params={"requestId": request_id},
        )

    def set_deletion_protection(
        self, project: str, zone: str, instance: str, *, protect: bool, request_id: str
    ) -> ApiCall:
        """``instances.setDeletionProtection``: its ``deletionProtection`` query parameter defaults to true in
        both discovery documents, so it is always sent; it takes a ``requestId`` and answers a zonal Operation.

        :param project: the instance's project.
        :param zone: the instance's zone.
        :param instance: its name or numeric id (the ``resource`` pattern allows both).
        :param protect: the new ``deletionProtection``.
        :param request_id: the UUID the server deduplicates repeats by.
        """
        return ApiCall(
            "instances.setDeletionProtection",
            "POST",
            self._project_url(project, "zones", zone, "instances", instance, "setDeletionProtection"),
            params={"deletionProtection": "true" if protect else "false", "requestId": request_id},
        )

    def get_serial_port_output(self, project: str, zone: str, instance: str, *, port: int, start: int) -> ApiCall:
        """``instances.getSerialPortOutput``: the console from byte ``start`` on (the discovery documents' ``port``
        is 1 to 4, default 1; ``start`` is an int64 byte position, sent as the previous answer's ``next``).

        :param project: the instance's project.
        :param zone: the instance's zone.
        :param instance: its name or numeric id (the path pattern allows both).
        :param port: the serial port, 1 to 4.
        :param start: the first byte wanted.
        """
        return ApiCall(
            "instances.getSerialPortOutput",
            "GET",
            self._project_url(project, "zones", zone, "instances", instance, "serialPort"),
            params={"port": str(port), "start": str(start)},
        )

    def get_disk(self, project: str, zone: str, disk: str) -> ApiCall:
        """``disks.get`` (``disk`` is a name or a numeric id: the discovery pattern allows both).

        :param project: the disk's project.
        :param zone: the disk's zone.
        :param disk: its name or numeric id.
        """
        return ApiCall("disks.get", "GET", self._project_url(project, "zones", zone, "disks", disk))

    def delete_disk(self, project: str, zone: str, disk: str, *, request_id: str) -> ApiCall:
        """``disks.delete`` (``disk`` is a name or a numeric id); answers a zonal Operation.

        :param project: the disk's project.
        :param zone: the disk's zone.
        :param disk: its name or numeric id.
        :param request_id: the UUID the server deduplicates repeats by.
        """
        return ApiCall(
            "disks.delete",
            "DELETE",
            self._project_url(project, "zones", zone, "disks", disk),
            params={"requestId": request_id},
        )

    def aggregated_list_instances(
        self,
        project: str,
        *,
        filter_: str | None = None,
        max_results: int = 500,
        page_token: str | None = None,
    ) -> ApiCall:
        """``instances.aggregatedList``, one page.

        ``items`` maps ``zones/Z`` to ``{"instances": [...]}`` or to ``{"warning": ...}``.
        ``returnPartialSuccess`` is not sent (v1 lacks it; a partial answer must not pass for a whole one).

        :param project: the project.
        :param filter_: a Compute list filter.
        :param max_results: items per page (at most 500).
        :param page_token: the page to read (None for the first).
        """
        params = _list_params(filter_, max_results, page_token, None)
        return ApiCall(
            "instances.aggregatedList", "GET", self._project_url(project, "aggregated", "instances"), params=params
        )


#: What the real API answers a list request with both (doitintl/kubeip issue 132; the discovery
#: document's ``orderBy`` text: "only sorting by ``name`` or ``creationTimestamp desc`` is supported").
FILTER_WITH_ORDER_BY = "Specifying both a list filter and sort order is not currently supported"


def _list_params(filter_: str | None, max_results: int, page_token: str | None, order_by: str | None) -> dict[str, str]:
    """The query of one list page.

    :param filter_: a Compute list filter, or None.
    :param max_results: items per page.
    :param page_token: the page to read, or None for the first.
    :param order_by: the sort order, or None.
    :raises MachineImageValidationError: both ``filter_`` and ``order_by`` are given: Compute Engine
        answers such a request with HTTP 400, so it is refused here, before any request.
    """
    if filter_ and order_by:
        raise MachineImageValidationError(
            "filter_/order_by",
            f"give a filter or an order_by, not both: Compute Engine refuses a list request with both "
            f"(HTTP 400 '{FILTER_WITH_ORDER_BY}'); filter on the server and sort the results yourself",
            f"filter_={filter_[:60]!r}, order_by={order_by[:40]!r}",
        )
    params = {"maxResults": str(max_results)}
    if filter_:
        params["filter"] = filter_
    if page_token:
        params["pageToken"] = page_token
    if order_by:
        params["orderBy"] = order_by
    return params
