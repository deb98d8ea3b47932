"""The emulated resources (instances, machine images, operations) and how the API renders them."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from airflow_machine_images.emulator.timefmt import rfc3339

if TYPE_CHECKING:
    from datetime import datetime

    from airflow_machine_images.emulator.timefmt import Clock

__all__ = [
    "GIB",
    "AttachedDisk",
    "Disk",
    "Instance",
    "Links",
    "MachineImage",
    "Operation",
    "OperationFailure",
    "SavedDisk",
    "label_fingerprint",
    "storage_location_for",
]

GIB = 1024**3
#: The fingerprint the real API gives an empty label set.
_EMPTY_FINGERPRINT = "42WmSpB8rSM="


def label_fingerprint(labels: dict[str, str]) -> str:
    """An 8-byte, base64 hash of a label set, like the real ``labelFingerprint``.

    :param labels: the labels.
    :return: the fingerprint.
    """
    if not labels:
        return _EMPTY_FINGERPRINT
    digest = hashlib.sha256(json.dumps(sorted(labels.items())).encode()).digest()[:8]
    return base64.b64encode(digest).decode()


def storage_location_for(zone: str) -> str:
    """The multi-region the API stores a machine image in by default, from the source instance's zone.

    :param zone: e.g. ``europe-west1-b``.
    :return: ``us``, ``eu``, ``asia``, or the region itself for others.
    """
    region = zone.rsplit("-", 1)[0]
    prefix = region.split("-", 1)[0]
    return {"us": "us", "europe": "eu", "asia": "asia"}.get(prefix, region)


@dataclass(frozen=True)
class Links:
    """Builds selfLinks. :param base: e.g. ``https://www.googleapis.com`` (no trailing slash)."""

    base: str

    def url(self, version: str, path: str) -> str:
        """:param version: ``beta``/``v1``. :param path: ``projects/...``. :return: the full URL."""
        return f"{self.base}/compute/{version}/{path}"


@dataclass(frozen=True)
class AttachedDisk:
    """A disk attached to an instance (the Instance's ``disks[]``, an AttachedDisk of the discovery documents).

    :param disk_name: the disk's name, in the instance's project and zone.
    :param device_name: its device name.
    :param boot: the boot disk.
    :param auto_delete: deleted with the instance (``autoDelete``); otherwise it survives, detached.
    :param size_gb: its size.
    """

    disk_name: str
    device_name: str
    boot: bool
    auto_delete: bool
    size_gb: int


@dataclass(frozen=True)
class SavedDisk:
    """A disk as a machine image keeps it (``sourceInstanceProperties.disks[]``, a SavedAttachedDisk).

    :param device_name: its device name.
    :param boot: the boot disk.
    :param auto_delete: ``autoDelete``, kept in the image and given to the disks of restored instances.
    :param size_gb: its size.
    :param source_path: ``projects/P/zones/Z/disks/D``: the source instance's disk it was saved from.
    """

    device_name: str
    boot: bool
    auto_delete: bool
    size_gb: int
    source_path: str


