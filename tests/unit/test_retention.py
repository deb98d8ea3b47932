"""Retention planning: what is kept and what is deleted, including the safety rules under any input."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_machine_images.exceptions import ResourceNotFoundError
from airflow_machine_images.operators import ComputeEngineMachineImageRetentionOperator
from airflow_machine_images.planning.retention import RetentionPolicy, created_at, plan_retention
from airflow_machine_images.validation import MachineImageValidationError
from tests import strategies

NOW = strategies.RETENTION_NOW
SELECTOR = strategies.RETENTION_SELECTOR


def image(
    name: str, days_old: float, *, source: str = "web-1", status: str = "READY", labels: dict | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "status": status,
        "creationTimestamp": (NOW - timedelta(days=days_old)).isoformat(),
        "sourceInstance": f"https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a/instances/{source}",
        "labels": SELECTOR if labels is None else labels,
    }


def test_keep_last_per_source() -> None:
    images = [image(f"a-{d}", d) for d in range(5)] + [image(f"b-{d}", d, source="web-2") for d in range(2)]
    plan = plan_retention(images, RetentionPolicy(label_selector=SELECTOR, keep_last=3), NOW)
    assert plan.delete == ["a-3", "a-4"]
    assert plan.keep == ["a-0", "a-1", "a-2", "b-0", "b-1"]
    assert plan.by_source["projects/p/zones/us-central1-a/instances/web-1"] == {
        "keep": ["a-0", "a-1", "a-2"],
        "delete": ["a-3", "a-4"],
    }


def test_one_source_named_two_ways_can_only_keep_more() -> None:
    """Retention groups by the source as listed, without asking the API: were one instance listed under
    its project number and its id (the real API names the id), it would form two groups, each keeping
    its newest: more is kept, never less."""
    by_id = [image(f"a-{d}", d) for d in range(3)]
    by_number = [{**image("n-9", 9), "sourceInstance": by_id[0]["sourceInstance"].replace("/p/", "/123456789012/")}]
    plan = plan_retention(by_id + by_number, RetentionPolicy(label_selector=SELECTOR, keep_last=1), NOW)
    assert plan.delete == ["a-1", "a-2"]
    assert plan.keep == ["a-0", "n-9"]


def test_max_age_alone_keeps_young_images_and_the_newest() -> None:
    images = [image("young", 1), image("old", 40), image("older", 50), image("lonely-old", 90, source="web-2")]
    plan = plan_retention(images, RetentionPolicy(label_selector=SELECTOR, max_age=timedelta(days=30)), NOW)
    assert plan.delete == ["old", "older"]
    assert "lonely-old" in plan.keep  # the newest READY image of its source, however old


def test_keep_last_or_max_age_keeps_the_union() -> None:
    images = [image(f"i-{d}", d) for d in range(6)]
    policy = RetentionPolicy(label_selector=SELECTOR, keep_last=2, max_age=timedelta(days=3, hours=12))
    assert plan_retention(images, policy, NOW).delete == ["i-4", "i-5"]


def test_non_ready_and_unselected_images_are_never_touched() -> None:
    images = [
        image("new", 0),
        image("creating", 9, status="CREATING"),
        image("invalid", 9, status="INVALID"),
        image("foreign", 9, labels={"owner": "someone-else"}),
        image("unlabelled", 9, labels={}),
        image("old", 9),
    ]
    plan = plan_retention(images, RetentionPolicy(label_selector=SELECTOR, keep_last=1), NOW)
    assert plan.delete == ["old"]
    assert plan.not_ready == ["creating", "invalid"]
    assert "foreign" not in plan.keep + plan.delete + plan.not_ready


def test_name_prefix_selects_too() -> None:
    images = [image("nightly-1", 1), image("nightly-2", 2), image("other", 3)]
    policy = RetentionPolicy(name_prefix="nightly-", keep_last=1)
    assert policy.server_filter() == "name eq 'nightly-.*'"
    assert plan_retention(images, policy, NOW).delete == ["nightly-2"]


def test_images_this_package_did_not_make_are_pruned_only_when_the_policy_includes_them() -> None:
    images = [image("nightly-1", 1, labels={}), image("nightly-2", 2, labels={}), image("nightly-3", 3)]
    plan = plan_retention(images, RetentionPolicy(name_prefix="nightly-", keep_last=1), NOW)
    assert plan.delete == [] and plan.keep == ["nightly-3"]
    assert plan.unmanaged == ["nightly-1", "nightly-2"]  # no managed-by=airflow: reported, left alone
    opted_in = RetentionPolicy(name_prefix="nightly-", keep_last=1, include_unmanaged=True)
    assert plan_retention(images, opted_in, NOW).delete == ["nightly-2", "nightly-3"]
    with pytest.raises(MachineImageValidationError, match="include_unmanaged=True"):
        RetentionPolicy(label_selector={"managed-by": "terraform"}, keep_last=1)
    RetentionPolicy(label_selector={"managed-by": "terraform"}, keep_last=1, include_unmanaged=True)


def test_server_filter_for_labels() -> None:
    policy = RetentionPolicy(label_selector={"managed-by": "airflow", "backup": "nightly"}, keep_last=1)
    assert policy.server_filter() == '(labels.backup = "nightly") AND (labels.managed-by = "airflow")'


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"keep_last": 1}, "label_selector"),
        ({"label_selector": {}, "name_prefix": "", "keep_last": 1}, "label_selector"),
        ({"label_selector": SELECTOR}, "keep_last"),
        ({"label_selector": SELECTOR, "keep_last": 0}, "keep_last"),
        ({"label_selector": SELECTOR, "keep_last": -2}, "keep_last"),
        ({"label_selector": SELECTOR, "keep_last": True}, "keep_last"),
        ({"label_selector": SELECTOR, "max_age": timedelta(0)}, "max_age"),
        ({"label_selector": SELECTOR, "max_age": timedelta(days=-1)}, "max_age"),
        ({"label_selector": {"Bad": "x"}, "keep_last": 1}, "label_selector"),
        ({"name_prefix": "Bad*", "keep_last": 1}, "name_prefix"),
    ],
)
def test_unsafe_configurations_are_rejected(kwargs: dict[str, Any], parameter: str) -> None:
    with pytest.raises(MachineImageValidationError) as info:
        RetentionPolicy(**kwargs)
    assert info.value.parameter.startswith(parameter)


images_strategy = st.lists(
    st.builds(
        image,
        name=st.text("abcdefgh0123456789-", min_size=1, max_size=12).map(lambda s: "i" + s),
        days_old=st.floats(min_value=0, max_value=400),
        source=st.sampled_from(["web-1", "web-2", "db-1"]),
        status=st.sampled_from(["READY", "READY", "READY", "CREATING", "INVALID", "DELETING", "UPLOADING"]),
        labels=st.sampled_from([SELECTOR, {}, {"managed-by": "someone"}, {**SELECTOR, "x": "y"}]),
    ),
    max_size=30,
    unique_by=lambda i: i["name"],
)
policies = (
    st.tuples(
        st.one_of(st.none(), st.integers(1, 5)),
        st.one_of(st.none(), st.timedeltas(min_value=timedelta(hours=1), max_value=timedelta(days=100))),
        st.lists(st.one_of(st.none(), st.integers(1, 4)), min_size=4, max_size=4),
    )
    .filter(lambda kept: kept[0] is not None or kept[1] is not None or any(n is not None for n in kept[2]))
    .map(
        lambda kept: RetentionPolicy(
            label_selector=SELECTOR,
            keep_last=kept[0],
            max_age=kept[1],
            keep_daily=kept[2][0],
            keep_weekly=kept[2][1],
            keep_monthly=kept[2][2],
            keep_yearly=kept[2][3],
        )
    )
)


@given(images=images_strategy, policy=policies)
def test_safety_rules_hold_for_any_fleet(images: list[dict[str, Any]], policy: RetentionPolicy) -> None:
    plan = plan_retention(images, policy, NOW)
    by_name = {i["name"]: i for i in images}
    for name in plan.delete:
        assert policy.selects(by_name[name]), "deleted an image outside the selector"
        assert by_name[name]["status"] == "READY", "deleted an image that is not READY"
    for source in {i["sourceInstance"] for i in images}:
        ready = [i for i in images if i["sourceInstance"] == source and i["status"] == "READY" and policy.selects(i)]
        if ready:
            # Two images made in the same instant are both "the newest": neither may go.
            latest = max(created_at(i) for i in ready)
            newest = {i["name"] for i in ready if created_at(i) == latest}
            assert not newest & set(plan.delete), "deleted the newest READY image of a source"
    assert not set(plan.delete) & set(plan.keep)


def test_images_made_in_the_same_instant_are_both_the_newest() -> None:
    """The planner used to keep the one with the later name and delete the other (keep_last=1)."""
    images = [image("b-same-time", 1), image("a-same-time", 1), image("older", 5)]
    plan = plan_retention(images, RetentionPolicy(label_selector=SELECTOR, keep_last=1), NOW)
    assert plan.delete == ["older"]
    assert plan.keep == ["a-same-time", "b-same-time"]
    # and in any order of the listing
    assert plan_retention(images[::-1], RetentionPolicy(label_selector=SELECTOR, keep_last=1), NOW) == plan


def test_a_repeated_entry_does_not_push_a_kept_image_out() -> None:
    """A paged list repeats an entry when an image is added between two pages: plan on distinct images."""
    newest, middle, old = image("web-1-c", 1), image("web-1-b", 2), image("web-1-a", 3)
    for image_id, image_ in enumerate((newest, middle, old)):
        image_["id"] = str(image_id + 1)
    policy = RetentionPolicy(label_selector=SELECTOR, keep_last=2)
    plan = plan_retention([newest, middle, dict(newest), old], policy, NOW)
    assert plan.delete == ["web-1-a"]
    assert plan.keep == ["web-1-b", "web-1-c"]
    # The newest READY image itself, repeated, was planned for deletion (keep_last=1).
    plan = plan_retention([newest, dict(newest), old], RetentionPolicy(label_selector=SELECTOR, keep_last=1), NOW)
    assert plan.delete == ["web-1-a"]
    assert plan.keep == ["web-1-c"]


def test_an_image_that_changed_between_pages_is_left_alone() -> None:
    """Two entries of one image that disagree: the listing saw it change; neither copy is trusted."""
    old, older = image("old", 5), image("older", 6)
    old["id"], older["id"] = "1", "2"
    newest = image("newest", 0)
    newest["id"] = "3"
    plan = plan_retention(
        [newest, old, {**old, "status": "DELETING"}, older], RetentionPolicy(label_selector=SELECTOR, keep_last=1), NOW
    )
    assert plan.delete == ["older"]
    assert plan.skipped == ["old"]
    # A name made again between pages (a new id, newer): not deleted under either id.
    again = {**old, "id": "9", "creationTimestamp": NOW.isoformat()}
    plan = plan_retention([newest, old, again], RetentionPolicy(label_selector=SELECTOR, keep_last=1), NOW)
    assert plan.delete == []
    assert plan.skipped == ["old"]


@given(data=st.data(), policy=policies)
def test_no_listing_makes_the_planner_delete_what_the_fleet_keeps(data: st.DataObject, policy: RetentionPolicy) -> None:
    """Duplicates, omissions, reordering and entries that changed between pages, against the true fleet."""
    fleet = data.draw(strategies.retention_fleets())
    listing, changed = data.draw(strategies.retention_listings(fleet))
    truth = plan_retention(fleet, policy, NOW)
    plan = plan_retention(listing, policy, NOW)
    assert len(plan.delete) == len(set(plan.delete)), "a name planned for deletion twice"
    assert not set(plan.delete) & set(plan.keep), "a name both kept and deleted"
    assert set(plan.delete) <= set(truth.delete), "deleted an image the fleet's own plan keeps"
    assert not set(plan.delete) & changed, "deleted an image that changed while it was listed"
    assert plan_retention(listing[::-1], policy, NOW).delete == plan.delete, "the plan depends on the order"


class FleetHook:
    """The retention operator's hook over an in-memory fleet, whose listing may be stale."""

    def __init__(self, fleet: list[dict[str, Any]], listing: list[dict[str, Any]]) -> None:
        self.images = {image["name"]: dict(image) for image in fleet}
        self.listing = listing
        self.deleted: list[str] = []
        self.default_project_id = "p"
        self._lock = threading.Lock()

    def list_machine_images(
        self, *, project_id: str, filter_: str, warnings: list | None = None
    ) -> list[dict[str, Any]]:
        return [dict(image) for image in self.listing]

    def get_machine_image(self, *, name: str, project_id: str | None = None) -> dict[str, Any]:
        with self._lock:
            if name not in self.images:
                raise ResourceNotFoundError(f"{name} not found", http_status=404)
            return dict(self.images[name])

    def delete_machine_image(self, *, name: str, request_id: str, project_id: str | None = None) -> dict[str, Any]:
        with self._lock:
            if self.images.pop(name, None) is None:
                raise ResourceNotFoundError(f"{name} not found", http_status=404)
            self.deleted.append(name)
        return {"name": f"operation-{len(self.deleted)}", "status": "DONE"}

    def wait_for_operation(self, *, operation_name: str, **kwargs: Any) -> dict[str, Any]:
        return {"name": operation_name, "status": "DONE"}


