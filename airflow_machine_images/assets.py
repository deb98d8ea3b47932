"""Airflow assets for machine images: a DAG can be scheduled on new images.

The ``gce-machine-image`` URI scheme names the images of one source instance,
``gce-machine-image://PROJECT/zones/ZONE/instances/INSTANCE``, or every image one task makes in a
project, ``gce-machine-image://PROJECT``. The insert operator attaches each image it makes
(self link, source instance, size, request id) to the events of its outlets of this scheme.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import Asset, AssetAlias

from airflow_machine_images.compat import airflow_major
from airflow_machine_images.validation import (
    MachineImageValidationError,
    parse_source_instance,
    validate_instance_name,
    validate_project_id,
    validate_zone,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from urllib.parse import SplitResult

    from airflow.providers.common.compat.sdk import Context

SCHEME = "gce-machine-image"
#: Summary keys copied into an asset event's extra.
EVENT_EXTRA_KEYS = ("name", "project_id", "self_link", "source_instance", "total_storage_bytes", "request_id", "status")


def machine_image_asset(project_id: str, source_instance: str | None = None, *, name: str | None = None) -> Asset:
    """The asset of a project's machine images, or of one source instance's.

    :param project_id: the project.
    :param source_instance: ``ZONE/INSTANCE`` or ``projects/P/zones/Z/instances/I``, or None for the
        whole project.
    :param name: the asset's name (defaults to its URI); on Airflow 2 an asset is a ``Dataset``, which
        has no name apart from its URI, so ``name`` is not used there.
    """
    project = validate_project_id(project_id)
    uri = f"{SCHEME}://{project}"
    if source_instance is not None:
        ref = parse_source_instance(source_instance, default_project=project)
        if ref.project != project:
            raise ValueError(f"source_instance {source_instance!r} is not in project {project!r}")
        uri += f"/zones/{ref.zone}/instances/{ref.instance}"
    if airflow_major() < 3:  # a Dataset: its URI is its name
        return Asset(uri=uri)
    return Asset(uri=uri, name=name or uri)


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Check a ``gce-machine-image`` URI (registered with Airflow under ``asset-uris``).

    :param uri: the split URI.
    :raises ValueError: the URI is not one of the two forms.
    """

    parts = [p for p in uri.path.split("/") if p]
    try:
        validate_project_id(uri.netloc, "project")
        if parts:
            if len(parts) != 4 or parts[0] != "zones" or parts[2] != "instances":
                raise ValueError(f"{SCHEME} URI path must be /zones/ZONE/instances/INSTANCE, got {uri.path!r}")
            validate_zone(parts[1])
            validate_instance_name(parts[3])
    except MachineImageValidationError as exc:
        raise ValueError(f"Invalid {SCHEME} URI: {exc}") from exc
    if uri.query or uri.fragment:
        raise ValueError(f"{SCHEME} URIs take no query or fragment")
    return uri


def create_asset(project_id: str, source_instance: str | None = None, **kwargs: Any) -> Asset:
    """Factory registered under ``asset-uris`` (same as :func:`machine_image_asset`)."""
    return machine_image_asset(project_id, source_instance, **kwargs)


def record_outlet_events(context: Context, outlets: Iterable[object], summary: Mapping[str, Any]) -> None:
    """Put the image's facts into the extra of every ``gce-machine-image`` outlet's event.

    :param context: the task's context.
    :param outlets: the task's outlets.
    :param summary: the insert operator's result.
    """
    ours = [o for o in outlets if isinstance(o, Asset) and o.uri.startswith(f"{SCHEME}://")]
    if not ours:
        return
    extra = {key: summary.get(key) for key in EVENT_EXTRA_KEYS}
    events = context["outlet_events"]
    for asset in ours:
        events[asset].extra.update(extra)


def record_fleet_outlet_events(context: Context, outlets: Iterable[object], result: Mapping[str, Any]) -> None:
    """The fleet backup's asset events: one per image made, and the run's counts on its own assets.

    Every ``AssetAlias`` outlet gets one event per succeeded instance, on the ``gce-machine-image`` asset
    of that source instance (:func:`machine_image_asset`), with the image's name, project, source and
    run label as extra; every ``gce-machine-image`` asset outlet gets one event with the run's counts.

    :param context: the task's context.
    :param outlets: the task's outlets.
    :param result: the fleet backup operator's result (``summary`` and ``instances``).
    """
    summary = result["summary"]
    events = context["outlet_events"]
    aliases = [o for o in outlets if isinstance(o, AssetAlias)]
    for row in result["instances"] if aliases else ():
        if row["status"] != "succeeded":
            continue
        source = parse_source_instance(row["instance"], default_project=None)
        extra = {
            "name": row["image"],
            "project_id": summary["project_id"],
            "source_instance": row["instance"],
            "run_label": summary["run_label"],
            "status": "READY",
        }
        for alias in aliases:
            events[alias].add(machine_image_asset(source.project, source.partial_url), extra=extra)
    counts = {key: summary[key] for key in ("project_id", "run_label", "instances", "succeeded", "failed", "deferred")}
    for asset in (o for o in outlets if isinstance(o, Asset) and o.uri.startswith(f"{SCHEME}://")):
        events[asset].extra.update(counts)