@dataclass
class Instance:
    """A VM: a source of machine images, or an instance restored from one.

    :param project: its project.
    :param zone: its zone.
    :param name: its name.
    :param id: numeric id (text).
    :param disk_size_gb: size of its boot disk.
    :param operation_seconds: how long an insert from it takes (None = the emulator's default).
    :param created: creation moment.
    :param labels: its labels (``instances.aggregatedList`` filters can select on them).
    :param status: its status when no operation is moving it, one of the Instance ``status`` enum of the discovery
        documents (e.g. STOPPED, set by the control API).
    :param machine_type: its machine type's name.
    :param metadata: its metadata ``items`` (key/value pairs), if any.
    :param description: as given.
    :param source_machine_image: the machine image it was restored from (partial URL), if any.
    :param disks: its attached disks (None: one boot disk named after it, ``disk_size_gb``, auto-deleted,
        that no disk store keeps: the source of a seeded image that need not exist).
    :param deletion_protection: ``deletionProtection``: ``instances.delete`` refuses it while set.
    :param network_interfaces: its ``networkInterfaces`` as given at insert (None: the default network of
        its project).
    :param service_accounts: its ``serviceAccounts`` as given at insert, if any.
    :param operation: the insert or delete operation it is going through (its status follows the
        operation's clock: see :meth:`status_at`).
    """

    project: str
    zone: str
    name: str
    id: str
    disk_size_gb: int
    operation_seconds: float | None
    created: datetime
    labels: dict[str, str] = field(default_factory=dict)
    status: str = "RUNNING"
    machine_type: str = "e2-medium"
    metadata: list[dict[str, str]] | None = None
    description: str | None = None
    source_machine_image: str | None = None
    disks: list[AttachedDisk] | None = None
    deletion_protection: bool = False
    network_interfaces: list[dict[str, Any]] | None = None
    service_accounts: list[dict[str, Any]] | None = None
    operation: Operation | None = field(default=None, repr=False)

    def status_at(self, now: float | None) -> str:
        """The instance status as of ``now``.

        An instance being inserted goes PROVISIONING (first half of the operation) -> STAGING ->
        RUNNING (when the operation is DONE); one being deleted is STOPPING until it disappears
        (Compute Engine docs, "VM instance life cycle").

        :param now: ``time.monotonic()`` (None: as settled).
        """
        operation = self.operation
        if operation is None or now is None or operation.phase(now)[0] == "DONE":
            return self.status
        if operation.operation_type == "delete":
            return "STOPPING"
        return "PROVISIONING" if now - operation.start < 0.5 * operation.duration else "STAGING"

    @property
    def path(self) -> str:
        """:return: ``projects/P/zones/Z/instances/I``."""
        return f"projects/{self.project}/zones/{self.zone}/instances/{self.name}"

    def disk_path(self, disk_name: str | None = None) -> str:
        """:param disk_name: a disk of its zone (None: its boot disk's default name, its own).
        :return: ``projects/P/zones/Z/disks/D``."""
        return f"projects/{self.project}/zones/{self.zone}/disks/{disk_name or self.name}"

    def attached(self) -> list[AttachedDisk]:
        """:return: its disks, boot disk first (see ``disks``)."""
        if self.disks is not None:
            return list(self.disks)
        return [AttachedDisk(self.name, self.name, boot=True, auto_delete=True, size_gb=self.disk_size_gb)]

    def saved_disks(self) -> tuple[SavedDisk, ...]:
        """:return: its disks as a machine image made of it now keeps them."""
        return tuple(
            SavedDisk(d.device_name, d.boot, d.auto_delete, d.size_gb, self.disk_path(d.disk_name))
            for d in self.attached()
        )

    def _disks(self, links: Links, version: str) -> list[dict[str, Any]]:
        return [
            {
                "kind": "compute#attachedDisk",
                "type": "PERSISTENT",
                "mode": "READ_WRITE",
                "source": links.url(version, self.disk_path(disk.disk_name)),
                "deviceName": disk.device_name,
                "index": index,
                "boot": disk.boot,
                "autoDelete": disk.auto_delete,
                "interface": "SCSI",
                "diskSizeGb": str(disk.size_gb),
            }
            for index, disk in enumerate(self.attached())
        ]

    def _network(self, links: Links, version: str) -> list[dict[str, Any]]:
        if self.network_interfaces is not None:
            return [dict(interface) for interface in self.network_interfaces]
        return default_network(links, version, self.project)

    def render(self, links: Links, version: str, now: float | None = None) -> dict[str, Any]:
        """:param links: link builder. :param version: API version. :param now: ``time.monotonic()`` for the
        status (None: as settled). :return: the Instance JSON (a subset)."""
        zone = f"projects/{self.project}/zones/{self.zone}"
        out: dict[str, Any] = {
            "kind": "compute#instance",
            "id": self.id,
            "creationTimestamp": rfc3339(self.created),
            "name": self.name,
        }
        if self.description is not None:
            out["description"] = self.description
        out.update(
            {
                "machineType": links.url(version, f"{zone}/machineTypes/{self.machine_type}"),
                "status": self.status_at(now),
                "zone": links.url(version, zone),
                "networkInterfaces": self._network(links, version),
                "disks": self._disks(links, version),
                "scheduling": {"onHostMaintenance": "MIGRATE", "automaticRestart": True, "preemptible": False},
                "selfLink": links.url(version, self.path),
                "labelFingerprint": label_fingerprint(self.labels),
                "deletionProtection": self.deletion_protection,
            }
        )
        if self.service_accounts is not None:
            out["serviceAccounts"] = [dict(account) for account in self.service_accounts]
        if self.labels:
            out["labels"] = dict(self.labels)
        if self.metadata is not None:
            out["metadata"] = {"kind": "compute#metadata", "items": [dict(item) for item in self.metadata]}
        if self.source_machine_image is not None:
            out["sourceMachineImage"] = links.url(version, self.source_machine_image)
        return out


