"""Grandfather-father-son retention against an independent, deliberately naive model of restic's rules.

The model below shares no code with :mod:`airflow_machine_images.planning.gfs`: it names periods with
``strftime`` (``%G-W%V`` for ISO weeks) instead of ``isocalendar()``, finds "the N most recent periods that
have an image" by sorting the set of period labels instead of walking the images, and checks every image
against every other one. It states the rules as the issue does: per source instance, among READY images,
keep the newest image in each of the N most recent UTC days / ISO weeks / months / years that have an
image, the newest N images (``keep_last``), every image younger than ``max_age`` and the newest image;
an image kept by any rule stays.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_machine_images.planning.gfs import KeepCounts, keep_reasons, period_of
from airflow_machine_images.planning.retention import RetentionPolicy, plan_retention
from airflow_machine_images.validation import MachineImageValidationError

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
SELECTOR = {"managed-by": "airflow"}
SOURCES = ("web-1", "web-2", "db-1")


def image(name: str, created: datetime, *, source: str = "web-1", status: str = "READY") -> dict[str, Any]:
    return {
        "name": name,
        "id": str(abs(hash(name)) % 10**12 + 1),
        "status": status,
        "creationTimestamp": created.isoformat(),
        "sourceInstance": f"projects/p/zones/us-central1-a/instances/{source}",
        "labels": dict(SELECTOR),
    }


# ---------------------------------------------------------------- the naive model

MODEL_FORMATS = {"daily": "%Y-%m-%d", "weekly": "%G-W%V", "monthly": "%Y-%m", "yearly": "%Y"}


def model_reasons(images: list[dict[str, Any]], policy: RetentionPolicy, now: datetime) -> dict[str, set[str]]:
    """Every READY image of the selection mapped to the set of rules that keep it (empty: deleted)."""
    by_source: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for entry in images:
        if entry["status"] == "READY":
            by_source[entry["sourceInstance"]].append(
                (datetime.fromisoformat(entry["creationTimestamp"]), entry["name"])
            )
    reasons: dict[str, set[str]] = {}
    for members in by_source.values():
        for when, name in members:
            why: set[str] = set()
            if all(other <= when for other, _ in members):
                why.add("newest")
            if policy.keep_last is not None and sum(1 for other, _ in members if other > when) < policy.keep_last:
                why.add("last")
            for rule, fmt in MODEL_FORMATS.items():
                wanted = getattr(policy, f"keep_{rule}")
                if wanted is None:
                    continue
                label = when.astimezone(timezone.utc).strftime(fmt)
                labels = sorted({other.astimezone(timezone.utc).strftime(fmt) for other, _ in members}, reverse=True)
                same = [other for other, _ in members if other.astimezone(timezone.utc).strftime(fmt) == label]
                if label in labels[:wanted] and when == max(same):
                    why.add(f"{rule}:{label}")
            if policy.max_age is not None and now - when < policy.max_age:
                why.add("max_age")
            reasons[name] = why
    return reasons


def assert_matches_model(images: list[dict[str, Any]], policy: RetentionPolicy, now: datetime) -> None:
    plan = plan_retention(images, policy, now)
    model = model_reasons(images, policy, now)
    assert plan.delete == sorted(name for name, why in model.items() if not why)
    assert sorted(n for n in plan.keep if n in model) == sorted(name for name, why in model.items() if why)
    assert {name: set(plan.kept_by[name]) for name in plan.keep if name in model} == {
        name: why for name, why in model.items() if why
    }


# ---------------------------------------------------------------- property test

moments = st.datetimes(
    min_value=datetime(2023, 12, 20), max_value=datetime(2026, 6, 1), timezones=st.just(timezone.utc)
).map(lambda moment: moment.replace(microsecond=0))
counts = st.one_of(st.none(), st.integers(1, 8))


@st.composite
def fleets(draw: st.DrawFn) -> list[dict[str, Any]]:
    when = draw(st.lists(moments, min_size=0, max_size=40))
    when += draw(st.lists(st.sampled_from(when), max_size=4)) if when else []  # images made in the same instant
    return [
        image(
            f"img-{index}",
            moment,
            source=draw(st.sampled_from(SOURCES)),
            status=draw(st.sampled_from(["READY"] * 6 + ["CREATING", "DELETING", "INVALID"])),
        )
        for index, moment in enumerate(when)
    ]


@st.composite
def gfs_policies(draw: st.DrawFn) -> RetentionPolicy:
    last, daily, weekly, monthly, yearly = (draw(counts) for _ in range(5))
    max_age = draw(st.one_of(st.none(), st.timedeltas(min_value=timedelta(hours=1), max_value=timedelta(days=60))))
    if (last, daily, weekly, monthly, yearly, max_age) == (None,) * 6:
        daily = 1
    return RetentionPolicy(
        label_selector=SELECTOR,
        keep_last=last,
        keep_daily=daily,
        keep_weekly=weekly,
        keep_monthly=monthly,
        keep_yearly=yearly,
        max_age=max_age,
    )


@settings(max_examples=400, deadline=None)
@given(images=fleets(), policy=gfs_policies())
def test_the_plan_matches_the_naive_model(images: list[dict[str, Any]], policy: RetentionPolicy) -> None:
    assert_matches_model(images, policy, NOW)
    assert plan_retention(images[::-1], policy, NOW).delete == plan_retention(images, policy, NOW).delete


# ---------------------------------------------------------------- 400 days of dailies, every rule set


def four_hundred_dailies() -> list[dict[str, Any]]:
    """web-1: one image a day at 02:00 UTC for the 400 days up to NOW; web-2: the same, and every fifth day
    another at 14:00 UTC the day before (so some days have two, the later one the newest)."""
    images = [image(f"web-1-{day:03d}", NOW.replace(hour=2) - timedelta(days=day)) for day in range(400)]
    images += [
        image(f"web-2-{day:03d}-{hour:02d}", NOW.replace(hour=2) - timedelta(days=day, hours=hour), source="web-2")
        for day in range(400)
        for hour in ((0, 12) if day % 5 == 0 else (0,))
    ]
    return images


def test_a_plan_on_400_days_of_dailies_with_every_rule_matches_the_model_exactly() -> None:
    policy = RetentionPolicy(
        label_selector=SELECTOR,
        keep_last=3,
        keep_daily=7,
        keep_weekly=5,
        keep_monthly=12,
        keep_yearly=3,
        max_age=timedelta(days=2),
    )
    images = four_hundred_dailies()
    assert_matches_model(images, policy, NOW)
    plan = plan_retention(images, policy, NOW)
    web_1 = plan.by_source["projects/p/zones/us-central1-a/instances/web-1"]
    # Worked by hand: day 0 is Monday 2026-06-01, day 399 is 2025-04-28. keep_last 0-2; dailies 0-6; ISO weeks
    # W23 (0), W22 (1: Sunday 31 May), W21 (8), W20 (15), W19 (22); months June (0), May (1), then the last
    # day of April 2026 back to July 2025 (32, 62, 93, 121, 152, 183, 213, 244, 274, 305); years 2026 (0),
    # 2025 (152: 31 December), no third year with an image; max_age keeps days 0 and 1.
    kept_days = {*range(7), 8, 15, 22, 32, 62, 93, 121, 152, 183, 213, 244, 274, 305}
    assert web_1["keep"] == [f"web-1-{day:03d}" for day in sorted(kept_days)]
    assert len(web_1["delete"]) == 400 - len(kept_days) == 380
    assert plan.kept_by["web-1-000"] == [
        "newest", "last", "daily:2026-06-01", "weekly:2026-W23", "monthly:2026-06", "yearly:2026", "max_age"
    ]  # fmt: skip
    assert plan.kept_by["web-1-152"] == ["monthly:2025-12", "yearly:2025"]
    assert plan.kept_by["web-1-022"] == ["weekly:2026-W19"]
    assert plan.guards["projects/p/zones/us-central1-a/instances/web-1"] == web_1["keep"]


# ---------------------------------------------------------------- the rules, one by one


def test_periods_are_utc_and_iso_weeks_cross_the_year() -> None:
    late = datetime(2025, 12, 29, 0, 30, tzinfo=timezone(timedelta(hours=2)))  # 28 December, 22:30 UTC
    assert period_of("daily", late) == "2025-12-28"
    assert period_of("weekly", datetime(2025, 12, 29, tzinfo=timezone.utc)) == "2026-W01"  # a Monday: ISO 2026
    assert period_of("weekly", datetime(2021, 1, 3, tzinfo=timezone.utc)) == "2020-W53"
    assert period_of("monthly", late) == "2025-12"
    assert period_of("yearly", late) == "2025"


def test_only_periods_with_an_image_count() -> None:
    """Seven dailies of a source imaged every other day reach back fourteen days."""
    dated = [(NOW - timedelta(days=2 * n), f"i-{2 * n}") for n in range(10)]
    reasons = keep_reasons(dated, KeepCounts(daily=7))
    assert [name for name, why in reasons.items() if why] == [f"i-{2 * n}" for n in range(7)]


def test_the_newest_of_a_period_is_kept_and_ties_are_kept_together() -> None:
    noon, morning = NOW.replace(hour=12), NOW.replace(hour=8)
    dated = [(noon, "a-noon"), (noon, "b-noon"), (morning, "morning"), (morning - timedelta(days=1), "yesterday")]
    reasons = keep_reasons(dated, KeepCounts(daily=1))
    assert {name for name, why in reasons.items() if why} == {"a-noon", "b-noon"}
    assert reasons["a-noon"] == ["newest", "daily:2026-06-01"]


def test_rules_keep_the_union_and_say_which_rule_keeps_what() -> None:
    images = [image(f"d-{day}", NOW - timedelta(days=day)) for day in range(40)]
    policy = RetentionPolicy(label_selector=SELECTOR, keep_daily=2, keep_monthly=3)
    plan = plan_retention(images, policy, NOW)
    assert plan.keep == ["d-0", "d-1", "d-32"]  # today, yesterday (31 May), and the newest of April (30 April)
    assert plan.kept_by == {
        "d-0": ["newest", "daily:2026-06-01", "monthly:2026-06"],
        "d-1": ["daily:2026-05-31", "monthly:2026-05"],
        "d-32": ["monthly:2026-04"],
    }


def test_guards_are_the_images_a_counting_rule_keeps() -> None:
    """Deleting an old image is justified by the images the counting rules keep: they are read again first."""
    images = [image(f"d-{day}", NOW - timedelta(days=day)) for day in range(10)]
    plan = plan_retention(
        images, RetentionPolicy(label_selector=SELECTOR, keep_daily=3, max_age=timedelta(days=5)), NOW
    )
    assert plan.guards == {"projects/p/zones/us-central1-a/instances/web-1": ["d-0", "d-1", "d-2"]}
    assert set(plan.keep) == {f"d-{day}" for day in range(5)} and plan.kept_by["d-4"] == ["max_age"]


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"keep_daily": 0}, "keep_daily"),
        ({"keep_weekly": -1}, "keep_weekly"),
        ({"keep_monthly": True}, "keep_monthly"),
        ({"keep_yearly": "3"}, "keep_yearly"),
        ({}, "keep_last"),
    ],
)
def test_bad_counts_are_rejected_naming_the_parameter(kwargs: dict[str, Any], parameter: str) -> None:
    with pytest.raises(MachineImageValidationError) as info:
        RetentionPolicy(label_selector=SELECTOR, **kwargs)
    assert info.value.parameter == parameter