@given(data=st.data(), policy=policies)
def test_the_operator_deletes_nothing_the_fleet_keeps_even_from_a_stale_listing(
    data: st.DataObject, policy: RetentionPolicy
) -> None:
    """Listed images may have changed since (another state, gone, made again): each is read again."""
    fleet = data.draw(strategies.retention_fleets())
    listing, _ = data.draw(strategies.retention_listings(fleet, stale=True))
    hook = FleetHook(fleet, listing)
    operator = ComputeEngineMachineImageRetentionOperator(
        task_id="prune",
        project_id="p",
        label_selector=SELECTOR,
        keep_last=policy.keep_last,
        max_age=policy.max_age,
        keep_daily=policy.keep_daily,
        keep_weekly=policy.keep_weekly,
        keep_monthly=policy.keep_monthly,
        keep_yearly=policy.keep_yearly,
    )
    operator.__dict__["hook"] = hook
    operator.new_hook = lambda: hook  # type: ignore[method-assign]
    with mock.patch("airflow_machine_images.operators.retention.timezone.utcnow", return_value=NOW):
        result = operator.execute({"ti": mock.Mock(dag_id="d", task_id="prune", run_id="r", map_index=-1)})  # type: ignore[arg-type]
    truth = plan_retention(fleet, policy, NOW)
    assert len(hook.deleted) == len(set(hook.deleted))
    assert set(hook.deleted) <= set(truth.delete), "deleted an image the fleet's own plan keeps"
    assert result["deleted"] == sorted(hook.deleted)


