"""The JSON summaries operators return (XCom): identifiers and facts, never key material.

Every operator's return value (and the coverage check's ``coverage`` XCom) is built here, so what a
downstream task can read is written down in one module: the create and delete summaries, the operation
sensor's, retention's, the fleet list's and the coverage check's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.links import instance_console_url, machine_image_console_url
from airflow_machine_images.planning.coverage import MISSING, STALE, format_age
from airflow_machine_images.validation import parse_source_instance

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import timedelta

    from airflow_machine_images.planning.coverage import CoverageRow
    from airflow_machine_images.planning.retention import RetentionPlan


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def machine_image_summary(
    *,
    project_id: str,
    name: str,
    request_id: str | None,
    operation: Mapping[str, Any] | None,
    image: Mapping[str, Any] | None,
    reused: bool = False,
    replayed: bool = False,
) -> dict[str, Any]:
    """Summarise a created (or reused) machine image for XCom.

    :param project_id: the image's project.
    :param name: the image name.
    :param request_id: the requestId the insert carried (None when an existing image was reused).
    :param operation: the insert operation, if one was made.
    :param image: the MachineImage resource, once read back.
    :param reused: an existing image was reused instead of created.
    :param replayed: the server answered the requestId with an earlier submission's operation.
    """
    operation = operation or {}
    summary: dict[str, Any] = {
        "project_id": project_id,
        "name": name,
        "self_link": (image or {}).get("selfLink") or operation.get("targetLink"),
        "operation_name": operation.get("name"),
        "request_id": request_id,
        "status": (image or {}).get("status") or "CREATING",
        "reused": reused,
        "replayed": replayed,
        "console_url": machine_image_console_url(project_id, name),
    }
    if image is not None:
        summary.update(
            {
                "id": image.get("id"),
                "source_instance": image.get("sourceInstance"),
                "total_storage_bytes": _int_or_none(image.get("totalStorageBytes")),
                "creation_timestamp": image.get("creationTimestamp"),
                "storage_locations": list(image.get("storageLocations") or []),
                "labels": dict(image.get("labels") or {}),
            }
        )
    return summary


def restored_instance_summary(
    *,
    project_id: str,
    zone: str,
    name: str,
    source_machine_image: str,
    request_id: str | None,
    operation: Mapping[str, Any] | None,
    instance: Mapping[str, Any] | None,
    reused: bool = False,
    replayed: bool = False,
    restore_id: str | None = None,
) -> dict[str, Any]:
    """The restore operator's XCom: identifiers and facts, never the body.

    :param project_id: the instance's project.
    :param zone: its zone.
    :param name: its name.
    :param source_machine_image: the image restored, as a partial URL.
    :param request_id: the requestId the insert carried (None when an existing instance was reused).
    :param operation: the zonal insert operation, if one was made.
    :param instance: the Instance resource, once read back.
    :param reused: an existing instance was reused instead of created.
    :param replayed: the server answered the requestId with an earlier submission's operation.
    :param restore_id: the ``restore-id`` label binding the instance to the restore that made it (pass it to
        the delete-restored operator to delete exactly that instance).
    """
    operation, instance = operation or {}, instance or {}
    labels = instance.get("labels")
    restore_label = labels.get("restore-id") if isinstance(labels, dict) else None
    return {
        "project_id": project_id,
        "zone": zone,
        "name": name,
        "self_link": instance.get("selfLink") or operation.get("targetLink"),
        "operation_name": operation.get("name"),
        "request_id": request_id,
        "status": instance.get("status") or "PROVISIONING",
        "source_machine_image": source_machine_image,
        "id": instance.get("id"),
        "restore_id": restore_label or restore_id,
        "deletion_protection": instance.get("deletionProtection"),
        "disks": [
            {"name": str(d.get("source") or "").rsplit("/", 1)[-1], "auto_delete": d.get("autoDelete")}
            for d in instance.get("disks") or []
            if isinstance(d, dict)
        ],
        "reused": reused,
        "replayed": replayed,
        "console_url": instance_console_url(project_id, zone, name),
    }


def chosen_image_summary(project_id: str, chosen_for: str, image: Mapping[str, Any]) -> dict[str, Any]:
    """The image a restore by source instance chose (kept as an XCom of the restore, and in its result).

    :param project_id: the project the image is in.
    :param chosen_for: the source instance asked for, as ``projects/P/zones/Z/instances/I``.
    :param image: the MachineImage resource chosen.
    """
    return {
        "project_id": project_id,
        "name": str(image.get("name")),
        "creation_timestamp": image.get("creationTimestamp"),
        "source_instance": image.get("sourceInstance"),
        "labels": dict(image.get("labels") or {}),
        "for": chosen_for,
    }


def with_chosen_image(summary: Mapping[str, Any], chosen: Mapping[str, Any] | None) -> dict[str, Any]:
    """The restore's result with the image it chose (``chosen_image``; None when the image was named).

    :param summary: :func:`restored_instance_summary`.
    :param chosen: :func:`chosen_image_summary`, or None.
    """
    return {**summary, "chosen_image": dict(chosen) if chosen else None}


def delete_summary(
    project_id: str,
    name: str,
    *,
    deleted: bool,
    operation: Mapping[str, Any] | None,
    request_id: str | None,
    image_id: str | None = None,
) -> dict[str, Any]:
    """The delete operator's XCom.

    :param project_id: the project.
    :param name: the image name.
    :param deleted: whether this task deleted it (False: it was already gone).
    :param operation: the delete operation, if one was made.
    :param request_id: the requestId sent.
    :param image_id: the numeric id of the image checked and deleted (None if it was already gone).
    """
    return {
        "project_id": project_id,
        "name": name,
        "id": image_id,
        "deleted": deleted,
        "operation_name": (operation or {}).get("name"),
        "request_id": request_id,
    }


def disk_delete_summary(
    *, project_id: str, zone: str, name: str, disk_id: str | None, operation: Mapping[str, Any] | None
) -> dict[str, Any]:
    """One disk's delete (the delete-restored operator lists the names of those it deleted).

    :param project_id: the project.
    :param zone: the zone.
    :param name: the disk's name.
    :param disk_id: the numeric id of the disk deleted (None if it was already gone).
    :param operation: the zonal delete operation, if one was made.
    """
    return {
        "project_id": project_id,
        "zone": zone,
        "name": name,
        "id": disk_id,
        "deleted": operation is not None,
        "operation_name": (operation or {}).get("name"),
    }


def restored_instance_delete_summary(
    *,
    project_id: str,
    zone: str,
    name: str,
    instance_id: str | None,
    operation: Mapping[str, Any] | None,
    request_id: str | None,
    cleanup: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The delete-restored operator's XCom: the instance, and the disks it left (``disks_deleted``: names;
    ``disks_kept``: ``{"name", "why"}`` of disks not proven the restore's; ``disks_pending``: names still
    attached when the task returned without waiting).

    :param project_id: the project.
    :param zone: the zone.
    :param name: the instance name.
    :param instance_id: the numeric id of the instance deleted (None if it was already gone).
    :param operation: the zonal delete operation, if one was made.
    :param request_id: the requestId sent.
    :param cleanup: what was done with the disks it left (the delete flow's ``finish``).
    """
    cleanup = cleanup or {}
    return {
        "project_id": project_id,
        "zone": zone,
        "name": name,
        "id": instance_id,
        "deleted": operation is not None,
        "operation_name": (operation or {}).get("name"),
        "status": operation.get("status") if operation is not None else "NOT_FOUND",
        "request_id": request_id,
        "disks_deleted": list(cleanup.get("disks_deleted") or []),
        "disks_kept": [dict(kept) for kept in cleanup.get("disks_kept") or []],
        "disks_pending": list(cleanup.get("disks_pending") or []),
    }


