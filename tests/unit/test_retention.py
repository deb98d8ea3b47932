"""Retention planning: what is kept and what is deleted, including the safety rules under any input."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_machine_images.retention import RetentionPolicy, plan_retention
from airflow_machine_images.validation import MachineImageValidationError

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
SELECTOR = {"managed-by": "airflow"}


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
    images = [image("nightly-1", 1, labels={}), image("nightly-2", 2, labels={}), image("other", 3, labels={})]
    policy = RetentionPolicy(name_prefix="nightly-", keep_last=1)
    assert policy.server_filter() == "name eq 'nightly-.*'"
    assert plan_retention(images, policy, NOW).delete == ["nightly-2"]


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
    )
    .filter(lambda kept: kept != (None, None))
    .map(lambda kept: RetentionPolicy(label_selector=SELECTOR, keep_last=kept[0], max_age=kept[1]))
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
            newest = max(ready, key=lambda i: i["creationTimestamp"])
            assert newest["name"] not in plan.delete, "deleted the newest READY image of a source"
    assert not set(plan.delete) & set(plan.keep)
