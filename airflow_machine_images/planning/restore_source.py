"""Which machine image a restore by source instance takes: the newest READY image of that instance. Pure.

The restore operator's ``source_instance=`` lists the image project's machine images once (one paged
``machineImages.list``) with :func:`list_filter`, then picks here. The filter only narrows: every image is
checked again on the client (READY, the same source instance by project id, zone and name whatever URL
form it is written in, the label selector), because the server may ignore or loosen a filter, and gcloud
matches labels on the client rather than send them ("server-side label matching is currently
problematic", googlecloudsdk ``api_lib/compute/filter_rewrite.py``). The newest is the one with the
latest ``creationTimestamp``, as the coverage check reads it (:func:`~.coverage.newest_ready_images`).

A retry keeps the earlier try's choice (:func:`image_restored_by`): the server answers the retry's
insert (same task instance, same ``requestId``) with the earlier try's operation, whose instance was
made from the image chosen then, even if a newer one has become READY since.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_machine_images.bodies.instance import RESTORE_DAG_LABEL, RESTORE_ID_LABEL, is_restored, labels_of
from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.flows.request_ids import dag_key
from airflow_machine_images.planning.coverage import newest_ready_images
from airflow_machine_images.validation import parse_machine_image_ref

if TYPE_CHECKING:
    from collections.abc import Iterable

    from airflow_machine_images.validation.references import InstanceRef

__all__ = ["image_restored_by", "list_filter", "newest_image_of"]


def list_filter(source: InstanceRef) -> str:
    """The ``machineImages.list`` filter for READY images of ``source``.

    The regular-expression form (``eq``), which matches the whole value: ``sourceInstance`` is a URL whose
    host and API version depend on the request (discovery ``filter`` text: the ``eq`` form takes "multiple
    parenthesized expressions"). A project id's dots are written ``[.]`` (no backslash to quote). A source
    given by project number or instance id is narrowed by status only: the server writes ids and names.

    :param source: the source instance.
    """
    status = '(status eq "READY")'
    if source.project.isdigit() or source.instance.isdigit():
        return status
    project = source.project.replace(".", "[.]")
    return f'{status}(sourceInstance eq ".*/projects/{project}/zones/{source.zone}/instances/{source.instance}")'


def newest_image_of(
    images: Iterable[Mapping[str, Any]], source: InstanceRef, labels: Mapping[str, str]
) -> Mapping[str, Any] | None:
    """The newest READY image of ``source`` carrying every one of ``labels``, or None.

    :param images: MachineImage resources as listed (any order, any URL form).
    :param source: the source instance, as the API names it (project id, instance name).
    :param labels: labels the image must carry, with these values.
    """
    carrying = [
        image
        for image in images
        if isinstance(image.get("labels") or {}, Mapping)
        and all((image.get("labels") or {}).get(key) == value for key, value in labels.items())
    ]
    return newest_ready_images(carrying).get(source.partial_url)


def image_restored_by(instance: Mapping[str, Any], *, dag_id: str, restore_id: str) -> tuple[str, str] | None:
    """The machine image ``instance`` was restored from, as ``(project, name)``, if this very restore made it.

    It counts as this restore's only when it carries the restore labels of this DAG and of this task
    instance (``restore-id``: its key, the same on every try). The image is read from the instance's
    ``sourceMachineImage``, which the server sets, not from the ``restored-from`` label.

    :param instance: the Instance resource found under the restore's name.
    :param dag_id: the restoring task's DAG id.
    :param restore_id: the restoring task instance's key.
    :return: None when another restore, or no restore of this package, made the instance.
    """
    labels = labels_of(instance)
    if not is_restored(instance) or labels.get(RESTORE_ID_LABEL) != restore_id:
        return None
    if labels.get(RESTORE_DAG_LABEL) != dag_key(dag_id):
        return None
    try:
        return parse_machine_image_ref(instance.get("sourceMachineImage"), default_project=None)
    except MachineImageValidationError:
        return None
