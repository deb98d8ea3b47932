"""Backup coverage: each selected instance's newest READY machine image, and whether it is recent enough.

Pure, no I/O. Images and instances are matched by their canonical source instance (project id, zone
and instance name) read from the image's ``sourceInstance`` URL, whatever API version or form it is
written in. The images come from one paged ``machineImages.list`` of the backup project, grouped
here: the list filter could select one ``sourceInstance`` at a time, which would cost one listing
per instance (and the URL's API version would have to match exactly), so one listing serves all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_machine_images.api.timestamps import parse_timestamp
from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.validation import parse_source_instance

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from datetime import datetime, timedelta

__all__ = ["CoverageRow", "coverage_rows", "format_age", "format_table", "newest_ready_images"]

#: Row statuses: a recent enough image, an older one, none at all.
OK, STALE, MISSING = "ok", "stale", "missing"


@dataclass(frozen=True)
class CoverageRow:
    """One instance's line of the coverage table.

    :param instance: ``projects/P/zones/Z/instances/I``.
    :param status: ``ok``, ``stale`` or ``missing``.
    :param newest_image: the newest READY image's name (None: there is none).
    :param created: its ``creationTimestamp``.
    :param age_seconds: its age when checked.
    :param size_bytes: its ``totalStorageBytes``.
    """

    instance: str
    status: str
    newest_image: str | None = None
    created: str | None = None
    age_seconds: float | None = None
    size_bytes: int | None = None


def canonical_source(image: Mapping[str, Any]) -> str | None:
    """An image's source instance as ``projects/P/zones/Z/instances/I``, or None if it names none readable.

    :param image: a MachineImage resource.
    """
    try:
        return parse_source_instance(image.get("sourceInstance"), default_project=None).partial_url
    except MachineImageValidationError:
        return None


def newest_ready_images(images: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Per canonical source instance, its newest READY image with a readable creation time.

    :param images: MachineImage resources (any order; repeats are harmless).
    """
    newest: dict[str, tuple[datetime, str, Mapping[str, Any]]] = {}
    for image in images:
        source = canonical_source(image)
        created = parse_timestamp(image.get("creationTimestamp"))
        if source is None or created is None or image.get("status") != "READY":
            continue
        key = (created, str(image.get("name")))
        best = newest.get(source)
        if best is None or key > best[:2]:
            newest[source] = (*key, image)
    return {source: image for source, (_, _, image) in newest.items()}


def coverage_rows(
    instances: Iterable[Mapping[str, Any]], images: Iterable[Mapping[str, Any]], *, now: datetime, max_age: timedelta
) -> list[CoverageRow]:
    """One row per instance, in the order given.

    :param instances: the list operator's summaries (``source_instance`` is canonical).
    :param images: the backup project's machine images.
    :param now: the current time (aware).
    :param max_age: an image older than this is stale.
    """
    newest = newest_ready_images(images)
    rows = []
    for instance in instances:
        source = str(instance["source_instance"])
        image = newest.get(source)
        if image is None:
            rows.append(CoverageRow(instance=source, status=MISSING))
            continue
        created = parse_timestamp(image.get("creationTimestamp"))
        assert created is not None  # newest_ready_images keeps only readable times
        age = (now - created).total_seconds()
        size = image.get("totalStorageBytes")
        rows.append(
            CoverageRow(
                instance=source,
                status=OK if age <= max_age.total_seconds() else STALE,
                newest_image=str(image.get("name")),
                created=str(image.get("creationTimestamp")),
                age_seconds=age,
                size_bytes=int(size) if isinstance(size, (int, str)) and str(size).isdigit() else None,
            )
        )
    return rows


def format_age(seconds: float) -> str:
    """``2d 03h``, ``5h 07m``, ``42m``: an age at a glance.

    :param seconds: the age (negative ages, from clocks that disagree, read as 0).
    """
    minutes = max(0, int(seconds // 60))
    days, hours, mins = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {mins:02d}m"
    return f"{mins}m"


def _size(value: int | None) -> str:
    if value is None:
        return "-"
    gib = value / 2**30
    return f"{gib:.1f} GiB"


def format_table(rows: Iterable[CoverageRow]) -> str:
    """The rows as an aligned text table (columns: instance, status, newest image, age, size).

    :param rows: the coverage rows.
    """
    header = ("INSTANCE", "STATUS", "NEWEST READY IMAGE", "AGE", "SIZE")
    lines = [header] + [
        (
            row.instance,
            row.status.upper(),
            row.newest_image or "-",
            "-" if row.age_seconds is None else format_age(row.age_seconds),
            _size(row.size_bytes),
        )
        for row in rows
    ]
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.rjust(width) if column >= 3 else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    )
