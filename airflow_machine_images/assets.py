"""Airflow assets for machine images: a DAG can be scheduled on new images.

The ``gce-machine-image`` URI scheme names the images kept in one project: all of them,
``gce-machine-image://PROJECT``, or those of one source instance, ``gce-machine-image://PROJECT/zones/ZONE/
instances/INSTANCE`` (an instance of that project) or ``gce-machine-image://PROJECT/projects/SOURCE_PROJECT/
zones/ZONE/instances/INSTANCE`` (an instance of another project: images kept in a backup project).

The insert operator attaches each image it makes (self link, source instance, size, request id) to the
events of its outlets of this scheme, and adds one event on the asset of the instance imaged to each
``AssetAlias`` outlet. A per-instance ``Asset`` outlet fires whenever its task succeeds (Airflow's rule),
so the insert operator refuses one naming another instance or project than the image's, before any
request: a mapped task (one image per instance) takes an ``AssetAlias`` instead, and each mapped task
then fires only the asset of the instance whose image it made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import Asset, AssetAlias

from airflow_machine_images.compat import airflow_major
from airflow_machine_images.validation import (
    InstanceRef,
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
    """The asset of the machine images kept in a project, or of those of one source instance.

    :param project_id: the project the images are kept in (a backup project, say).
    :param source_instance: ``ZONE/INSTANCE`` (an instance of ``project_id``) or
        ``projects/P/zones/Z/instances/I`` (any project's, e.g. a workload project's instance whose images
        are kept in a backup project), or None for every image of the project.
    :param name: the asset's name (defaults to its URI); on Airflow 2 an asset is a ``Dataset``, which
        has no name apart from its URI, so ``name`` is not used there.
    """
    project = validate_project_id(project_id)
    uri = f"{SCHEME}://{project}"
    if source_instance is not None:
        ref = parse_source_instance(source_instance, default_project=project)
        # An instance of the images' own project keeps the short form (the URIs of earlier releases).
        uri += "" if ref.project == project else f"/projects/{ref.project}"
        uri += f"/zones/{ref.zone}/instances/{ref.instance}"
    if airflow_major() < 3:  # a Dataset: its URI is its name
        return Asset(uri=uri)
    return Asset(uri=uri, name=name or uri)


def asset_images(uri: str) -> tuple[str, InstanceRef | None] | None:
    """What a ``gce-machine-image`` URI names: the images' project and the source instance (None: every
    image of the project); None for a URI of another scheme.

    :param uri: an asset's URI.
    """
    if not uri.startswith(f"{SCHEME}://"):
        return None
    project, _, path = uri[len(SCHEME) + 3 :].partition("/")
    if not path:
        return validate_project_id(project, "outlets"), None
    source = path if path.startswith("projects/") else f"projects/{project}/{path}"
    return validate_project_id(project, "outlets"), parse_source_instance(source, None, parameter="outlets")


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Check a ``gce-machine-image`` URI (registered with Airflow under ``asset-uris``).

    :param uri: the split URI.
    :raises ValueError: the URI is not one of the two forms.
    """

    parts = [p for p in uri.path.split("/") if p]
    try:
        validate_project_id(uri.netloc, "project")
        if len(parts) == 6 and parts[0] == "projects":  # an instance of another project
            validate_project_id(parts[1], "project")
            parts = parts[2:]
        if parts:
            if len(parts) != 4 or parts[0] != "zones" or parts[2] != "instances":
                raise ValueError(
                    f"{SCHEME} URI path must be /zones/ZONE/instances/INSTANCE or "
                    f"/projects/PROJECT/zones/ZONE/instances/INSTANCE, got {uri.path!r}"
                )
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


def check_outlets(outlets: Iterable[object], project_id: str, source: InstanceRef) -> None:
    """Refuse a per-instance ``gce-machine-image`` outlet that is not the asset of this image.

    Airflow records an event on every ``Asset`` outlet of a task that succeeds: the asset of another
    instance (or of another project's images) would be told of an image that is not its own, on each
    mapped task of a fleet. Run before any request.

    :param outlets: the task's outlets.
    :param project_id: the project the image is made in.
    :param source: its source instance (a project number or instance id is not compared: only the API
        knows which names they stand for).
    :raises MachineImageValidationError: naming ``outlets[i]``, and ``AssetAlias`` as the way out.
    """
    for index, outlet in enumerate(outlets):
        named = asset_images(outlet.uri) if isinstance(outlet, Asset) else None
        if named is None or not isinstance(outlet, Asset):
            continue
        project, instance = named
        numeric = any(part.isdigit() for part in (project, project_id, source.project, source.instance))
        if numeric or (project == project_id and (instance is None or instance.same_instance(source))):
            continue
        raise MachineImageValidationError(
            f"outlets[{index}]",
            f"is {outlet.uri}, but this task makes an image of {source.partial_url} in project {project_id}: "
            "Airflow would record an event on it all the same; for a mapped task (one image per instance) use "
            "an AssetAlias outlet, which gets an event on the asset of the instance imaged",
        )


def record_outlet_events(context: Context, outlets: Iterable[object], summary: Mapping[str, Any]) -> None:
    """Put the image's facts into the extra of every ``gce-machine-image`` outlet's event, and add an event
    on the asset of the instance imaged (:func:`machine_image_asset`) to every ``AssetAlias`` outlet.

    :param context: the task's context.
    :param outlets: the task's outlets.
    :param summary: the insert operator's result.
    """
    outlets = list(outlets)
    ours = [o for o in outlets if isinstance(o, Asset) and o.uri.startswith(f"{SCHEME}://")]
    aliases = [o for o in outlets if isinstance(o, AssetAlias)]
    if not ours and not aliases:
        return
    extra = {key: summary.get(key) for key in EVENT_EXTRA_KEYS}
    events = context["outlet_events"]
    for asset in ours:
        events[asset].extra.update(extra)
    if aliases:
        imaged = machine_image_asset(str(summary["project_id"]), str(summary["source_instance"]))
        for alias in aliases:
            events[alias].add(imaged, extra=extra)


def record_fleet_outlet_events(context: Context, outlets: Iterable[object], result: Mapping[str, Any]) -> None:
    """The fleet backup's asset events: one per image made, and the run's counts on its own assets.

    Every ``AssetAlias`` outlet gets one event per succeeded instance, on the ``gce-machine-image`` asset
    of that source instance's images in the backup project (:func:`machine_image_asset`), with the image's
    name, project, source and run label as extra; every ``gce-machine-image`` asset outlet gets one event
    with the run's counts.

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
        extra = {
            "name": row["image"],
            "project_id": summary["project_id"],
            "source_instance": row["instance"],
            "run_label": summary["run_label"],
            "status": "READY",
        }
        for alias in aliases:
            events[alias].add(machine_image_asset(summary["project_id"], row["instance"]), extra=extra)
    counts = {key: summary[key] for key in ("project_id", "run_label", "instances", "succeeded", "failed", "deferred")}
    for asset in (o for o in outlets if isinstance(o, Asset) and o.uri.startswith(f"{SCHEME}://")):
        events[asset].extra.update(counts)
