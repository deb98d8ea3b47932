"""The fleet backup's pure parts: instances and image names, outcomes and the policy, when the trigger
hands back, the table kept across deferrals, and the trigger row's size whatever the fleet's."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from airflow_machine_images.compat import AirflowFailException, TaskDeferred
from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.flows.fleet_backup import FleetBackup, Submission, read_outcomes
from airflow_machine_images.flows.request_ids import TaskInstanceIdentity
from airflow_machine_images.operators import ComputeEngineFleetBackupOperator
from airflow_machine_images.planning.fleet_backup import (
    DEFERRED,
    FAILED,
    FleetPolicy,
    RunProgress,
    check_image_name_template,
    plan_backups,
    read_instances,
    render_image_name,
)
from airflow_machine_images.validation import parse_source_instance

RUN = "0123abcd"
IDENTITY = TaskInstanceIdentity("dag", "backup", "manual__1")


# ---------------------------------------------------------------- instances


def test_instances_come_from_the_list_operators_xcom_references_or_their_text() -> None:
    listed = [
        {
            "project_id": "p",
            "zone": "us-east1-b",
            "name": "db-1",
            "source_instance": "projects/p/zones/us-east1-b/instances/db-1",
        },
        {"source_instance": "projects/p/zones/us-central1-a/instances/web-1"},
    ]
    refs = read_instances([*listed, "us-central1-a/web-1", {"instance": "zones/us-east1-b/instances/db-1"}], "p")
    assert [ref.partial_url for ref in refs] == [
        "projects/p/zones/us-central1-a/instances/web-1",  # sorted, each once
        "projects/p/zones/us-east1-b/instances/db-1",
    ]
    assert read_instances(json.dumps(["us-central1-a/web-1"]), "p") == refs[:1]
    assert read_instances(str(["us-central1-a/web-1"]), "p") == refs[:1]  # a list rendered with str()


@pytest.mark.parametrize(
    ("value", "parameter"),
    [
        ({"source_instance": "us-central1-a/web-1"}, "instances"),
        ("not a list", "instances"),
        (["us-central1-a/web-1", "Bad Zone/x"], "instances[1]"),
        ([{"name": "web-1"}], "instances[0]"),
        ([42], "instances[0]"),
    ],
)
def test_instances_that_name_no_instance_are_refused_naming_the_entry(value: object, parameter: str) -> None:
    with pytest.raises(MachineImageValidationError) as caught:
        read_instances(value, "p")
    assert caught.value.parameter == parameter


# ---------------------------------------------------------------- image names


def test_image_names_fill_the_placeholders_and_cut_the_instance_name_to_fit() -> None:
    web = parse_source_instance("projects/p/zones/us-central1-a/instances/web-1", default_project=None)
    assert render_image_name("{instance}-{run}-{hash}", web, RUN).startswith("web-1-0123abcd-")
    assert render_image_name("{project}-{zone}-{instance}", web, RUN) == "p-us-central1-a-web-1"
    long = parse_source_instance(f"projects/p/zones/us-central1-a/instances/{'a' * 63}", default_project=None)
    name = render_image_name("{instance}-{run}-{hash}", long, RUN)
    assert len(name) == 63 and name.startswith("a" * 47 + "-0123abcd-")


@pytest.mark.parametrize("template", ["{instance}-{date}", "{instance.__class__}", "", "{}"])
def test_unknown_placeholders_are_refused_naming_image_name(template: str) -> None:
    with pytest.raises(MachineImageValidationError) as caught:
        check_image_name_template(template)
    assert caught.value.parameter == "image_name"


def test_two_instances_with_one_image_name_are_refused_before_any_insert() -> None:
    refs = read_instances(["us-central1-a/web-1", "us-east1-b/web-1"], "p")
    with pytest.raises(MachineImageValidationError, match=r"add \{hash\} or \{zone\}") as caught:
        plan_backups(refs, "{instance}-nightly", RUN)
    assert caught.value.parameter == "image_name"
    assert len({item.image for item in plan_backups(refs, "{instance}-{hash}", RUN)}) == 2
    with pytest.raises(MachineImageValidationError, match="no valid machine image name"):
        plan_backups(refs[:1], "Backup-{instance}", RUN)


# ---------------------------------------------------------------- outcomes and policy


def test_the_policy_fails_on_any_failure_or_below_a_fraction_deferred_never_count() -> None:
    assert FleetPolicy().verdict({"succeeded": 99, "failed": 1}) == "1 instance(s) failed (fail_on='any')"
    assert FleetPolicy().verdict({"succeeded": 90, "deferred": 10}) is None
    fraction = FleetPolicy("fraction", 0.95)
    assert fraction.verdict({"succeeded": 95, "failed": 5}) is None
    assert "94.0%" in str(fraction.verdict({"succeeded": 94, "failed": 6}))
    assert fraction.verdict({"deferred": 3}) is None


# ---------------------------------------------------------------- when the trigger hands back


def test_the_trigger_hands_back_once_nothing_is_on_the_way_and_every_image_is_accounted_for() -> None:
    progress = RunProgress(expected=3)
    assert not progress.take({"a": "CREATING", "b": "CREATING", "c": "READY"}, complete=True)
    assert not progress.take({"a": "READY", "b": "UPLOADING", "c": "READY"}, complete=True)
    # b failed: its image is gone, and it stays counted among those seen
    assert progress.take({"a": "READY", "c": "READY"}, complete=True)


def test_a_partial_list_never_hands_back_and_an_unseen_failure_settles_after_two_quiet_cycles() -> None:
    progress = RunProgress(expected=3)
    assert not progress.take({"a": "READY"}, complete=False)  # items may be missing: no evidence
    assert not progress.take({"a": "READY", "b": "READY"}, complete=True)  # c failed before any list saw it
    assert progress.take({"a": "READY", "b": "READY"}, complete=True)
    stuck = RunProgress(expected=1, max_warned_cycles=3)  # every list warns: the task looks by name
    assert [stuck.take({"a": "CREATING"}, complete=False) for _ in range(3)] == [False, False, True]


def test_a_refill_round_hands_back_once_few_enough_are_on_the_way() -> None:
    progress = RunProgress(expected=10, pending_at_most=2)
    assert not progress.take({n: "CREATING" for n in "abc"}, complete=True)
    assert progress.take({"a": "READY", "b": "CREATING", "c": "CREATING"}, complete=True)


# ---------------------------------------------------------------- the table and the trigger row


def fleet_of(count: int) -> FleetBackup:
    refs = read_instances([f"us-central1-a/vm-{n:05d}" for n in range(count)], "p")
    items = plan_backups(refs, "{instance}-{run}-{hash}", RUN)
    return FleetBackup.plan(project_id="backups", run_label="ab" * 16, identity=IDENTITY, body={}, items=items)


def test_the_table_survives_a_deferral_as_json() -> None:
    fleet = fleet_of(3)
    first = fleet.rows()[0]
    first.sent, first.operation, first.generation = True, "operation-1", 2
    fleet.rows()[1].finish(FAILED, "INTERNAL_ERROR")
    kept = json.loads(json.dumps(fleet.to_json()))
    back = FleetBackup.from_json(kept, IDENTITY)
    assert back.table == fleet.table and back.run_label == fleet.run_label
    assert [row.instance for row in back.in_flight()] == [first.instance]
    assert back.request(first).request_ids(2) == fleet.request(first).request_ids(2)
    assert back.request(first).request_ids(0) != fleet.request(fleet.rows()[2]).request_ids(0)


class _TI:
    dag_id, task_id, run_id, map_index, try_number = "dag", "backup", "manual__1", -1, 1

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def stored_trigger_row(count: int) -> tuple[int, int]:
    """(bytes of the trigger's serialized kwargs, bytes of the table XCom) when ``count`` instances defer."""
    operator = ComputeEngineFleetBackupOperator(
        task_id="backup", instances=["us-central1-a/web-1"], deferrable=True, project_id="p", max_in_flight=count
    )
    fleet = fleet_of(count)
    for n, row in enumerate(fleet.rows()):
        row.sent, row.operation = True, f"operation-{n:013d}-5f1c2d3e4a5b6-7c8d9e0f-1a2b3c4d"
    ti = _TI()
    operator.start_deadline()
    with pytest.raises(TaskDeferred) as deferred:
        operator._defer_run({"ti": ti}, fleet)  # type: ignore[arg-type]
    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath == "airflow_machine_images.triggers.FleetBackupTrigger"
    assert kwargs["expected"] == count
    # The deadline is a float of the clock: its repr's length varies by a digit or two from run to run.
    comparable = {**kwargs, "deadline": 1_800_000_000.123456}
    return len(json.dumps(comparable)), len(json.dumps(ti.pushed["fleet_backup_table"]))


def test_the_trigger_row_is_the_same_size_for_ten_instances_and_for_five_thousand() -> None:
    small, small_table = stored_trigger_row(10)
    large, large_table = stored_trigger_row(5000)
    assert large - small <= 2  # only the digits of the expected count differ
    assert large < 1024
    assert large_table > 100 * small_table  # the instances are in the task's own XCom instead


# ---------------------------------------------------------------- arguments checked when the DAG is parsed


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({}, "instances"),
        ({"instances": ["us-central1-a/web-1"], "label_selector": {"a": "b"}}, "instances"),
        ({"instances": ["us-central1-a/web-1", "nowhere"]}, "instances[1]"),
        ({"label_selector": "Bad=x"}, "label_selector['Bad']"),
        ({"instances": ["us-central1-a/web-1"], "image_name": "{instance}-{date}"}, "image_name"),
        ({"instances": ["us-central1-a/web-1"], "labels": {"airflow-ti": "x"}}, "labels"),
        ({"instances": ["us-central1-a/web-1"], "max_in_flight": 0}, "max_in_flight"),
        ({"instances": ["us-central1-a/web-1"], "fail_on": "some"}, "fail_on"),
        ({"instances": ["us-central1-a/web-1"], "min_success_fraction": 1.5}, "min_success_fraction"),
        ({"instances": ["us-central1-a/web-1"], "min_success_fraction": 0}, "min_success_fraction"),
        ({"instances": ["us-central1-a/web-1"], "page_size": 501}, "page_size"),
    ],
)
def test_bad_arguments_fail_when_the_dag_is_parsed_naming_the_parameter(kwargs: dict[str, Any], parameter: str) -> None:
    with pytest.raises(MachineImageValidationError) as caught:
        ComputeEngineFleetBackupOperator(task_id="backup", **kwargs)
    assert caught.value.parameter == parameter