def boot_check_summary(
    *,
    project_id: str,
    zone: str,
    instance: str,
    port: int,
    line: str,
    position: int,
    skipped: int,
    reads: int,
) -> dict[str, Any]:
    """The XCom of a boot check that saw its boot line.

    :param project_id: the instance's project.
    :param zone: its zone.
    :param instance: its name or numeric id, as read.
    :param port: the serial port read.
    :param line: the console line that matched (cleaned, bounded).
    :param position: the ``next`` of the last answer: how far the console was read.
    :param skipped: bytes the service had discarded before they could be read.
    :param reads: ``getSerialPortOutput`` answers taken (of this wait; a resumed task counts the triggerer's).
    """
    return {
        "project_id": project_id,
        "zone": zone,
        "instance": instance,
        "port": port,
        "booted": True,
        "matched_line": line,
        "console_bytes_read": position,
        "console_bytes_skipped": skipped,
        "reads": reads,
    }


def operation_summary(project_id: str, operation: Mapping[str, Any]) -> dict[str, Any]:
    """The operation sensor's XCom.

    :param project_id: the project.
    :param operation: the (possibly trimmed) Operation.
    """
    return {
        "project_id": project_id,
        "operation_name": operation.get("name"),
        "status": operation.get("status"),
        "operation_type": operation.get("operationType"),
        "target_link": operation.get("targetLink"),
        "end_time": operation.get("endTime"),
    }


