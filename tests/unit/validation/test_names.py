"""Unit tests for airflow_machine_images.validation.names: names and ids, labels, storage locations, and the
patterns against the discovery documents. Table-driven cases plus hypothesis properties."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_machine_images import validation as v
from airflow_machine_images.api.schema import load_discovery_document
from airflow_machine_images.validation import MachineImageValidationError
from tests import strategies as s
from tests.unit.validation.support import (
    API_VERSIONS,
    ZERO_UUID,
    expect_error,
    raises,
)

# --------------------------------------------------------------------------------------------------
# Patterns agree with the discovery documents
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", API_VERSIONS)
def test_patterns_match_the_discovery_document(version: str) -> None:
    document = load_discovery_document(version)
    resources = document["resources"]
    get_instance = resources["instances"]["methods"]["get"]["parameters"]
    get_operation = resources["globalOperations"]["methods"]["get"]["parameters"]
    get_image = resources["machineImages"]["methods"]["get"]["parameters"]
    insert_image = resources["machineImages"]["methods"]["insert"]["parameters"]
    assert insert_image["project"]["pattern"] == v.PROJECT_PATTERN
    assert get_instance["project"]["pattern"] == v.PROJECT_PATTERN
    assert get_instance["zone"]["pattern"] == v.ZONE_PATTERN
    assert get_instance["instance"]["pattern"] == v.INSTANCE_PATTERN
    assert get_operation["operation"]["pattern"] == v.OPERATION_PATTERN
    assert get_image["machineImage"]["pattern"] == v.MACHINE_IMAGE_REF_PATTERN
    assert document["schemas"]["MachineImage"]["properties"]["name"]["pattern"] == v.NAME_PATTERN


# --------------------------------------------------------------------------------------------------
# Names and ids
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("good", ["a", "web-1", "a" * 63, "img-20240101", "a1", "x-y-z"])
def test_name_accepted(good: str) -> None:
    assert v.validate_machine_image_name(good) == good


@pytest.mark.parametrize(
    "bad",
    ["", "Web_1", "-a", "a-", "1abc", "a" * 64, "a b", " a", "a\n", "a.b", "a/b", "é", None, 5, ["a"], b"a", {"a": 1}],
)
def test_name_rejected(bad: object) -> None:
    with raises("name", "must"):
        v.validate_machine_image_name(bad)
    with raises("image_name"):
        v.validate_machine_image_name(bad, "image_name")


@pytest.mark.parametrize(
    "good",
    ["my-project", "example.com:my-project", "123456789012", "a", "0", "a.b-c.d:proj", "1project", "p" * 63],
)
def test_project_id_accepted(good: str) -> None:
    assert v.validate_project_id(good) == good


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "Bad Project!",
        "p/../x",
        " my-project",
        "my-project ",
        "my-project\n",
        "My-Project",
        "proj-",
        "-proj",
        "example.com:",
        ":proj",
        "ex..com:proj",
        "p" * 64,
        "1" * 20 + "a-",
        "projects/p",
        None,
        42,
        True,
    ],
)
def test_project_id_rejected(bad: object) -> None:
    with raises("project_id", "project id or number"):
        v.validate_project_id(bad)


def test_request_id_normalised_to_lower_case() -> None:
    upper = "6F1C1F56-5F0E-4C1B-9A57-3C2B8F6F0A11"
    assert v.validate_request_id(upper) == upper.lower()
    assert v.validate_request_id(upper.lower()) == upper.lower()


def test_zero_request_id_has_its_own_rule() -> None:
    with raises("request_id", "zero UUID"):
        v.validate_request_id(ZERO_UUID)
    try:
        v.validate_request_id("not-a-uuid")
    except MachineImageValidationError as error:
        assert "zero UUID" not in error.rule
        assert "8-4-4-4-12" in error.rule


@pytest.mark.parametrize(
    "bad",
    [
        "not-a-uuid",
        "{6f1c1f56-5f0e-4c1b-9a57-3c2b8f6f0a11}",
        "urn:uuid:6f1c1f56-5f0e-4c1b-9a57-3c2b8f6f0a11",
        "6f1c1f565f0e4c1b9a573c2b8f6f0a11",
        "6f1c1f56-5f0e-4c1b-9a57-3c2b8f6f0a1",
        "6f1c1f56-5f0e-4c1b-9a57-3c2b8f6f0a11 ",
        "6f1c1f56-5f0e-4c1b-9a57-3c2b8f6f0a11\n",
        "gf1c1f56-5f0e-4c1b-9a57-3c2b8f6f0a11",
        "",
        None,
        12345,
    ],
)
def test_request_id_rejected(bad: object) -> None:
    with raises("request_id", "UUID"):
        v.validate_request_id(bad)


@pytest.mark.parametrize(
    ("function", "parameter", "good", "bad"),
    [
        (
            v.validate_zone,
            "zone",
            ["us-central1-a", "europe-west4-b", "us-west4-ai2b", "us-newregion9-q"],
            ["US-central1-a", "us-central1-a-", "1z", "", "a/b", "z", "us-central1", "us-central1-ab"],
        ),
        (v.validate_instance_name, "instance", ["web-1", "123456789", "i"], ["Web", "0123", "web_1", "", "a" * 64]),
        (
            v.validate_operation_name,
            "operation_name",
            ["operation-1700000000000-5f1c-abc", "9876543210"],
            ["Operation-1", "op_1", "", "0", "operation-1/wait"],
        ),
    ],
)
def test_path_parameters(function: Any, parameter: str, good: list[str], bad: list[Any]) -> None:
    for value in good:
        assert function(value) == value
    for value in [*bad, None, 3, ["x"]]:
        with raises(parameter, "must"):
            function(value)


# --------------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------------


def test_labels_accepted_and_copied() -> None:
    labels = {"team": "data", "env": "", "a_b-c": "x_y-1", "k" * 63: "v" * 63}
    result = v.validate_labels(labels)
    assert result == labels and result is not labels
    sixty_four = {f"k{i}": str(i) for i in range(64)}
    assert v.validate_labels(sixty_four) == sixty_four


@pytest.mark.parametrize(
    ("labels", "parameter", "fragment"),
    [
        ({"Team": "x"}, "labels['Team']", "label keys must match"),
        ({"team": "Has Spaces"}, "labels['team']", "label values must match"),
        ({"team": "x" * 64}, "labels['team']", "label values"),
        ({"k" * 64: "x"}, f"labels['{'k' * 64}']", "label keys"),
        ({"1team": "x"}, "labels['1team']", "label keys"),
        ({"": "x"}, "labels['']", "label keys"),
        ({"team": None}, "labels['team']", "label values"),
        ({"team": 5}, "labels['team']", "label values"),
        ({5: "x"}, "labels[5]", "label keys"),
        ({("a",): "x"}, "labels[('a',)]", "label keys"),
        ({f"k{i}": "v" for i in range(65)}, "labels", "at most 64"),
        (["team", "x"], "labels", "must be a dict"),
        ("team=x", "labels", "must be a dict"),
        (None, "labels", "must be a dict"),
    ],
)
def test_labels_rejected(labels: object, parameter: str, fragment: str) -> None:
    with raises(parameter, fragment):
        v.validate_labels(labels)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("My DAG.v2", "my-dag-v2"),
        ("already_valid-1", "already_valid-1"),
        ("", ""),
        ("ÄÖÜ", "---"),
        ("task/with:odd#chars", "task-with-odd-chars"),
    ],
)
def test_sanitize_label_value_examples(text: str, expected: str) -> None:
    assert v.sanitize_label_value(text) == expected


def test_sanitize_label_value_keeps_long_ids_distinct() -> None:
    first, second = "a" * 100 + "1", "a" * 100 + "2"
    one, two = v.sanitize_label_value(first), v.sanitize_label_value(second)
    assert one != two and len(one) == len(two) == 63
    assert one == v.sanitize_label_value(first)  # stable
    assert one.startswith("a" * 54 + "-")
    assert len(v.sanitize_label_value("b" * 63)) == 63 and v.sanitize_label_value("b" * 63) == "b" * 63


@given(st.text(max_size=150))
def test_sanitize_label_value_always_gives_a_valid_label(text: str) -> None:
    value = v.sanitize_label_value(text)
    assert v.validate_labels({"key": value}) == {"key": value}
    assert v.sanitize_label_value(value) == value


def test_sanitize_label_value_rejects_non_text() -> None:
    with raises("text", "must be a string"):
        v.sanitize_label_value(None)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Storage locations
# --------------------------------------------------------------------------------------------------


def test_storage_locations() -> None:
    assert v.validate_storage_locations(["us"]) == ["us"]
    assert v.validate_storage_locations(("eu", "us-central1")) == ["eu", "us-central1"]
    assert v.validate_storage_locations([]) == []
    for bad, parameter in [
        ([""], "storage_locations[0]"),
        (["US"], "storage_locations[0]"),
        (["us", "us central"], "storage_locations[1]"),
        (["us", "us"], "storage_locations[1]"),
        ([None], "storage_locations[0]"),
        ("us", "storage_locations"),
        ({"us"}, "storage_locations"),
        (None, "storage_locations"),
    ]:
        with raises(parameter):
            v.validate_storage_locations(bad)


# --------------------------------------------------------------------------------------------------
# Property tests (hypothesis; profile from tests/strategies.py)
# --------------------------------------------------------------------------------------------------


@given(s.valid_names())
def test_valid_names_accepted(name: str) -> None:
    assert v.validate_machine_image_name(name) == name


@given(s.invalid_names())
def test_invalid_names_rejected(value: Any) -> None:
    assert expect_error(v.validate_machine_image_name, value).parameter == "name"


@given(s.valid_project_ids())
def test_valid_project_ids_accepted(project: str) -> None:
    assert v.validate_project_id(project) == project


@given(s.invalid_project_ids())
def test_invalid_project_ids_rejected(value: Any) -> None:
    assert expect_error(v.validate_project_id, value).parameter == "project_id"


@given(s.valid_zones(), s.valid_instance_names(), s.valid_operation_names())
def test_valid_path_parameters_accepted(zone: str, instance: str, operation: str) -> None:
    assert v.validate_zone(zone) == zone
    assert v.validate_instance_name(instance) == instance
    assert v.validate_operation_name(operation) == operation


@given(s.invalid_zones(), s.invalid_instance_names(), s.invalid_operation_names())
def test_invalid_path_parameters_rejected(zone: Any, instance: Any, operation: Any) -> None:
    assert expect_error(v.validate_zone, zone).parameter == "zone"
    assert expect_error(v.validate_instance_name, instance).parameter == "instance"
    assert expect_error(v.validate_operation_name, operation).parameter == "operation_name"


@given(s.valid_request_ids())
def test_valid_request_ids_accepted(request_id: str) -> None:
    assert v.validate_request_id(request_id) == request_id.lower()


@given(s.invalid_request_ids())
def test_invalid_request_ids_rejected(value: Any) -> None:
    assert expect_error(v.validate_request_id, value).parameter == "request_id"


@given(s.valid_labels())
def test_valid_labels_accepted(labels: dict[str, str]) -> None:
    assert v.validate_labels(labels) == labels


@given(s.invalid_labels())
def test_invalid_labels_rejected(value: Any) -> None:
    assert expect_error(v.validate_labels, value).parameter.startswith("labels")