def default_network(links: Links, version: str, project: str) -> list[dict[str, Any]]:
    """:param links: link builder. :param version: API version. :param project: the project.
    :return: ``networkInterfaces`` on the project's ``default`` network."""
    return [
        {
            "kind": "compute#networkInterface",
            "network": links.url(version, f"projects/{project}/global/networks/default"),
            "networkIP": "10.128.0.2",
            "name": "nic0",
            "stackType": "IPV4_ONLY",
        }
    ]


@dataclass
class Disk:
    """A zonal persistent disk (the Disk resource of the discovery documents, a subset).

    :param project: its project.
    :param zone: its zone.
    :param name: its name.
    :param id: numeric id (text).
    :param size_gb: its size.
    :param created: creation moment.
    :param users: the instances it is attached to (``projects/P/zones/Z/instances/I``).
    :param source_machine_image: the machine image it was restored from (partial URL), if any.
    :param source_machine_image_id: that image's id.
    :param labels: its labels.
    :param operation: the delete operation it is going through (DELETING until it is DONE).
    """

    project: str
    zone: str
    name: str
    id: str
    size_gb: int
    created: datetime
    users: list[str] = field(default_factory=list)
    source_machine_image: str | None = None
    source_machine_image_id: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    operation: Operation | None = field(default=None, repr=False)

    @property
    def path(self) -> str:
        """:return: ``projects/P/zones/Z/disks/D``."""
        return f"projects/{self.project}/zones/{self.zone}/disks/{self.name}"

    def render(self, links: Links, version: str, now: float | None = None) -> dict[str, Any]:
        """:param links: link builder. :param version: API version. :param now: ``time.monotonic()`` (None:
        as settled). :return: the Disk JSON (a subset)."""
        zone = f"projects/{self.project}/zones/{self.zone}"
        deleting = self.operation is not None and now is not None and self.operation.phase(now)[0] != "DONE"
        out: dict[str, Any] = {
            "kind": "compute#disk",
            "id": self.id,
            "creationTimestamp": rfc3339(self.created),
            "name": self.name,
            "sizeGb": str(self.size_gb),
            "zone": links.url(version, zone),
            "status": "DELETING" if deleting else "READY",
            "selfLink": links.url(version, self.path),
            "type": links.url(version, f"{zone}/diskTypes/pd-balanced"),
            "labelFingerprint": label_fingerprint(self.labels),
            "physicalBlockSizeBytes": "4096",
        }
        if self.users:
            out["users"] = [links.url(version, user) for user in self.users]
        if self.source_machine_image is not None:
            out["sourceMachineImage"] = links.url(version, self.source_machine_image)
            out["sourceMachineImageId"] = self.source_machine_image_id
        if self.labels:
            out["labels"] = dict(self.labels)
        return out


@dataclass(frozen=True)
class OperationFailure:
    """How an operation ends when it fails.

    :param code: ``error.errors[].code``.
    :param message: ``error.errors[].message``.
    :param http_status: ``httpErrorStatusCode``.
    :param http_message: ``httpErrorMessage`` (None: the status's phrase in upper case).
    """

    code: str
    message: str
    http_status: int
    http_message: str | None = None


