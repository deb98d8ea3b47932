"""Issue 24 item 4: arguments written literally are checked when the DAG is parsed, with the checks the
task runs before its first request; templated ones (and XComArgs, and mapped values) are left to then."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.operators import (
    ComputeEngineDeleteMachineImageOperator,
    ComputeEngineDeleteRestoredInstanceOperator,
    ComputeEngineInsertMachineImageOperator,
    ComputeEngineRestoreMachineImageOperator,
)
from airflow_machine_images.sensors import ComputeEngineMachineImageSensor

INSERT: dict[str, Any] = {"name": "img-a", "source_instance": "us-central1-a/web-1"}
RESTORE: dict[str, Any] = {"name": "drill-1", "zone": "us-central1-a", "source_machine_image": "img-a"}
BY_INSTANCE: dict[str, Any] = {"name": "drill-1", "zone": "us-central1-a", "source_instance": "us-central1-a/web-1"}


@pytest.mark.parametrize(
    ("operator", "good", "mistake", "parameter"),
    [
        (ComputeEngineInsertMachineImageOperator, INSERT, {"name": "Web_1"}, "name"),
        (ComputeEngineInsertMachineImageOperator, INSERT, {"labels": {"Team": "web"}}, "labels"),
        (ComputeEngineInsertMachineImageOperator, INSERT, {"body": {"labels": {"Team": "web"}}}, "body.labels"),
        (ComputeEngineInsertMachineImageOperator, INSERT, {"source_instance": "web-1"}, "source_instance"),
        (ComputeEngineInsertMachineImageOperator, INSERT, {"body": {"storageLocation": ["us"]}},
         "body.storageLocation"),
        (ComputeEngineInsertMachineImageOperator, INSERT, {"body": {"description": "d"}, "description": "d"},
         "body.description"),
        (ComputeEngineInsertMachineImageOperator, INSERT, {"project_id": "Bad Project"}, "project_id"),
        (ComputeEngineRestoreMachineImageOperator, RESTORE, {"name": "Web_1"}, "name"),
        (ComputeEngineRestoreMachineImageOperator, RESTORE, {"labels": {"Team": "web"}}, "labels"),
        (ComputeEngineRestoreMachineImageOperator, RESTORE, {"labels": {"restore-id": "x"}}, "labels['restore-id']"),
        (ComputeEngineRestoreMachineImageOperator, RESTORE, {"body": {"machineTyp": "e2-small"}}, "body.machineTyp"),
        (ComputeEngineRestoreMachineImageOperator, RESTORE, {"source_machine_image": "Img_A"}, "source_machine_image"),
        (ComputeEngineRestoreMachineImageOperator, BY_INSTANCE, {"source_instance": "web-1"}, "source_instance"),
        (ComputeEngineRestoreMachineImageOperator, BY_INSTANCE, {"image_project": "Bad Project"}, "image_project"),
        (ComputeEngineRestoreMachineImageOperator, BY_INSTANCE, {"image_label_selector": {"Backup": "x"}},
         "image_label_selector"),
        (ComputeEngineDeleteRestoredInstanceOperator, {"name": "drill-1", "zone": "us-central1-a"}, {"name": "Web_1"},
         "name"),
        (ComputeEngineMachineImageSensor, {"machine_image": "img-a"}, {"machine_image": "Img_A"}, "machine_image"),
        (ComputeEngineDeleteMachineImageOperator, {"name": "img-a"}, {"name": "Img_A"}, "name"),
        (ComputeEngineDeleteMachineImageOperator, {"name": "img-a"}, {"request_id": "not-a-uuid"}, "request_id"),
    ],
)  # fmt: skip
def test_a_literal_mistake_fails_when_the_dag_is_parsed_naming_the_parameter(
    operator: type, good: dict[str, Any], mistake: dict[str, Any], parameter: str
) -> None:
    operator(task_id="t", **good)  # the good arguments parse
    with pytest.raises(MachineImageValidationError) as caught:
        operator(task_id="t", **{**good, **mistake})
    assert caught.value.parameter.startswith(parameter), caught.value.parameter


@pytest.mark.parametrize(
    ("operator", "good", "templated"),
    [
        (ComputeEngineInsertMachineImageOperator, INSERT, {"name": "{{ params.name }}"}),
        (ComputeEngineInsertMachineImageOperator, INSERT, {"source_instance": "{{ params.source }}"}),
        (ComputeEngineInsertMachineImageOperator, INSERT, {"labels": {"{{ params.key }}": "x"}}),
        (ComputeEngineInsertMachineImageOperator, INSERT, {"body": {"machineImageEncryptionKey": "{{ var.key }}"}}),
        (ComputeEngineRestoreMachineImageOperator, RESTORE, {"zone": "{{ params.zone }}"}),
        (ComputeEngineRestoreMachineImageOperator, RESTORE, {"body": {"machineType": "{{ params.type }}"}}),
        (ComputeEngineRestoreMachineImageOperator, BY_INSTANCE, {"source_instance": "{{ params.source }}"}),
        (ComputeEngineMachineImageSensor, {"machine_image": "img-a"}, {"machine_image": "{{ params.image }}"}),
    ],
)
def test_a_templated_argument_is_left_until_rendered(
    operator: type, good: dict[str, Any], templated: dict[str, Any]
) -> None:
    operator(task_id="t", **{**good, **templated})


def test_the_restore_takes_one_source_and_its_options_only_with_an_instance() -> None:
    with pytest.raises(MachineImageValidationError, match="exactly one of them") as both:
        ComputeEngineRestoreMachineImageOperator(task_id="t", **RESTORE, source_instance="us-central1-a/web-1")
    assert both.value.parameter == "source_machine_image"
    with pytest.raises(MachineImageValidationError, match="exactly one of them"):
        ComputeEngineRestoreMachineImageOperator(task_id="t", name="drill-1", zone="us-central1-a")
    with pytest.raises(MachineImageValidationError, match="goes with source_instance") as alone:
        ComputeEngineRestoreMachineImageOperator(task_id="t", **RESTORE, image_project="backups")
    assert alone.value.parameter == "image_project"


@pytest.mark.parametrize("given", ["false", 0, "{{ params.protect }}"])
def test_the_restore_s_deletion_protection_is_true_false_or_none(given: object) -> None:
    """Checked when the DAG is parsed, with the rule that allows None (what the image carries)."""
    with pytest.raises(MachineImageValidationError, match="must be True, False or None") as info:
        ComputeEngineRestoreMachineImageOperator(task_id="t", **RESTORE, deletion_protection=given)
    assert info.value.parameter == "deletion_protection"
    for allowed in (True, False, None):
        ComputeEngineRestoreMachineImageOperator(task_id="t", **RESTORE, deletion_protection=allowed)


def test_the_list_operator_s_dicts_expanded_as_they_are_point_to_backup_kwargs() -> None:
    """``expand_kwargs(list_task.output)`` hands the insert operator ``zone`` and ``status`` too: instead of
    Airflow's "Invalid arguments were passed", the error names backup_kwargs (issue 24 item 6)."""
    listed = {"name": "web-1", "project_id": "p", "zone": "us-central1-a", "status": "RUNNING",
              "source_instance": "projects/p/zones/us-central1-a/instances/web-1", "labels": {}}  # fmt: skip
    with pytest.raises(MachineImageValidationError, match="backup_kwargs") as caught:
        ComputeEngineInsertMachineImageOperator(task_id="t", **listed)
    assert caught.value.parameter == "zone"
    # Unmapped when the task runs (no parse-time check then): the task fails before any request, saying the same.
    mapped = ComputeEngineInsertMachineImageOperator(task_id="t", _airflow_from_mapped=True, **listed)
    with pytest.raises(MachineImageValidationError, match="backup_kwargs"):
        mapped.prepare_request({"ti": None})  # type: ignore[arg-type]
