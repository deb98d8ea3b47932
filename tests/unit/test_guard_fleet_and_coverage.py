"""Guards of the fleet listing and the coverage check that a mutation spot-check (issue 21) found
unguarded: a warning on the whole ``instances.aggregatedList`` answer (``UNREACHABLE``,
``LIST_OVERHEAD_QUOTA_EXCEED``) fails the listing, and the coverage check counts only images that
carry ``image_label_selector``'s labels, whatever the server returned. The operators run with a stub
hook (the emulator filters correctly, and never warns on the whole aggregated answer)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_machine_images.exceptions import BackupCoverageError, PartialListingError
from airflow_machine_images.operators import (
    ComputeEngineListInstancesOperator,
    ComputeEngineMachineImageCoverageCheckOperator,
)
from airflow_machine_images.planning.fleet import FleetListing, InstanceSelector

BASE = "https://www.googleapis.com/compute/v1/projects/p/zones"
NIGHTLY = {"backup": "nightly"}


def instance(name: str, zone: str = "us-central1-a") -> dict[str, Any]:
    return {"name": name, "selfLink": f"{BASE}/{zone}/instances/{name}", "status": "RUNNING", "labels": NIGHTLY}


def aggregated(*names: str, **top: Any) -> dict[str, Any]:
    """One whole ``instances.aggregatedList`` answer: the instances in us-central1-a, every other zone empty."""
    return {
        "kind": "compute#instanceAggregatedList",
        "items": {
            "zones/us-central1-a": {"instances": [instance(name) for name in names]},
            "zones/us-east1-b": {"warning": {"code": "NO_RESULTS_ON_PAGE", "message": "no instances"}},
        },
        **top,
    }


class StubHook:
    """Answers the fleet listing with ``page`` and ``machineImages.list`` with ``images`` (as given)."""

    def __init__(self, page: dict[str, Any], images: list[dict[str, Any]] = ()) -> None:  # type: ignore[assignment]
        self.page, self.images = page, list(images)
        self.image_filters: list[str | None] = []
        self.api = self  # the request builder: a call is just its arguments here

    def aggregated_list_instances(self, project_id: str, **kwargs: Any) -> dict[str, Any]:
        return {"project_id": project_id, **kwargs}

    def execute_call(self, call: dict[str, Any]) -> dict[str, Any]:
        return self.page

    def list_machine_images(self, *, project_id: str | None = None, filter_: str | None = None, **_: Any) -> list:
        self.image_filters.append(filter_)
        return list(self.images)


def with_hook(operator: Any, hook: StubHook) -> Any:
    operator.__dict__["hook"] = hook  # the cached property's slot
    return operator


class FakeTI:
    dag_id, task_id, run_id, map_index = "dag", "coverage", "manual__1", -1

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


# ---------------------------------------------------------------- 4 and 12: a warning on the whole answer


TOP_LEVEL = ["UNREACHABLE", "LIST_OVERHEAD_QUOTA_EXCEED"]


@pytest.mark.parametrize("code", TOP_LEVEL)
@pytest.mark.parametrize("zones", [None, ["us-central1-a"]], ids=["every-zone", "one-zone"])
def test_a_warning_on_the_whole_answer_leaves_the_fleet_incomplete(code: str, zones: list[str] | None) -> None:
    listing = FleetListing("p", InstanceSelector.of(NIGHTLY, None, zones))
    listing.take(aggregated("web-1", warning={"code": code, "message": "some results may be missing"}))
    assert [i["name"] for i in listing.selected()] == ["web-1"]
    assert set(listing.blocking_incomplete()) == {"answer"}
    assert code in listing.blocking_incomplete()["answer"]


@pytest.mark.parametrize("code", TOP_LEVEL)
def test_the_list_operator_fails_on_a_warning_on_the_whole_answer(code: str) -> None:
    page = aggregated("web-1", "web-2", warning={"code": code, "message": "Scope can't be reached"})
    operator = with_hook(
        ComputeEngineListInstancesOperator(task_id="fleet", label_selector=NIGHTLY, project_id="p"), StubHook(page)
    )
    with pytest.raises(PartialListingError, match=code):
        operator.execute({"ti": FakeTI()})


@pytest.mark.parametrize("code", TOP_LEVEL)
def test_the_coverage_check_decides_nothing_on_a_warning_on_the_whole_answer(code: str) -> None:
    page = aggregated("web-1", warning={"code": code, "message": "Scope can't be reached"})
    hook = StubHook(page, [image_of("web-1", labels={})])
    operator = with_hook(
        ComputeEngineMachineImageCoverageCheckOperator(
            task_id="coverage", label_selector=NIGHTLY, project_id="p", max_age=86400
        ),
        hook,
    )
    ti = FakeTI()
    with pytest.raises(PartialListingError, match=code):
        operator.execute({"ti": ti})
    assert "coverage" not in ti.pushed  # no coverage reported on a partial fleet


def test_no_results_on_page_alone_is_harmless() -> None:
    listing = FleetListing("p", InstanceSelector.of(NIGHTLY, None, None))
    listing.take(aggregated("web-1", warning={"code": "NO_RESULTS_ON_PAGE", "message": "empty page"}))
    assert listing.blocking_incomplete() == {}


# ---------------------------------------------------------------- 5: image_label_selector is checked again


def image_of(source: str, *, labels: dict[str, str], name: str | None = None) -> dict[str, Any]:
    created = datetime.now(timezone.utc) - timedelta(hours=1)
    return {
        "name": name or f"{source}-img",
        "status": "READY",
        "creationTimestamp": created.isoformat(timespec="milliseconds"),
        "sourceInstance": f"{BASE}/us-central1-a/instances/{source}",
        "labels": labels,
        "totalStorageBytes": "1024",
    }


def test_an_image_without_the_image_label_selector_does_not_count_as_coverage() -> None:
    ours = {"made-by": "nightly-dag"}
    # The server's answer holds an image of web-1 without those labels (its filter let it through).
    hook = StubHook(
        aggregated("web-1", "web-2"),
        [image_of("web-1", labels={"made-by": "someone-else"}), image_of("web-2", labels=ours)],
    )
    operator = with_hook(
        ComputeEngineMachineImageCoverageCheckOperator(
            task_id="coverage", label_selector=NIGHTLY, project_id="p", max_age=86400, image_label_selector=ours
        ),
        hook,
    )
    ti = FakeTI()
    with pytest.raises(BackupCoverageError, match="web-1"):
        operator.execute({"ti": ti})
    assert hook.image_filters == ['(labels.made-by = "nightly-dag")']  # the selector went to the server too
    coverage = ti.pushed["coverage"]
    assert coverage["missing"] == ["projects/p/zones/us-central1-a/instances/web-1"]
    assert coverage["ok"] == 1 and coverage["stale"] == []
    rows = {row["instance"].rsplit("/", 1)[1]: row for row in coverage["rows"]}
    assert rows["web-1"]["newest_image"] is None and rows["web-2"]["newest_image"] == "web-2-img"