@dataclass
class Operation:
    """A global operation; its status is derived from the clock when read.

    :param project: its project.
    :param name: ``operation-<ms>-<hex>-<hex>-<hex>``.
    :param id: numeric id (text).
    :param operation_type: ``insert``, ``delete`` or ``setLabels``.
    :param target_path: ``projects/P/global/machineImages/N``.
    :param target_id: the target's id.
    :param user: who asked.
    :param client_operation_id: the requestId, if one was given.
    :param start: ``time.monotonic()`` when it was created.
    :param duration: seconds from creation to DONE.
    :param failure: set when it ends with an error.
    :param version: API version its selfLinks use when read outside HTTP (snapshots).
    :param zone: the zone of a zonal operation (``zoneOperations``); None for a global one.
    """

    project: str
    name: str
    id: str
    operation_type: str
    target_path: str
    target_id: str
    user: str
    client_operation_id: str | None
    start: float
    duration: float
    failure: OperationFailure | None = None
    version: str = "beta"
    settled: bool = field(default=False, compare=False)
    #: ``warnings[]`` entries ({code, message, data}; discovery: Operation.warnings).
    warnings: list[dict[str, Any]] = field(default_factory=list, compare=False)
    zone: str | None = None

    @property
    def path(self) -> str:
        """:return: ``projects/P/global/operations/N``, or ``projects/P/zones/Z/operations/N``."""
        scope = "global" if self.zone is None else f"zones/{self.zone}"
        return f"projects/{self.project}/{scope}/operations/{self.name}"

    @property
    def end(self) -> float:
        """:return: the monotonic instant it becomes DONE."""
        return self.start + self.duration

    def phase(self, now: float) -> tuple[str, int]:
        """PENDING for the first 10 % of the duration, then RUNNING with progress, then DONE.

        :param now: ``time.monotonic()``.
        :return: status and progress (0-100, never decreasing).
        """
        elapsed = now - self.start
        if elapsed >= self.duration:
            return "DONE", 100
        if elapsed < 0.1 * self.duration:
            return "PENDING", 0
        return "RUNNING", min(99, max(1, int(100 * elapsed / self.duration)))

    def render(self, now: float, clock: Clock, links: Links, version: str | None = None) -> dict[str, Any]:
        """The Operation JSON as of ``now``.

        :param now: ``time.monotonic()``.
        :param clock: maps monotonic instants to timestamps.
        :param links: link builder.
        :param version: API version (None = the one it was created with).
        :return: the JSON.
        """
        version = version or self.version
        status, progress = self.phase(now)
        out: dict[str, Any] = {
            "kind": "compute#operation",
            "id": self.id,
            "name": self.name,
            "operationType": self.operation_type,
            "targetLink": links.url(version, self.target_path),
            "targetId": self.target_id,
            "status": status,
            "user": self.user,
            "progress": progress,
            "insertTime": rfc3339(clock.wall(self.start)),
        }
        if status != "PENDING":
            out["startTime"] = rfc3339(clock.wall(self.start + 0.1 * self.duration))
        if status == "DONE":
            out["endTime"] = rfc3339(clock.wall(self.end))
            if self.failure is not None:
                out["error"] = {"errors": [{"code": self.failure.code, "message": self.failure.message}]}
                out["httpErrorStatusCode"] = self.failure.http_status
                try:
                    out["httpErrorMessage"] = HTTPStatus(self.failure.http_status).phrase.upper()
                except ValueError:
                    out["httpErrorMessage"] = "ERROR"
                if self.failure.http_message is not None:
                    out["httpErrorMessage"] = self.failure.http_message
        if self.warnings and status == "DONE":  # shown once processing is over (when they arise: unverified)
            out["warnings"] = [dict(warning) for warning in self.warnings]
        if self.zone is not None:
            out["zone"] = links.url(version, f"projects/{self.project}/zones/{self.zone}")
        out["selfLink"] = links.url(version, self.path)
        if self.client_operation_id is not None:
            out["clientOperationId"] = self.client_operation_id
        return out


