"""Fleet selection and backup coverage: the pure rules (no I/O)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_machine_images.exceptions import MalformedResponseError
from airflow_machine_images.planning.coverage import coverage_rows, format_age, format_table, newest_ready_images
from airflow_machine_images.planning.fleet import FleetListing, InstanceSelector, backup_image_name, backup_kwargs
from airflow_machine_images.results import coverage_row_summary
from airflow_machine_images.validation import MachineImageValidationError

NOW = datetime(2026, 5, 20, 12, tzinfo=timezone.utc)
WEB1 = "projects/p/zones/us-central1-a/instances/web-1"


def instance(name: str, zone: str = "us-central1-a", project: str = "p", **fields: Any) -> dict[str, Any]:
    link = f"https://www.googleapis.com/compute/v1/projects/{project}/zones/{zone}/instances/{name}"
    return {"name": name, "selfLink": link, "status": "RUNNING", **fields}


def page(scopes: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"kind": "compute#instanceAggregatedList", "items": scopes, **top}


def test_labels_never_go_to_the_server_only_the_users_filter_does() -> None:
    """gcloud never sends label terms (its filter rewriter: server-side label matching "is currently
    problematic"); the labels are matched on the unfiltered answer."""
    assert InstanceSelector.of({"b": "2", "a": "1"}, None, None).server_filter() is None
    assert InstanceSelector.of(None, "status = RUNNING", None).server_filter() == "status = RUNNING"
    assert InstanceSelector.of("a=1", "status = RUNNING", None).server_filter() == "status = RUNNING"
    assert InstanceSelector.of({"a": "1"}, "name eq web-.*", None).server_filter() == "name eq web-.*"
    assert InstanceSelector.of(None, None, None).server_filter() is None
    assert InstanceSelector.of(None, "labels.env:* AND status = RUNNING", None).filter_names_labels
    assert InstanceSelector.of(None, "(status = RUNNING) AND (-labels.env = prod)", None).filter_names_labels
    assert not InstanceSelector.of({"a": "1"}, "name = my-labels.x", None).filter_names_labels


@pytest.mark.parametrize(
    ("args", "parameter"),
    [
        (({"A": "1"}, None, None), "label_selector"),
        (("a", None, None), "label_selector"),
        ((None, 5, None), "filter"),
        ((None, "x" * 5000, None), "filter"),
        ((None, None, []), "zones"),
        ((None, None, " , "), "zones"),
        ((None, None, ["us-east1-b", "US"]), "zones[1]"),
    ],
)
def test_selector_arguments_are_checked(args: tuple[Any, Any, Any], parameter: str) -> None:
    with pytest.raises(MachineImageValidationError) as info:
        InstanceSelector.of(*args)
    assert info.value.parameter.startswith(parameter)


def test_zones_may_be_rendered_text() -> None:
    assert InstanceSelector.of(None, None, "us-east1-b, us-east1-c").zones == ("us-east1-b", "us-east1-c")


def test_listing_selects_rechecks_labels_and_zones_and_reads_canonical_names() -> None:
    listing = FleetListing("123456789012", InstanceSelector.of({"backup": "nightly"}, None, ["us-central1-a"]))
    listing.take(
        page(
            {
                "zones/us-central1-a": {
                    "instances": [
                        instance("web-1", project="p", labels={"backup": "nightly"}),
                        instance("web-2", labels={"backup": "weekly"}),  # the server's filter let it through
                    ]
                },
                "zones/us-east1-b": {"instances": [instance("db-1", zone="us-east1-b", labels={"backup": "nightly"})]},
                "zones/us-east1-c": {"warning": {"code": "NO_RESULTS_ON_PAGE", "message": "none"}},
            }
        )
    )
    # the project id comes from the selfLink, not from the project number the request named
    assert listing.selected() == [
        {
            "project_id": "p",
            "zone": "us-central1-a",
            "name": "web-1",
            "source_instance": WEB1,
            "labels": {"backup": "nightly"},
            "status": "RUNNING",
        }
    ]
    assert listing.incomplete == {}


def test_listing_records_what_it_could_not_read() -> None:
    listing = FleetListing("p", InstanceSelector.of(None, None, ["us-central1-a"]))
    listing.take(
        page(
            {
                "zones/us-east1-b": {"warning": {"code": "UNREACHABLE", "message": "zone down"}},
                "zones/us-central1-a": {"warning": {"code": "NO_RESULTS_ON_PAGE"}},
                "zones/us-central1-b": {"warning": {"code": "DEPRECATED_RESOURCE_USED"}},
            },
            unreachables=["zones/us-east1-c"],
        )
    )
    # A scope's warning replaces its instances: any code but NO_RESULTS_ON_PAGE, known or not, may hide some.
    assert listing.incomplete == {
        "zones/us-east1-b": "UNREACHABLE: zone down",
        "zones/us-east1-c": "UNREACHABLE",
        "zones/us-central1-b": "DEPRECATED_RESOURCE_USED",
    }
    assert listing.blocking_incomplete() == {}  # none is a chosen zone
    listing.take(page({}, warning={"code": "PARTIAL_SUCCESS"}))
    assert listing.blocking_incomplete() == {"answer": "PARTIAL_SUCCESS"}
    with pytest.raises(MalformedResponseError):
        listing.take(page({"zones/x": {"instances": [{"status": "RUNNING"}]}}))


def test_backup_names_are_valid_distinct_and_stable() -> None:
    web1 = {"name": "web-1", "source_instance": WEB1}
    other_zone = {"name": "web-1", "source_instance": WEB1.replace("us-central1-a", "us-east1-b")}
    long = {"name": "a" * 63, "source_instance": WEB1.replace("web-1", "a" * 63)}
    assert backup_image_name(web1, "20260520") == backup_image_name(web1, "20260520")
    assert backup_image_name(web1, "20260520").startswith("web-1-20260520-")
    assert backup_image_name(web1, "20260520") != backup_image_name(other_zone, "20260520")
    assert len(backup_image_name(long, "20260520")) == 63
    assert backup_kwargs([web1], "20260520", labels={"k": "v"}) == [
        {"name": backup_image_name(web1, "20260520"), "source_instance": WEB1, "labels": {"k": "v"}}
    ]


def image(name: str, source: str, age: timedelta, status: str = "READY", size: str = "100") -> dict[str, Any]:
    created = (NOW - age).isoformat()
    return {
        "name": name,
        "sourceInstance": source,
        "creationTimestamp": created,
        "status": status,
        "totalStorageBytes": size,
    }


def test_newest_ready_image_per_canonical_source_whatever_the_url_form() -> None:
    hour = timedelta(hours=1)
    images = [
        image("a", f"https://www.googleapis.com/compute/v1/{WEB1}", 5 * hour),
        image("b", f"https://compute.googleapis.com/compute/beta/{WEB1}", 2 * hour),
        image("c", WEB1, hour, status="CREATING"),  # not READY: never the newest
        image("d", "not a url", 0 * hour),  # unreadable source: ignored
    ]
    assert {source: i["name"] for source, i in newest_ready_images(images).items()} == {WEB1: "b"}


def test_coverage_rows_mark_ok_stale_and_missing() -> None:
    fleet = [
        {"source_instance": WEB1},
        {"source_instance": WEB1.replace("web-1", "web-2")},
        {"source_instance": WEB1.replace("web-1", "web-3")},
    ]
    images = [
        image("w1", WEB1, timedelta(hours=2)),
        image("w2", WEB1.replace("web-1", "web-2"), timedelta(hours=30)),
    ]
    rows = coverage_rows(fleet, images, now=NOW, max_age=timedelta(hours=24))
    assert [(r.status, r.newest_image) for r in rows] == [("ok", "w1"), ("stale", "w2"), ("missing", None)]
    assert coverage_row_summary(rows[0])["age"] == "2h 00m" and rows[0].size_bytes == 100
    # exactly max_age old is still ok
    edge = coverage_rows(fleet[:1], [image("e", WEB1, timedelta(hours=24))], now=NOW, max_age=timedelta(hours=24))
    assert edge[0].status == "ok"


def test_the_table_is_aligned() -> None:
    fleet = [
        {"source_instance": WEB1},
        {"source_instance": "projects/p/zones/us-central1-a/instances/a-much-longer-name"},
    ]
    lines = format_table(
        coverage_rows(fleet, [image("w1", WEB1, timedelta(days=2, hours=3))], now=NOW, max_age=timedelta(days=1))
    ).splitlines()
    assert lines[0].split() == ["INSTANCE", "STATUS", "NEWEST", "READY", "IMAGE", "AGE", "SIZE"]
    assert len({line.index("STALE") if "STALE" in line else line.index("MISSING") for line in lines[1:]}) == 1
    assert lines[1].split()[-3:] == ["03h", "0.0", "GiB"] and "2d 03h" in lines[1]
    assert format_age(59) == "0m" and format_age(3600 * 5 + 420) == "5h 07m"
