"""Seeding the emulator directly (projects, instances, disks, machine images, unreachable zones) and reading it back.

Nothing here is an API request: nothing is recorded or faulted. Arguments may come from the control
API's JSON, so each is checked for its type as well as its value (``TypeError`` / ``ValueError``, a
400 there).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_machine_images.emulator.errors import ApiError
from airflow_machine_images.emulator.references import parse_machine_image, parse_source_instance
from airflow_machine_images.emulator.schema import LABEL_KEY_RE, LABEL_VALUE_RE, NAME_RE, PROJECT_RE
from airflow_machine_images.emulator.serial_console import SerialConsoles
from airflow_machine_images.emulator.state import Origin
from airflow_machine_images.emulator.timefmt import parse_rfc3339
from airflow_machine_images.emulator.zones import ZONES

if TYPE_CHECKING:
    from collections.abc import Iterable

    from airflow_machine_images.emulator.disk_store import DiskStore
    from airflow_machine_images.emulator.instance_store import DiskSpec, InstanceStore
    from airflow_machine_images.emulator.machine_image_store import MachineImageStore
    from airflow_machine_images.emulator.resources import Instance, Links
    from airflow_machine_images.emulator.state import ComputeState

__all__ = ["IMAGE_STATUSES", "INSTANCE_STATUSES", "Seeder"]

IMAGE_STATUSES = ("READY", "CREATING", "DELETING", "INVALID", "UPLOADING")
#: The Instance ``status`` enum of the compute.v1/beta discovery documents.
INSTANCE_STATUSES = (
    "DEPROVISIONING", "PENDING", "PENDING_STOP", "PROVISIONING", "REPAIRING", "RUNNING", "STAGING", "STOPPED",
    "STOPPING", "SUSPENDED", "SUSPENDING", "TERMINATED",
)  # fmt: skip
_ZONE_INSTANCE = re.compile(r"(?P<zone>[a-z][-a-z0-9]*)/(?P<instance>[a-z][-a-z0-9]*)")


def _known_zone(zone: str) -> str:
    """:param zone: a seeded zone. :return: it. :raises ValueError: Compute Engine has no such zone (a region,
    say), so nothing can live there: the API would answer 400 "Unknown zone" for it."""
    if zone not in ZONES:
        raise ValueError(f"Unknown zone {zone!r}: the emulator has the zones Compute Engine lists, e.g. us-central1-a")
    return zone


def _require(value: object, types: type | tuple[type, ...], name: str) -> None:
    """:raises TypeError: ``value`` (a seeding argument, perhaps from control JSON) has another type."""
    allowed = types if isinstance(types, tuple) else (types,)
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        raise TypeError(f"{name} has the wrong type ({type(value).__name__})")


def _creation_moment(creation_timestamp: datetime | str | None) -> datetime | None:
    """:param creation_timestamp: a datetime, RFC 3339 text or None. :return: the moment (None: now).
    :raises ValueError: text that is not RFC 3339."""
    if creation_timestamp is None or isinstance(creation_timestamp, datetime):
        return creation_timestamp
    created = parse_rfc3339(creation_timestamp)
    if created is None:
        raise ValueError(f"creation_timestamp {creation_timestamp!r} is not RFC 3339")
    return created


def _check_labels(labels: dict[str, str] | None) -> None:
    """:param labels: seeded labels. :raises ValueError: a key or value the API would refuse."""
    for key, value in (labels or {}).items():
        if not isinstance(key, str) or not LABEL_KEY_RE.fullmatch(key):
            raise ValueError(f"Invalid label key {key!r}")
        if not isinstance(value, str) or not LABEL_VALUE_RE.fullmatch(value):
            raise ValueError(f"Invalid label value {value!r} of {key!r}")


def _image_path(source_machine_image: str | None, project: str) -> str | None:
    """:param source_machine_image: a seeded instance's image reference, or None. :param project: its project.
    :return: ``projects/P/global/machineImages/N``, or None. :raises ValueError: an unreadable reference."""
    if source_machine_image is None:
        return None
    try:
        image_project, image_name = parse_machine_image(source_machine_image, project)
    except ApiError:
        raise ValueError(f"Invalid source_machine_image {source_machine_image!r}") from None
    return f"projects/{image_project}/global/machineImages/{image_name}"


def _disk_specs(disks: list[dict[str, Any]] | None, disk_size_gb: int) -> list[DiskSpec] | None:
    """:param disks: the ``disks`` seeding argument. :param disk_size_gb: the boot disk's default size.
    :return: ``(size_gb, auto_delete)`` per disk, or None. :raises TypeError, ValueError: a bad entry."""
    if disks is None:
        return None
    _require(disks, list, "disks")
    if not disks:
        raise ValueError("disks must name at least the boot disk")
    specs: list[DiskSpec] = []
    for index, disk in enumerate(disks):
        _require(disk, dict, f"disks[{index}]")
        unknown = set(disk) - {"sizeGb", "autoDelete"}
        if unknown:
            raise ValueError(f"disks[{index}] has unknown fields {sorted(unknown)} (sizeGb, autoDelete)")
        size, auto = disk.get("sizeGb", disk_size_gb), disk.get("autoDelete", True)
        _require(size, int, f"disks[{index}].sizeGb")
        _require(auto, bool, f"disks[{index}].autoDelete")
        if size < 1:
            raise ValueError(f"disks[{index}].sizeGb must be at least 1")
        specs.append((size, auto))
    return specs


class Seeder:
    """Seeds the stores and reads them back: the emulator's methods of the same names.

    :param state: the shared state.
    :param images: the machine images.
    :param instances: the instances.
    :param links: selfLink builder.
    :param default_project: the project of calls that name none.
    :param disks: the disks (instances' and left-over ones).
    :param consoles: the instances' serial consoles.
    """

    def __init__(
        self,
        state: ComputeState,
        images: MachineImageStore,
        instances: InstanceStore,
        links: Links,
        default_project: str,
        *,
        disks: DiskStore,
        consoles: SerialConsoles | None = None,
    ) -> None:
        self._state = state
        self._images = images
        self._instances = instances
        self._disks = disks
        self._consoles = consoles if consoles is not None else SerialConsoles()
        self._links = links
        self.default_project = default_project

    def project(self, project: str | None) -> str:
        """:param project: a project id, or None. :return: it, or the default project."""
        return project or self.default_project

    def instance_key(self, instance: str, project: str | None) -> tuple[str, str, str]:
        """:param instance: ``ZONE/NAME``, a path or a URL. :param project: its project, if known.
        :return: project, zone, name. :raises ValueError: if unreadable."""
        short = _ZONE_INSTANCE.fullmatch(instance)
        if short is not None:
            return self.project(project), _known_zone(short.group("zone")), short.group("instance")
        try:
            found = parse_source_instance(instance, self.project(project))
        except ApiError:
            raise ValueError(
                f"Instance {instance!r} is not 'ZONE/NAME', 'projects/P/zones/Z/instances/I' or a URL"
            ) from None
        if project is not None and found[0] != project:
            raise ValueError(f"Instance {instance!r} is not in project {project!r}")
        _known_zone(found[1])
        return found

    # -- seeding -----------------------------------------------------------------------------------

    def add_project(self, project: str | None = None, number: str | int | None = None) -> dict[str, str]:
        """Make a project known, with its number (projects are otherwise known on first use).

        Every project has a number, derived from its id unless chosen here; the API accepts it wherever
        the project id goes (paths, ``sourceInstance``) and answers with the id.

        :param project: the project id (default ``default_project``).
        :param number: its number (None: keep or derive it).
        :return: ``{"name": project id, "id": number}``, the fields the Project resource has for them.
        """
        _require(project, (str, type(None)), "project")
        _require(number, (str, int, type(None)), "number")
        project_id = self.project(project)
        if not PROJECT_RE.fullmatch(project_id) or project_id.isdigit():
            raise ValueError(f"Invalid project id {project_id!r}")
        text = None if number is None else str(number)
        if text is not None and (not text.isdigit() or not 1 <= len(text) <= 19 or text.startswith("0")):
            raise ValueError("number must be 1 to 19 digits, without a leading zero")
        with self._state.session():
            if text is not None:
                self._state.set_project_number(project_id, text)
            return {"name": project_id, "id": self._state.project_number(project_id)}

    def project_number(self, project: str | None = None) -> str:
        """:param project: a project id (default ``default_project``). :return: its number."""
        return self.add_project(project)["id"]

    def add_instance(
        self,
        instance: str,
        project: str | None = None,
        disk_size_gb: int = 10,
        operation_seconds: float | None = None,
        labels: dict[str, str] | None = None,
        status: str = "RUNNING",
        source_machine_image: str | None = None,
        disks: list[dict[str, Any]] | None = None,
        deletion_protection: bool = False,
        attach_disks: list[str] | None = None,
    ) -> dict[str, Any]:
        """Create a source instance with its disks, in any project (the emulator serves every project).

        :param instance: ``ZONE/NAME``, ``projects/P/zones/Z/instances/I`` or a full URL.
        :param project: its project (default: the one in ``instance``, else ``default_project``).
        :param disk_size_gb: size of its boot disk (drives ``totalStorageBytes``).
        :param operation_seconds: how long inserting an image from it takes (None = the default).
        :param labels: its labels (checked as the API checks label keys and values).
        :param status: its status, one of :data:`INSTANCE_STATUSES` (default RUNNING).
        :param source_machine_image: the machine image it was restored from (``projects/P/global/machineImages/N``,
            ``global/machineImages/N`` or a URL; it need not exist), shown as its ``sourceMachineImage``.
        :param disks: its disks, boot disk first, each ``{"sizeGb": int, "autoDelete": bool}`` (both optional:
            ``disk_size_gb`` and true); None: one boot disk of ``disk_size_gb``, auto-deleted. They are named as
            a restore names them (the instance's name, then ``NAME-1``, ...), and kept by machine images of it.
        :param deletion_protection: its ``deletionProtection`` (kept by machine images of it).
        :param attach_disks: names of disks of its zone, attached to nothing (``add_disk``), to attach too,
            without ``autoDelete`` (a data disk attached after the instance was made).
        :return: the Instance JSON.
        """
        _require(instance, str, "instance")
        _require(project, (str, type(None)), "project")
        _require(disk_size_gb, int, "disk_size_gb")
        _require(operation_seconds, (int, float, type(None)), "operation_seconds")
        _require(labels, (dict, type(None)), "labels")
        _require(status, str, "status")
        _require(source_machine_image, (str, type(None)), "source_machine_image")
        _require(deletion_protection, bool, "deletion_protection")
        _require(attach_disks, (list, type(None)), "attach_disks")
        specs = _disk_specs(disks, disk_size_gb)
        project_id, zone, name = self.instance_key(instance, project)
        if not PROJECT_RE.fullmatch(project_id) or not NAME_RE.fullmatch(zone) or not NAME_RE.fullmatch(name):
            raise ValueError(f"Invalid instance {instance!r}")
        if disk_size_gb < 1:
            raise ValueError("disk_size_gb must be at least 1")
        if status not in INSTANCE_STATUSES:
            raise ValueError(f"status must be one of {', '.join(INSTANCE_STATUSES)}")
        _check_labels(labels)
        image_path = _image_path(source_machine_image, project_id)
        with self._state.session():
            created = self._instances.add(
                project_id,
                zone,
                name,
                disk_size_gb,
                operation_seconds,
                labels=labels,
                status=status,
                source_machine_image=image_path,
                disks=specs,
                deletion_protection=deletion_protection,
                attach=attach_disks,
            )
            return created.render(self._links, "beta")

    def set_boot_log(
        self,
        instance: str,
        log: str = "linux",
        project: str | None = None,
        lines: list[str] | None = None,
        boot_seconds: float | None = None,
    ) -> dict[str, Any]:
        """Plan an instance's serial console (:mod:`.serial_console`), before or after it exists (a restore).

        :param instance: ``ZONE/NAME``, ``projects/P/zones/Z/instances/I`` or a URL.
        :param log: ``linux`` (the default of every instance), ``windows``, ``panic`` (a kernel panic: no boot
            line ever), ``hang`` (a start job that never ends) or ``silent`` (no output).
        :param project: its project (default: the one in ``instance``, else ``default_project``).
        :param lines: the log's lines instead of a named log.
        :param boot_seconds: over how long the log appears after the instance is created (None: the default).
        :return: the instance's path and the log.
        """
        _require(instance, str, "instance")
        _require(project, (str, type(None)), "project")
        project_id, zone, name = self.instance_key(instance, project)
        return self._consoles.set_boot_log(
            f"{zone}/{name}", log, project=project_id, lines=lines, boot_seconds=boot_seconds
        )

    def add_disk(
        self, name: str, zone: str, project: str | None = None, size_gb: int = 10, labels: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Seed a disk attached to nothing: e.g. one left behind by an earlier instance of a name.

        :param name: its name (free in its zone).
        :param zone: its zone.
        :param project: its project (default ``default_project``).
        :param size_gb: its size.
        :param labels: its labels.
        :return: the Disk JSON.
        """
        for value, what in ((name, "name"), (zone, "zone")):
            _require(value, str, what)
            if not NAME_RE.fullmatch(value):
                raise ValueError(f"Invalid disk {what} {value!r}")
        _known_zone(zone)
        _require(project, (str, type(None)), "project")
        _require(size_gb, int, "size_gb")
        _require(labels, (dict, type(None)), "labels")
        project_id = self.project(project)
        with self._state.session() as now:
            if self._disks.get(project_id, zone, name) is not None:
                raise ValueError(f"Disk {name!r} already exists in {project_id}/{zone}")
            created = self._disks.add(
                project_id, zone, name, size_gb=size_gb, created=self._state.clock.wall(now), labels=labels
            )
            return created.render(self._links, "beta", now)

    def set_unreachable_zones(self, zones: Iterable[str] = ()) -> list[str]:
        """Make zones unreachable for ``instances.aggregatedList`` (empty: every zone answers again).

        Such a zone's scope carries a ``warning`` with code ``UNREACHABLE`` instead of its instances,
        and the answer lists it in ``unreachables`` (InstanceAggregatedList / InstancesScopedList
        schemas of the discovery documents), as the real API does when a zone cannot be read.

        :param zones: zone names, e.g. ``["us-east1-b"]``.
        :return: the unreachable zones, sorted.
        """
        chosen = list(zones)
        for zone in chosen:
            _require(zone, str, "zones[]")
            if not NAME_RE.fullmatch(zone):
                raise ValueError(f"Invalid zone {zone!r}")
            _known_zone(zone)
        self._instances.unreachable_zones = frozenset(chosen)
        return sorted(chosen)

    def add_machine_image(
        self,
        name: str,
        source_instance: str | None = None,
        project: str | None = None,
        status: str = "READY",
        creation_timestamp: datetime | str | None = None,
        labels: dict[str, str] | None = None,
        total_storage_bytes: int | None = None,
    ) -> dict[str, Any]:
        """Seed a machine image directly (no request recorded).

        A ``CREATING`` seed gets an insert operation (it becomes READY after the insert duration);
        a ``DELETING`` one a delete operation; other statuses stay as given.

        :param name: its name.
        :param source_instance: ``ZONE/NAME`` or a path/URL; it need not exist (None = the
            project's first instance).
        :param project: its project (default ``default_project``).
        :param status: READY, CREATING, DELETING, INVALID or UPLOADING.
        :param creation_timestamp: a datetime or RFC 3339 text (default now).
        :param labels: its labels.
        :param total_storage_bytes: its size (default: derived from the source disk).
        :return: the MachineImage JSON.
        """
        _require(name, str, "name")
        _require(source_instance, (str, type(None)), "source_instance")
        _require(project, (str, type(None)), "project")
        _require(status, str, "status")
        _require(creation_timestamp, (datetime, str, type(None)), "creation_timestamp")
        _require(labels, (dict, type(None)), "labels")
        _require(total_storage_bytes, (int, type(None)), "total_storage_bytes")
        project_id = self.project(project)
        if not NAME_RE.fullmatch(name):
            raise ValueError(f"Invalid machine image name {name!r}")
        if status not in IMAGE_STATUSES:
            raise ValueError(f"status must be one of {', '.join(IMAGE_STATUSES)}")
        created = _creation_moment(creation_timestamp)
        if not all(isinstance(key, str) and isinstance(value, str) for key, value in (labels or {}).items()):
            raise ValueError("labels must map strings to strings")
        with self._state.session() as now:
            if self._images.get(project_id, name) is not None:
                raise ValueError(f"Machine image {name!r} already exists in {project_id}")
            image, _ = self._images.create(
                project=project_id,
                name=name,
                source=self._seed_source(project_id, source_instance, now),
                now=now,
                origin=Origin(f"someone@{project_id}.iam.gserviceaccount.com"),
                version="beta",
                created=created,
                status=status,
                fields={"labels": dict(labels or {}), "total_storage_bytes": total_storage_bytes},
            )
            return image.render(self._links)

    def _seed_source(self, project: str, source_instance: str | None, now: float) -> Instance:
        """The source of a seeded image: the named instance (kept or not), or the project's first one (lock held)."""
        if source_instance is None:
            source = next((i for i in self._instances.in_project(project)), None)
            if source is None:
                raise ValueError(f"No instance in {project}: pass source_instance")
            return source
        where = self.instance_key(source_instance, None)
        return self._instances.get(*where) or self._instances.unlisted(*where, now)

    # -- reading back ------------------------------------------------------------------------------

    def machine_images(self, project: str | None = None) -> list[dict[str, Any]]:
        """:param project: the project (default ``default_project``). :return: its images, by name, as
        the API shows them now."""
        with self._state.session():
            images = self._images.in_project(self.project(project))
            return [image.render(self._links) for image in sorted(images, key=lambda i: i.name)]

    def get_machine_image(self, name: str, project: str | None = None) -> dict[str, Any] | None:
        """:param name: the image. :param project: its project. :return: the image JSON, or None."""
        with self._state.session():
            image = self._images.get(self.project(project), name)
            return None if image is None else image.render(self._links)

    def instances(self, project: str | None = None) -> list[dict[str, Any]]:
        """:param project: the project (default ``default_project``). :return: its instances, by zone and name,
        as the API shows them now."""
        with self._state.session() as now:
            found = sorted(self._instances.in_project(self.project(project)), key=lambda i: (i.zone, i.name))
            return [instance.render(self._links, "beta", now) for instance in found]

    def disks(self, project: str | None = None) -> list[dict[str, Any]]:
        """:param project: the project (default ``default_project``). :return: its disks, by zone and name, as
        the API shows them now."""
        with self._state.session() as now:
            found = sorted(self._disks.in_project(self.project(project)), key=lambda d: (d.zone, d.name))
            return [disk.render(self._links, "beta", now) for disk in found]

    def operations(self, project: str | None = None, zone: str | None = None) -> list[dict[str, Any]]:
        """:param project: the project. :param zone: a zone (None: the global operations).
        :return: its operations of that scope, oldest first, as the API shows them now."""
        with self._state.session() as now:
            found = sorted(self._state.operations(self.project(project), zone), key=lambda op: (op.start, op.name))
            return [op.render(now, self._state.clock, self._links) for op in found]