@dataclass
class MachineImage:
    """A machine image.

    :param project: its project.
    :param name: its name.
    :param id: numeric id (text).
    :param created: creation moment.
    :param source: the instance it was made from.
    :param status: CREATING, READY, DELETING, INVALID or UPLOADING.
    :param labels: its labels.
    :param storage_locations: where it is stored.
    :param description: as given.
    :param guest_flush: as given.
    :param encryption_key: ``machineImageEncryptionKey`` as the API echoes it (no key material).
    :param source_disk_keys: ``sourceDiskEncryptionKeys`` as echoed (no key material).
    :param total_storage_bytes: fixed size (None = a quarter of the source disks once READY).
    :param version: API version its selfLinks use when read outside HTTP (snapshots).
    :param saved_disks: the source's disks as kept at creation (None: as the source has them now).
    :param deletion_protection: the source's ``deletionProtection`` at creation, kept as
        ``sourceInstanceProperties.deletionProtection`` ("Whether the instance created from this machine image
        should be protected against deletion", discovery documents) and inherited by restored instances.
    :param saved_network: the source's ``networkInterfaces`` at creation (None: its project's default network).
    """

    project: str
    name: str
    id: str
    created: datetime
    source: Instance
    status: str
    labels: dict[str, str] = field(default_factory=dict)
    storage_locations: list[str] = field(default_factory=list)
    description: str | None = None
    guest_flush: bool | None = None
    encryption_key: dict[str, str] | None = None
    source_disk_keys: list[dict[str, Any]] | None = None
    total_storage_bytes: int | None = None
    version: str = "beta"
    saved_disks: tuple[SavedDisk, ...] | None = None
    deletion_protection: bool = False
    saved_network: list[dict[str, Any]] | None = None

    @property
    def path(self) -> str:
        """:return: ``projects/P/global/machineImages/N``."""
        return f"projects/{self.project}/global/machineImages/{self.name}"

    def disks(self) -> tuple[SavedDisk, ...]:
        """:return: the saved disks, boot disk first."""
        return self.saved_disks if self.saved_disks is not None else self.source.saved_disks()

    def disk_bytes(self) -> list[int]:
        """:return: each saved disk's ``storageBytes`` once READY (a quarter of its size; the boot disk takes
        what a fixed ``total_storage_bytes`` leaves)."""
        sizes = [disk.size_gb * GIB // 4 for disk in self.disks()]
        if self.total_storage_bytes is not None:
            sizes[0] = max(0, self.total_storage_bytes - sum(sizes[1:]))
        return sizes

    def storage_bytes(self) -> int:
        """:return: the ``totalStorageBytes`` it shows when READY."""
        return sum(self.disk_bytes())

    def properties(self, links: Links, version: str) -> dict[str, Any]:
        """:return: the ``sourceInstanceProperties`` it shows (a subset)."""
        network = self.saved_network
        return {
            "machineType": "e2-medium",
            "canIpForward": False,
            "networkInterfaces": (
                [dict(i) for i in network]
                if network is not None
                else default_network(links, version, self.source.project)
            ),
            "disks": [
                {
                    "kind": "compute#savedAttachedDisk",
                    "type": "PERSISTENT",
                    "mode": "READ_WRITE",
                    "source": links.url(version, disk.source_path),
                    "deviceName": disk.device_name,
                    "index": index,
                    "boot": disk.boot,
                    "autoDelete": disk.auto_delete,
                    "interface": "SCSI",
                    "diskSizeGb": str(disk.size_gb),
                }
                for index, disk in enumerate(self.disks())
            ],
            "scheduling": {"onHostMaintenance": "MIGRATE", "automaticRestart": True, "preemptible": False},
            "deletionProtection": self.deletion_protection,
        }

    def render(self, links: Links, version: str | None = None) -> dict[str, Any]:
        """The MachineImage JSON.

        :param links: link builder.
        :param version: API version (None = the one it was created with).
        :return: the JSON.
        """
        version = version or self.version
        out: dict[str, Any] = {
            "kind": "compute#machineImage",
            "id": self.id,
            "creationTimestamp": rfc3339(self.created),
            "name": self.name,
        }
        if self.description is not None:
            out["description"] = self.description
        out["selfLink"] = links.url(version, self.path)
        out["sourceInstance"] = links.url(version, self.source.path)
        out["status"] = self.status
        properties = self.properties(links, version)
        out["sourceInstanceProperties"] = properties
        out["instanceProperties"] = properties
        if self.status in ("READY", "DELETING"):
            sizes = self.disk_bytes()
            out["savedDisks"] = [
                {
                    "kind": "compute#savedDisk",
                    "sourceDisk": links.url(version, disk.source_path),
                    "storageBytes": str(size),
                    "storageBytesStatus": "UP_TO_DATE",
                    "architecture": "X86_64",
                }
                for disk, size in zip(self.disks(), sizes, strict=True)
            ]
            out["totalStorageBytes"] = str(sum(sizes))
        out["storageLocations"] = list(self.storage_locations)
        if self.encryption_key is not None:
            out["machineImageEncryptionKey"] = dict(self.encryption_key)
        if self.source_disk_keys is not None:
            out["sourceDiskEncryptionKeys"] = [dict(key) for key in self.source_disk_keys]
        if self.guest_flush is not None:
            out["guestFlush"] = self.guest_flush
        if self.labels:
            out["labels"] = dict(self.labels)
        out["labelFingerprint"] = label_fingerprint(self.labels)
        out["satisfiesPzs"] = False
        return out