class WarnedFleetHook(FleetHook):
    """A fleet whose listing answers with a ``warning``: images may be missing from it."""

    def list_machine_images(
        self, *, project_id: str, filter_: str, warnings: list | None = None
    ) -> list[dict[str, Any]]:
        from airflow_machine_images.api.list_warnings import ListWarning

        assert warnings is not None, "retention must ask for the listing's warnings"
        warnings.append(ListWarning("PARTIAL_SUCCESS", "some results may be missing"))
        return super().list_machine_images(project_id=project_id, filter_=filter_)


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_warned_listing_deletes_nothing(dry_run: bool) -> None:
    from airflow_machine_images.exceptions import PartialListingError

    fleet = [{**image(f"old-{n}", 10 - n), "id": str(n)} for n in range(4)]
    hook = WarnedFleetHook(fleet, fleet)
    operator = ComputeEngineMachineImageRetentionOperator(
        task_id="prune", project_id="p", label_selector=SELECTOR, keep_last=1, dry_run=dry_run
    )
    operator.__dict__["hook"] = hook
    operator.new_hook = lambda: hook  # type: ignore[method-assign]
    context = {"ti": mock.Mock(dag_id="d", task_id="prune", run_id="r", map_index=-1)}
    with mock.patch("airflow_machine_images.operators.retention.timezone.utcnow", return_value=NOW):
        if dry_run:
            result = operator.execute(context)  # type: ignore[arg-type]
            assert result["would_delete"] == ["old-0", "old-1", "old-2"]
        else:
            with pytest.raises(PartialListingError, match=r"deleted nothing.*PARTIAL_SUCCESS"):
                operator.execute(context)  # type: ignore[arg-type]
    assert hook.deleted == []