def retention_summary(
    project_id: str,
    plan: RetentionPlan,
    *,
    dry_run: bool,
    deleted: list[str] | None,
    skipped: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The retention operator's XCom: ``project_id``, ``dry_run``, ``deleted``, ``kept`` (with ``kept_by``:
    name -> the rules that keep it), ``not_ready``, ``skipped`` (with ``why_skipped``: name -> reason),
    ``unmanaged``, ``by_source``, and in a dry run ``would_delete``.

    :param project_id: the project.
    :param plan: the retention plan.
    :param dry_run: whether nothing was deleted on purpose.
    :param deleted: the names deleted (None in a dry run).
    :param skipped: names planned for deletion but left alone, and why (changed since the listing, or a
        delete the server's answer would have had to submit again).
    """
    why = {name: "it changed while it was listed" for name in plan.skipped}
    why.update(skipped or {})
    summary: dict[str, Any] = {
        "project_id": project_id,
        "dry_run": dry_run,
        "not_ready": plan.not_ready,
        "skipped": sorted(why),
        "why_skipped": dict(sorted(why.items())),
        "unmanaged": plan.unmanaged,
        "by_source": plan.by_source,
        "deleted": sorted(deleted or []),
        "kept": plan.keep,
        "kept_by": dict(sorted(plan.kept_by.items())),
    }
    if dry_run:
        summary["would_delete"] = plan.delete
    return summary


def listed_instance_summary(project_id: str, zone: str, instance: Mapping[str, Any]) -> dict[str, Any]:
    """What the list operator returns per instance: ``{"project_id", "zone", "name", "source_instance",
    "labels", "status"}``.

    The project id and name come from the instance's ``selfLink`` when it has one (the API writes
    the project id there even when the request named the project by number), so the
    ``source_instance`` compares equal with an image's ``sourceInstance``.

    :param project_id: the project listed (used when the instance has no readable ``selfLink``).
    :param zone: the instance's zone (from the scope).
    :param instance: an Instance resource.
    """
    project, name = project_id, str(instance["name"])
    try:
        ref = parse_source_instance(instance.get("selfLink"), default_project=project_id)
        project, zone, name = ref.project, ref.zone, ref.instance
    except MachineImageValidationError:
        pass
    labels = instance.get("labels")
    return {
        "project_id": project,
        "zone": zone,
        "name": name,
        "source_instance": f"projects/{project}/zones/{zone}/instances/{name}",
        "labels": dict(labels) if isinstance(labels, Mapping) else {},
        "status": str(instance.get("status") or "UNKNOWN"),
    }


def listed_instances_summary(instances: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The list operator's XCom: the :func:`listed_instance_summary` of each selected instance, by zone and name.

    :param instances: the selected instances' summaries, in any order.
    """
    return sorted(instances, key=lambda i: (i["zone"], i["name"], i["project_id"]))


