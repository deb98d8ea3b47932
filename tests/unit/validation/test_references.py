"""Unit tests for airflow_machine_images.validation.references: source instances, machine image references,
API endpoints. Table-driven cases plus hypothesis properties."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_machine_images import validation as v
from airflow_machine_images.validation import InstanceRef, MachineImageValidationError
from tests import strategies as s
from tests.unit.validation.support import (
    REF,
    expect_error,
    raises,
)

# --------------------------------------------------------------------------------------------------
# Source instances and machine image references
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("us-central1-a/web-1", ("default-proj", "us-central1-a", "web-1")),
        ("zones/us-central1-a/instances/web-1", ("default-proj", "us-central1-a", "web-1")),
        ("projects/p/zones/us-central1-a/instances/i", ("p", "us-central1-a", "i")),
        ("projects/example.com:p/zones/us-central1-a/instances/123", ("example.com:p", "us-central1-a", "123")),
        (
            "https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a/instances/i",
            ("p", "us-central1-a", "i"),
        ),
        (
            "https://www.googleapis.com/compute/beta/projects/p/zones/us-central1-a/instances/i",
            ("p", "us-central1-a", "i"),
        ),
        (
            "https://compute.googleapis.com/compute/alpha/projects/p/zones/us-central1-a/instances/i",
            ("p", "us-central1-a", "i"),
        ),
        (
            "https://compute.example.com:8443/base/compute/v1/projects/p/zones/us-central1-a/instances/i",
            ("p", "us-central1-a", "i"),
        ),
        ("http://127.0.0.1:8085/compute/beta/projects/p/zones/us-central1-a/instances/i", ("p", "us-central1-a", "i")),
        ("http://localhost/compute/v1/projects/p/zones/us-central1-a/instances/i", ("p", "us-central1-a", "i")),
        ("http://[::1]:8085/compute/v1/projects/p/zones/us-central1-a/instances/i", ("p", "us-central1-a", "i")),
    ],
)
def test_source_instance_forms(text: str, expected: tuple[str, str, str]) -> None:
    ref = v.parse_source_instance(text, default_project="default-proj")
    assert (ref.project, ref.zone, ref.instance) == expected
    assert ref.partial_url == "projects/{}/zones/{}/instances/{}".format(*expected)


def test_every_form_names_the_same_instance() -> None:
    forms = [
        "us-central1-a/web-1",
        "zones/us-central1-a/instances/web-1",
        "projects/my-project/zones/us-central1-a/instances/web-1",
        "https://www.googleapis.com/compute/v1/projects/my-project/zones/us-central1-a/instances/web-1",
        "https://compute.googleapis.com/compute/beta/projects/my-project/zones/us-central1-a/instances/web-1",
    ]
    refs = [v.parse_source_instance(form, "my-project") for form in forms]
    assert all(ref == REF and ref.same_instance(REF) for ref in refs)
    assert not REF.same_instance(InstanceRef("my-project", "us-central1-a", "web-2"))
    assert not REF.same_instance(InstanceRef("other", "us-central1-a", "web-1"))
    assert not REF.same_instance(InstanceRef("my-project", "us-central1-b", "web-1"))
    assert not REF.same_instance("projects/my-project/zones/us-central1-a/instances/web-1")


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "web-1",
        "us-central1-a/web-1/../other",
        "zones/us-central1-a/instances/web%2F1",
        "zones/us-central1-a/instances/web-1/",
        "/zones/us-central1-a/instances/web-1",
        "zones//instances/web-1",
        "zones/us-central1-a/instances/web-1?alt=json",
        "zones/us-central1-a/instances/web-1#x",
        "zones/us-central1-a/instances/web 1",
        " us-central1-a/web-1",
        "us-central1-a/web-1\n",
        "us-central1-a\\web-1",
        "regions/us-central1/instances/web-1",
        "zones/us-central1-a/disks/web-1",
        "projects/p/zones/us-central1-a/instances/i/extra",
        "projects/P/zones/us-central1-a/instances/i",
        "projects/p/zones/Z/instances/i",
        "projects/p/zones/us-central1-a/instances/I",
        "ftp://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a/instances/i",
        "http://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a/instances/i",
        "https://www.googleapis.com/compute/v2/projects/p/zones/us-central1-a/instances/i",
        "https://www.googleapis.com/projects/p/zones/us-central1-a/instances/i",
        "https://user@www.googleapis.com/compute/v1/projects/p/zones/us-central1-a/instances/i",
        "https://www.googleapis.com:0/compute/v1/projects/p/zones/us-central1-a/instances/i",
        "https:///compute/v1/projects/p/zones/us-central1-a/instances/i",
        "https://www.googleapis.com//compute/v1/projects/p/zones/us-central1-a/instances/i",
        "//www.googleapis.com/compute/v1/projects/p/zones/us-central1-a/instances/i",
        "a" * 3000,
        None,
        7,
        ["us-central1-a", "web-1"],
        {"zone": "us-central1-a"},
        b"us-central1-a/web-1",
    ],
)
def test_source_instance_rejected(bad: object) -> None:
    with raises("source_instance", "must"):
        v.parse_source_instance(bad, default_project="p")
    with raises("source", "must"):
        v.parse_source_instance(bad, default_project="p", parameter="source")


def test_source_instance_component_error_names_the_component() -> None:
    with raises("source_instance", "its zone 'US-central1-a'", "'US-central1-a/web-1'"):
        v.parse_source_instance("US-central1-a/web-1", "p")
    with raises("source_instance", "its project 'Bad'"):
        v.parse_source_instance("projects/Bad/zones/us-central1-a/instances/i", None)


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ("zones/us-central1-a/instances/i/", "empty path segments"),
        ("zones//instances/i", "empty path segments"),
        ("zones/us-central1-a/instances/i?alt=json", "query string"),
        ("zones/us-central1-a/instances/i#top", "fragment"),
        ("zones/us-central1-a/instances/web%2F1", "percent-encoding"),
        ("zones/us-central1-a/instances/a\\b", "'\\'"),
        ("zones/us-central1-a/instances/../i", "'..'"),
        ("zones/us-central1-a/instances/ i", "whitespace"),
    ],
)
def test_source_instance_rejections_say_why(bad: str, fragment: str) -> None:
    with raises("source_instance", fragment):
        v.parse_source_instance(bad, "p")


def test_short_forms_need_a_default_project() -> None:
    for text in ("us-central1-a/web-1", "zones/us-central1-a/instances/web-1"):
        with raises("source_instance", "no default project"):
            v.parse_source_instance(text, default_project=None)
    with raises("project_id"):
        v.parse_source_instance("us-central1-a/web-1", default_project="Bad Project")
    # A form with its own project ignores the default, even a missing one.
    assert v.parse_source_instance("projects/p/zones/us-central1-a/instances/i", None).project == "p"


def test_instance_ref_validates_its_parts_and_is_frozen() -> None:
    with raises("zone"):
        InstanceRef(project="p", zone="Z", instance="i")
    with raises("project"):
        InstanceRef(project="", zone="us-central1-a", instance="i")
    with raises("instance"):
        InstanceRef(project="p", zone="us-central1-a", instance=None)  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        REF.zone = "other"  # type: ignore[misc]
    assert hash(REF) == hash(InstanceRef("my-project", "us-central1-a", "web-1"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("img-1", ("dflt", "img-1")),
        ("global/machineImages/img-1", ("dflt", "img-1")),
        ("projects/p/global/machineImages/img-1", ("p", "img-1")),
        ("https://www.googleapis.com/compute/beta/projects/p/global/machineImages/img-1", ("p", "img-1")),
        ("http://127.0.0.1:8085/compute/v1/projects/p/global/machineImages/123", ("p", "123")),
    ],
)
def test_machine_image_ref_forms(text: str, expected: tuple[str, str]) -> None:
    assert v.parse_machine_image_ref(text, "dflt") == expected


@pytest.mark.parametrize(
    "bad",
    ["", "Img", "img/", "global/images/img", "projects/p/global/machineImages/img/x", "img?x", "a/../b", None, 1],
)
def test_machine_image_ref_rejected(bad: object) -> None:
    with raises("machine_image", "must"):
        v.parse_machine_image_ref(bad, "p")


def test_machine_image_ref_needs_a_project() -> None:
    with raises("machine_image", "no default project"):
        v.parse_machine_image_ref("img-1", None)


# --------------------------------------------------------------------------------------------------
# API endpoints
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("good", "expected"),
    [
        ("http://127.0.0.1:8085", "http://127.0.0.1:8085"),
        ("http://127.0.0.1:8085/", "http://127.0.0.1:8085"),
        ("https://compute.googleapis.com", "https://compute.googleapis.com"),
        ("HTTPS://compute.example.com/base/path/", "https://compute.example.com/base/path"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
        ("http://emulator:8085", "http://emulator:8085"),
    ],
)
def test_api_endpoint_accepted(good: str, expected: str) -> None:
    assert v.validate_api_endpoint(good) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "127.0.0.1:8085",
        "ftp://host",
        "https://",
        "https://host?x=1",
        "https://host/#frag",
        "https://user:pw@host",
        "https://host:0",
        "https://host:65536",
        "https://host:port",
        "https://ho st",
        "https://host//x",
        "https://host/../x",
        "https://host/a%2Fb",
        "https://[::1",
        "https://[nothex]",
        " https://host",
        None,
        8085,
    ],
)
def test_api_endpoint_rejected(bad: object) -> None:
    with raises("api_endpoint"):
        v.validate_api_endpoint(bad)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("128.0.0.1", False),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("compute.googleapis.com", False),
        ("localhost.example.com", False),
        ("127.0.0.1.nip.io", False),
        ("", False),
        (None, False),
    ],
)
def test_is_loopback_host(host: Any, loopback: bool) -> None:
    assert v.is_loopback_host(host) is loopback


# --------------------------------------------------------------------------------------------------
# Property tests (hypothesis; profile from tests/strategies.py)
# --------------------------------------------------------------------------------------------------


@given(s.valid_source_instances())
def test_valid_source_instances_parsed(case: tuple[str, str, InstanceRef]) -> None:
    text, default, expected = case
    ref = v.parse_source_instance(text, default_project=default)
    assert ref == expected and ref.same_instance(expected)
    assert v.parse_source_instance(ref.partial_url, default_project=None) == ref


@given(s.invalid_source_instances(), st.one_of(st.none(), s.valid_project_ids()))
def test_invalid_source_instances_rejected(text: str, default: str | None) -> None:
    assert expect_error(v.parse_source_instance, text, default).parameter == "source_instance"


@given(s.junk(), st.one_of(st.none(), st.just("p"), s.junk()))
def test_source_instance_junk_rejected(value: Any, default: Any) -> None:
    try:
        ref = v.parse_source_instance(value, default)
    except MachineImageValidationError as error:
        assert error.parameter in ("source_instance", "project_id")
    else:  # path junk can, rarely, spell a valid reference
        assert isinstance(ref, InstanceRef)
