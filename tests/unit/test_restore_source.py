"""Which image a retried restore by source instance keeps: the one its earlier try restored (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_machine_images.bodies.instance import RESTORE_DAG_LABEL, RESTORED_BY_LABEL, restore_labels
from airflow_machine_images.planning.restore_source import image_restored_by

RESTORE_ID = "a" * 32
IMAGE_URL = "https://compute.googleapis.com/compute/beta/projects/backups/global/machineImages/web-1-monday"
#: The labels this restore (DAG ``drill``, task-instance key ``RESTORE_ID``) gives what it restores.
MINE = restore_labels("web-1-monday", dag_id="drill", restore_id=RESTORE_ID)


def instance(labels: dict[str, str], source: object = IMAGE_URL) -> dict[str, Any]:
    return {"name": "drill-1", "sourceMachineImage": source, "labels": labels}


def test_this_restore_s_instance_names_the_image_it_was_made_from() -> None:
    assert image_restored_by(instance(MINE), dag_id="drill", restore_id=RESTORE_ID) == ("backups", "web-1-monday")


@pytest.mark.parametrize(
    ("labels", "source"),
    [
        pytest.param(restore_labels("web-1-monday", dag_id="drill", restore_id="b" * 32), IMAGE_URL, id="other-key"),
        pytest.param(restore_labels("web-1-monday", dag_id="other", restore_id=RESTORE_ID), IMAGE_URL, id="other-dag"),
        pytest.param({**MINE, RESTORED_BY_LABEL: "me"}, IMAGE_URL, id="not-restored-by-us"),
        pytest.param({**MINE, RESTORE_DAG_LABEL: ""}, IMAGE_URL, id="no-dag"),
        pytest.param(MINE, None, id="no-source"),
        pytest.param(MINE, "not a url", id="bad-source"),
        pytest.param({}, IMAGE_URL, id="no-labels"),
    ],
)
def test_anything_else_is_not_this_restore_s(labels: dict[str, str], source: object) -> None:
    assert image_restored_by(instance(labels, source), dag_id="drill", restore_id=RESTORE_ID) is None