def coverage_row_summary(row: CoverageRow) -> dict[str, Any]:
    """One row of the coverage check's XCom: ``{"instance", "status", "newest_image", "created",
    "age_seconds", "age", "size_bytes"}``.

    :param row: the instance's coverage row.
    """
    return {
        "instance": row.instance,
        "status": row.status,
        "newest_image": row.newest_image,
        "created": row.created,
        "age_seconds": None if row.age_seconds is None else round(row.age_seconds),
        "age": None if row.age_seconds is None else format_age(row.age_seconds),
        "size_bytes": row.size_bytes,
    }


def coverage_summary(
    *, project_id: str, backup_project_id: str, max_age: timedelta, rows: Sequence[CoverageRow]
) -> dict[str, Any]:
    """The coverage check's XCom (returned, and pushed as ``coverage``): ``{"project_id",
    "backup_project_id", "max_age_seconds", "checked", "ok", "stale", "missing", "rows"}``.

    :param project_id: the instances' project.
    :param backup_project_id: the project holding the images.
    :param max_age: the oldest a newest image may be.
    :param rows: one coverage row per selected instance, in order.
    """
    stale = [row.instance for row in rows if row.status == STALE]
    missing = [row.instance for row in rows if row.status == MISSING]
    return {
        "project_id": project_id,
        "backup_project_id": backup_project_id,
        "max_age_seconds": max_age.total_seconds(),
        "checked": len(rows),
        "ok": len(rows) - len(stale) - len(missing),
        "stale": stale,
        "missing": missing,
        "rows": [coverage_row_summary(row) for row in rows],
    }


def fleet_backup_row(
    *, instance: str, image: str, status: str, error: str | None = None, replayed: bool = False
) -> dict[str, Any]:
    """One instance of the fleet backup operator's XCom: ``{"instance", "image", "status", "error", "replayed"}``.

    :param instance: the instance, ``projects/P/zones/Z/instances/I``.
    :param image: its image's name (in the summary's ``project_id``).
    :param status: ``succeeded`` (the image is READY), ``failed`` or ``deferred`` (the per-source limit:
        the next run backs it up).
    :param error: why it is not backed up (None when it is).
    :param replayed: the server answered its insert with an earlier try's operation.
    """
    return {"instance": instance, "image": image, "status": status, "error": error, "replayed": replayed}


def fleet_backup_summary(
    *,
    project_id: str,
    run_label: str,
    rows: Sequence[Mapping[str, Any]],
    verdict: str | None,
    submissions: int,
    deferrals: int,
) -> dict[str, Any]:
    """The fleet backup operator's XCom: ``{"summary": {...}, "instances": [rows]}``.

    The summary holds ``project_id`` (where the images are), ``run_label`` (the ``airflow-ti`` label
    value every image of the run carries), ``instances``, ``succeeded``, ``failed``, ``deferred``,
    ``replayed``, ``success_fraction`` (succeeded among succeeded and failed), ``failed_instances``,
    ``deferred_instances``, ``submissions`` (inserts sent by this try), ``deferrals`` (times the task
    handed its wait to the triggerer) and ``verdict`` (why the task fails, or None).

    :param project_id: the backup project.
    :param run_label: the run's label value.
    :param rows: :func:`fleet_backup_row` per instance, sorted by instance.
    :param verdict: the policy's reason to fail the task, or None.
    :param submissions: inserts this try sent.
    :param deferrals: deferrals of this try.
    """
    counts = {
        status: sum(1 for row in rows if row["status"] == status) for status in ("succeeded", "failed", "deferred")
    }
    decided = counts["succeeded"] + counts["failed"]
    return {
        "summary": {
            "project_id": project_id,
            "run_label": run_label,
            "instances": len(rows),
            **counts,
            "replayed": sum(1 for row in rows if row.get("replayed")),
            "success_fraction": round(counts["succeeded"] / decided, 4) if decided else 1.0,
            "failed_instances": [row["instance"] for row in rows if row["status"] == "failed"],
            "deferred_instances": [row["instance"] for row in rows if row["status"] == "deferred"],
            "submissions": submissions,
            "deferrals": deferrals,
            "verdict": verdict,
        },
        "instances": [dict(row) for row in rows],
    }
