"""The labels every machine image we make carries by default, and how they join the user's labels."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_machine_images.flows.request_ids import TaskInstanceIdentity, task_instance_key
from airflow_machine_images.validation import MAX_LABELS, sanitize_label_value

if TYPE_CHECKING:
    from collections.abc import Mapping

#: Default label marking images made by this package (retention prunes only images carrying it, unless told).
MANAGED_BY_LABEL = "managed-by"
#: Its value.
MANAGED_BY_VALUE = "airflow"
#: Default label holding the task-instance key of the task that made the image.
OWNER_LABEL = "airflow-ti"


def owner_label_filter(owner_key: str) -> str:
    """The list filter of the images carrying ``owner_key`` in their :data:`OWNER_LABEL` (a hex key: no quotes).

    Label filters are matched again on every answer by whoever sends this: gcloud never sends them to
    the server ("server-side label matching is currently problematic", googlecloudsdk
    ``api_lib/compute/filter_rewrite.py``), so a server that ignored it must not change the result.

    :param owner_key: a task-instance key (:func:`~airflow_machine_images.flows.request_ids.task_instance_key`).
    """
    return f'(labels.{OWNER_LABEL} = "{owner_key}")'


def default_labels(identity: TaskInstanceIdentity) -> dict[str, str]:
    """The labels every image we make carries unless the user overrides them.

    They make images findable and traceable to the DAG and task that made them, and let an
    image left by an earlier try of the same task instance be recognised as its own.

    :param identity: the task instance.
    """
    return {
        MANAGED_BY_LABEL: MANAGED_BY_VALUE,
        "airflow-dag": sanitize_label_value(identity.dag_id),
        "airflow-task": sanitize_label_value(identity.task_id),
        OWNER_LABEL: task_instance_key(identity),
    }


def merge_default_labels(labels: Mapping[str, str], defaults: Mapping[str, str]) -> dict[str, str]:
    """The user's labels plus as many default labels as the 64-label limit leaves room for.

    The user's labels win, on a shared key and for room: valid labels are never rejected because of
    the defaults. Defaults are kept in order of use: the task-instance key (a retry recognises its
    image by it), ``managed-by`` (retention selects on it), then the others.

    :param labels: the user's (validated) labels.
    :param defaults: :func:`default_labels`.
    """
    wanted = [key for key in defaults if key not in labels]
    wanted.sort(key=lambda key: (key != OWNER_LABEL, key != MANAGED_BY_LABEL))
    kept = wanted[: max(0, MAX_LABELS - len(labels))]
    return {**{key: defaults[key] for key in kept}, **labels}
