"""Fleet operators through real Airflow (``dag.test()``) against the emulator over HTTP.

The list operator selects by label across zones and pages; the coverage check finds each selected
instance's newest READY image in a backup project and fails naming the stale and the missing.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_machine_images.exceptions import PartialListingError
from airflow_machine_images.operators import (
    ComputeEngineListInstancesOperator,
    ComputeEngineMachineImageCoverageCheckOperator,
)
from airflow_machine_images.validation import MachineImageValidationError
from tests.integration.conftest import PROJECT, load_dag, task_states, xcom_result
from tests.integration.test_bad_input import FakeTI

if TYPE_CHECKING:
    from airflow_machine_images.emulator import ComputeEngineEmulator

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

BACKUPS = "test-backups"
NIGHTLY = {"backup": "nightly"}
#: (instance, labels, status): three selected (in two zones), two not.
FLEET: list[tuple[str, dict[str, str], str]] = [
    ("us-central1-a/web-2", {**NIGHTLY, "team": "web"}, "RUNNING"),
    ("us-central1-a/web-3", NIGHTLY, "RUNNING"),
    ("us-east1-b/db-1", NIGHTLY, "STOPPED"),
    ("us-east1-b/db-2", {"backup": "weekly"}, "RUNNING"),
    ("us-east1-c/batch-1", {}, "TERMINATED"),
]
SELECTED = [
    f"projects/{PROJECT}/zones/us-central1-a/instances/web-2",
    f"projects/{PROJECT}/zones/us-central1-a/instances/web-3",
    f"projects/{PROJECT}/zones/us-east1-b/instances/db-1",
]


@pytest.fixture
def fleet(gcp_connection: ComputeEngineEmulator) -> ComputeEngineEmulator:
    for instance, labels, status in FLEET:
        gcp_connection.add_instance(instance, labels=labels, status=status)
    # the same labels in another project: never selected from this one
    gcp_connection.add_instance("projects/other-project/zones/us-central1-a/instances/web-2", labels=NIGHTLY)
    return gcp_connection


def run(dag_id: str):  # type: ignore[no-untyped-def]
    return load_dag(dag_id).test()


# ---------------------------------------------------------------- list


def test_list_selects_by_label_across_zones_one_call_per_page(fleet: ComputeEngineEmulator) -> None:
    dag_run = run("ami_test_list_instances")
    assert task_states(dag_run) == {"select": "success"}
    result = xcom_result(dag_run, "select")
    assert [i["source_instance"] for i in result] == SELECTED
    web2 = result[0]
    assert web2 == {
        "project_id": PROJECT,
        "zone": "us-central1-a",
        "name": "web-2",
        "source_instance": SELECTED[0],
        "labels": {"backup": "nightly", "team": "web"},
        "status": "RUNNING",
    }
    assert result[2]["status"] == "STOPPED"
    # The labels are matched here, not sent (gcloud's practice): page_size=2 over the project's 6 instances
    # is three pages, and nothing else (no per-instance reads)
    calls = [r for r in fleet.requests]
    assert [r.action for r in calls] == ["instances.aggregatedList"] * 3
    assert "filter" not in calls[0].query and calls[0].query["maxResults"] == "2"
    assert "pageToken" in calls[1].query


def test_list_in_chosen_zones_with_a_filter(fleet: ComputeEngineEmulator) -> None:
    result = xcom_result(run("ami_test_list_instances_in_zones"), "select")
    assert result == []  # db-1 is STOPPED, db-2 not nightly
    fleet.add_instance("us-east1-b/db-3", labels=NIGHTLY)
    fleet.add_instance("us-east1-d/db-4", labels=NIGHTLY)  # another zone
    result = xcom_result(run("ami_test_list_instances_in_zones"), "select")
    assert [i["name"] for i in result] == ["db-3"]
    (first, *_) = fleet.requests
    assert first.query["filter"] == "status = RUNNING"  # the user's filter alone: the labels are matched here


def test_an_unreachable_zone_fails_the_listing_naming_it(fleet: ComputeEngineEmulator) -> None:
    fleet.set_unreachable_zones(["us-east1-b"])
    operator = ComputeEngineListInstancesOperator(task_id="select", label_selector=NIGHTLY)
    with pytest.raises(PartialListingError, match=r"zones/us-east1-b: UNREACHABLE"):
        operator.execute({"ti": FakeTI()})  # type: ignore[arg-type]
    # an unreachable zone outside the chosen zones does not matter
    chosen = ComputeEngineListInstancesOperator(task_id="select", label_selector=NIGHTLY, zones=["us-central1-a"])
    assert [i["name"] for i in chosen.execute({"ti": FakeTI()})] == ["web-2", "web-3"]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"label_selector": {"Backup": "nightly"}}, "label_selector"),
        ({"label_selector": "backup"}, "label_selector"),
        ({"filter": "   "}, "filter"),
        ({"zones": {"us-east1-b": 1}}, "zones"),
        ({"zones": ["us-east1-b", "Bad Zone"]}, "zones[1]"),
        ({"project_id": "Bad Project!"}, "project_id"),
    ],
)
def test_list_bad_input_fails_before_any_request(
    fleet: ComputeEngineEmulator, kwargs: dict[str, Any], parameter: str
) -> None:
    templated = {key: "{{ params.x }}" for key in kwargs if key != "project_id"}
    operator = ComputeEngineListInstancesOperator(task_id="select", **templated, project_id=kwargs.get("project_id"))
    operator.label_selector = kwargs.get("label_selector")  # as rendered
    operator.filter = kwargs.get("filter")
    operator.zones = kwargs.get("zones")
    with pytest.raises(AirflowFailException) as info:
        operator.execute({"ti": FakeTI()})  # type: ignore[arg-type]
    assert isinstance(info.value.__cause__, MachineImageValidationError)
    assert parameter in str(info.value)
    assert fleet.requests == []


def test_bad_fixed_arguments_fail_when_the_dag_is_parsed() -> None:
    for kwargs, parameter in (
        ({"label_selector": {"a": "B"}}, "label_selector"),
        ({"zones": []}, "zones"),
        ({"page_size": 501}, "page_size"),
    ):
        with pytest.raises(MachineImageValidationError, match=parameter):
            ComputeEngineListInstancesOperator(task_id="select", **kwargs)
    with pytest.raises(MachineImageValidationError, match="max_age"):
        ComputeEngineMachineImageCoverageCheckOperator(task_id="coverage", max_age=0)


# ---------------------------------------------------------------- coverage


def _image(emu: ComputeEngineEmulator, name: str, instance: str, age: timedelta, **kwargs: Any) -> None:
    emu.add_machine_image(
        name,
        source_instance=f"projects/{PROJECT}/zones/{instance}",
        project=BACKUPS,
        creation_timestamp=datetime.now(timezone.utc) - age,
        **kwargs,
    )


def _fresh_fleet(emu: ComputeEngineEmulator) -> None:
    hour = timedelta(hours=1)
    _image(emu, "web-2-new", "us-central1-a/instances/web-2", 2 * hour)
    _image(emu, "web-2-old", "us-central1-a/instances/web-2", 50 * hour)
    _image(emu, "web-3-new", "us-central1-a/instances/web-3", 3 * hour)
    _image(emu, "db-1-new", "us-east1-b/instances/db-1", 20 * hour)


def test_coverage_passes_on_a_fresh_fleet_and_returns_the_table(fleet: ComputeEngineEmulator) -> None:
    _fresh_fleet(fleet)
    dag_run = run("ami_test_coverage")
    assert task_states(dag_run) == {"coverage": "success"}
    result = xcom_result(dag_run, "coverage")
    assert (result["checked"], result["ok"], result["stale"], result["missing"]) == (3, 3, [], [])
    assert result["backup_project_id"] == BACKUPS
    rows = {row["instance"]: row for row in result["rows"]}
    assert list(rows) == SELECTED
    assert rows[SELECTED[0]]["newest_image"] == "web-2-new"
    assert 2 * 3600 - 120 <= rows[SELECTED[0]]["age_seconds"] <= 2 * 3600 + 120
    assert rows[SELECTED[0]]["size_bytes"] == 10 * 2**30 // 4
    # 6 instances in the project, 2 a page (the labels are matched here, not sent), then the images
    assert [r.action for r in fleet.requests] == ["instances.aggregatedList"] * 3 + ["machineImages.list"]


def test_coverage_fails_naming_the_stale_and_the_missing_instance(
    fleet: ComputeEngineEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    hour = timedelta(hours=1)
    _image(fleet, "web-2-new", "us-central1-a/instances/web-2", 2 * hour)
    _image(fleet, "web-3-old", "us-central1-a/instances/web-3", 30 * hour)  # stale
    _image(fleet, "web-3-broken", "us-central1-a/instances/web-3", hour, status="INVALID")  # not READY
    # db-1: its only image is in the workload project, not the backup project: missing
    fleet.add_machine_image("db-1-elsewhere", source_instance="us-east1-b/db-1", project=PROJECT)
    dag_run = run("ami_test_coverage")
    assert task_states(dag_run) == {"coverage": "failed"}
    log = capfd.readouterr().out
    assert "Backup coverage check failed" in log
    assert f"older than 1 day, 0:00:00: {SELECTED[1]}" in log
    assert f"without any READY image in {BACKUPS}: {SELECTED[2]}" in log
    assert SELECTED[0] not in log.split("Backup coverage check failed")[1].splitlines()[0]
    # the aligned table is in the log
    table = [line for line in log.splitlines() if "web-3-old" in line]
    assert table and "STALE" in table[0] and "1d 06h" in table[0]


def test_coverage_in_v1_pushes_the_table_as_xcom_too(fleet: ComputeEngineEmulator) -> None:
    _fresh_fleet(fleet)  # v1 answers write every link as a v1 URL: still the same instances
    operator = ComputeEngineMachineImageCoverageCheckOperator(
        task_id="coverage", label_selector=NIGHTLY, backup_project_id=BACKUPS, max_age=24 * 3600, api_version="v1"
    )
    ti = FakeTI()
    result = operator.execute({"ti": ti})  # type: ignore[arg-type]
    assert result["ok"] == 3 and ti.pushed["coverage"] == result
    assert all(r.path.startswith("/compute/v1/") for r in fleet.requests)