def test_templated_arguments_are_checked_once_rendered_before_any_request() -> None:
    """No emulator, no endpoint: a request would fail differently. The failure names the parameter."""
    operator = ComputeEngineFleetBackupOperator(
        task_id="backup", instances="{{ params.fleet }}", image_name="{{ params.name }}", project_id="p"
    )
    operator.instances, operator.image_name = ["us-central1-a/web-1"], "{instance}-{nope}"
    with pytest.raises(AirflowFailException, match="image_name"):
        operator.execute({"ti": _TI()})  # type: ignore[arg-type]
    operator.instances, operator.image_name = ["us-central1-a/web-1", "x"], "{instance}"
    with pytest.raises(AirflowFailException, match=r"instances\[1\]"):
        operator.execute({"ti": _TI()})  # type: ignore[arg-type]
    assert Submission("i", "n").row() == {
        "instance": "i",
        "image": "n",
        "status": "pending",
        "error": None,
        "replayed": False,
    }


class _HookAnsweringOneRefusal:
    """A sync hook stand-in: the run lists no image yet, and the in-flight insert's operation is DONE with
    the per-source limit's refusal (it arrived after the task deferred, so the read path sees it)."""

    def __init__(self, operation: str) -> None:
        self.operation = operation
        self.inserts = 0

    def list_machine_images(self, **_: Any) -> list[dict[str, Any]]:
        return []

    def list_operations(self, **_: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": self.operation,
                "status": "DONE",
                "endTime": "2026-12-06T03:00:00.000-00:00",
                "httpErrorStatusCode": 403,
                "error": {"errors": [{"code": "RESOURCE_OPERATION_RATE_EXCEEDED", "message": "Too frequent"}]},
            }
        ]

    def insert_machine_image(self, **_: Any) -> dict[str, Any]:  # pragma: no cover - must not be reached
        self.inserts += 1
        raise AssertionError("an instance the per-source limit refused was resubmitted in the same run")


def test_a_refusal_seen_after_the_deferral_defers_the_instance_to_the_next_run_without_a_resubmission() -> None:
    fleet = fleet_of(1)
    row = fleet.rows()[0]
    row.sent, row.operation = True, "operation-refused"
    hook = _HookAnsweringOneRefusal("operation-refused")
    read_outcomes(hook, fleet, is_retry=False, log=logging.getLogger("test"))  # type: ignore[arg-type]
    assert hook.inserts == 0
    assert row.status == DEFERRED, row.row()
    assert "next try is allowed" in str(row.row()["error"])
