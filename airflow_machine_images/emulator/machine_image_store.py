"""The machine images of every project, and what their operations do to them once DONE.

An image keeps what its source instance was when it was made: the disks (with their ``autoDelete``),
``deletionProtection`` and network interfaces (``sourceInstanceProperties``, discovery documents), which
instances restored from it inherit.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

from airflow_machine_images.emulator.resources import MachineImage, OperationFailure, storage_location_for
from airflow_machine_images.emulator.state import Origin

if TYPE_CHECKING:
    from datetime import datetime

    from airflow_machine_images.emulator.resources import Instance, Operation
    from airflow_machine_images.emulator.state import ComputeState

__all__ = ["SOURCE_IMAGE_LIMITS", "MachineImageStore", "SourceImageLimit"]

#: Machine images of one source instance: "at most once every 10 minutes, at most 6 requests in 60
#: minutes" (Create machine images page, as quoted in COMPUTE_ENGINE_NOTES.md): (window seconds, count).
SOURCE_IMAGE_LIMITS: Final = ((600.0, 1), (3600.0, 6))


class SourceImageLimit:
    """The per-source-instance machine-image limit, answered the way the service answers its operation-rate
    limit: the insert is accepted and its operation fails with ``RESOURCE_OPERATION_RATE_EXCEEDED``,
    "Operation rate exceeded for resource ... Too frequent operations from the source resource", HTTP 403
    (googleapis/python-compute issue 279). That this limit is answered in exactly that shape is
    unverified; so is which requests count: here only the creations it let through (lock held).
    """

    def __init__(self) -> None:
        self._history: dict[str, list[float]] = defaultdict(list)

    def check(self, source_path: str, now: float, scale: float | None, origin: Origin) -> Origin:
        """:param source_path: the source instance. :param now: ``time.monotonic()``. :param scale: the
        windows' scale (1: the documented minutes; None: no limit). :param origin: the insert's origin.
        :return: the origin, with the limit's failure when the source is over it (else counted)."""
        if scale is None or origin.failure is not None:
            return origin
        history = self._history[source_path]
        for window, count in SOURCE_IMAGE_LIMITS:
            if sum(1 for moment in history if now - moment < window * scale) >= count:
                failure = OperationFailure(
                    "RESOURCE_OPERATION_RATE_EXCEEDED",
                    f"Operation rate exceeded for resource '{source_path}'. Too frequent operations from the "
                    "source resource.",
                    403,
                )
                return replace(origin, failure=failure)
        history.append(now)
        return origin


class MachineImageStore:
    """Machine images by project and name; every method is called with the state's lock held.

    :param state: the shared state (lock, ids, operations).
    """

    def __init__(self, state: ComputeState) -> None:
        self._state = state
        self._images: dict[str, dict[str, MachineImage]] = {}
        #: The per-source-instance limit (off unless the handlers pass a scale).
        self.source_limit = SourceImageLimit()

    def get(self, project: str, name: str) -> MachineImage | None:
        """:param project: the project id. :param name: a name or numeric id. :return: the image, or None."""
        images = self._images.get(project, {})
        found = images.get(name)
        if found is None and name.isdigit():
            found = next((image for image in images.values() if image.id == name), None)
        return found

    def in_project(self, project: str) -> list[MachineImage]:
        """:param project: the project id. :return: every image of the project."""
        return list(self._images.get(project, {}).values())

    def create(
        self,
        *,
        project: str,
        name: str,
        source: Instance,
        now: float,
        origin: Origin,
        version: str,
        created: datetime | None = None,
        status: str = "CREATING",
        fields: dict[str, Any] | None = None,
    ) -> tuple[MachineImage, Operation | None]:
        """Add an image; a CREATING or DELETING one gets the operation that moves it on.

        :param project: its project.
        :param name: its name (must be free).
        :param source: the instance it is made from.
        :param now: ``time.monotonic()``.
        :param origin: who asks, with the insert's requestId and failure (a DELETING seed's
            operation takes only the user).
        :param version: API version its snapshot selfLinks use.
        :param created: its creation moment (None = now).
        :param status: its initial status.
        :param fields: other MachineImage attributes (labels, description, ...).
        :return: the image and its operation (None for a seeded image in a static status).
        """
        extra = dict(fields or {})
        image = MachineImage(
            project=project,
            name=name,
            id=self._state.new_id(),
            created=created or self._state.clock.wall(now),
            source=source,
            status=status,
            labels=dict(extra.pop("labels", None) or {}),
            storage_locations=list(extra.pop("storage_locations", None) or [storage_location_for(source.zone)]),
            version=version,
            saved_disks=source.saved_disks(),
            deletion_protection=source.deletion_protection,
            saved_network=source.network_interfaces,
            **extra,
        )
        self._images.setdefault(project, {})[name] = image
        if status == "CREATING":
            duration = self._state.operation_seconds if source.operation_seconds is None else source.operation_seconds
            return image, self._start(image, "insert", now, duration, origin)
        if status == "DELETING":
            return image, self._start(image, "delete", now, self._state.operation_seconds, Origin(origin.user))
        return image, None

    def delete(self, image: MachineImage, *, now: float, origin: Origin) -> Operation:
        """Start deleting an image (a failed delete returns it to READY).

        :param image: the image.
        :param now: ``time.monotonic()``.
        :param origin: who asks, the requestId, whether it fails.
        :return: the delete operation.
        """
        image.status = "DELETING"
        return self._start(image, "delete", now, self._state.operation_seconds, origin)

    def set_labels(self, image: MachineImage, labels: dict[str, str], *, now: float, origin: Origin) -> Operation:
        """Replace an image's labels at once; the operation is DONE immediately.

        :param image: the image.
        :param labels: the new labels.
        :param now: ``time.monotonic()``.
        :param origin: who asks.
        :return: the setLabels operation.
        """
        image.labels = dict(labels)
        return self._start(image, "setLabels", now, 0.0, origin)

    def _start(self, image: MachineImage, kind: str, now: float, duration: float, origin: Origin) -> Operation:
        """Start a global operation on ``image``, settled by :meth:`_settled`."""
        return self._state.start_operation(
            image,
            kind,
            now=now,
            duration=duration,
            origin=origin,
            version=image.version,
            on_done=functools.partial(self._settled, image),
        )

    def _settled(self, image: MachineImage, operation: Operation) -> None:
        """Apply a DONE operation: an insert makes the image READY (a failed one removes it), a delete
        removes it (a failed one makes it READY again)."""
        images = self._images.get(image.project, {})
        current = images.get(image.name) is image
        if operation.operation_type == "insert":
            if operation.failure is not None:
                if current:
                    del images[image.name]
            elif image.status == "CREATING":
                image.status = "READY"
        elif operation.operation_type == "delete":
            if operation.failure is not None:
                image.status = "READY"
            elif current:
                del images[image.name]
