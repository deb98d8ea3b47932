"""Unit tests for airflow_machine_images.validation, the key-material checks and the insert body builder.

Table-driven cases plus hypothesis properties. Checks are called through the validation package (the
import path users and the operators use), except those defined outside it (key_material,
machine_image_body), which are called in their own modules; the package's re-exports are tested too.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import importlib
import json
import pickle
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_machine_images import validation as v
from airflow_machine_images.api.schema import load_discovery_document, machine_image_schemas
from airflow_machine_images.bodies import keys as key_material
from airflow_machine_images.bodies import machine_image as machine_image_body
from airflow_machine_images.validation import InstanceRef, MachineImageValidationError
from tests import strategies as s

if TYPE_CHECKING:
    from collections.abc import Iterator

API_VERSIONS = ("beta", "v1")
ZERO_UUID = "00000000-0000-0000-0000-000000000000"
RAW_KEY = base64.b64encode(bytes(range(32))).decode()
KMS_KEY = "projects/kms-proj/locations/us-central1/keyRings/ring/cryptoKeys/key"
REF = InstanceRef(project="my-project", zone="us-central1-a", instance="web-1")


@contextlib.contextmanager
def raises(parameter: str, *fragments: str) -> Iterator[None]:
    """Require a MachineImageValidationError naming ``parameter`` whose message holds every fragment."""
    with pytest.raises(MachineImageValidationError) as info:
        yield
    error = info.value
    message = str(error)
    assert error.parameter == parameter, message
    assert message.startswith(f"Invalid {parameter}: "), message
    for fragment in fragments:
        assert fragment in message, message


@pytest.fixture(params=API_VERSIONS)
def schemas(request: pytest.FixtureRequest) -> Any:
    return machine_image_schemas(request.param)


# --------------------------------------------------------------------------------------------------
# The error type
# --------------------------------------------------------------------------------------------------


def test_error_message_format_names_parameter_rule_and_value() -> None:
    with pytest.raises(MachineImageValidationError) as info:
        v.validate_machine_image_name("Web_1")
    assert str(info.value) == (
        "Invalid name: must match [a-z](?:[-a-z0-9]{0,61}[a-z0-9])? (1-63 characters: lowercase letters, "
        "digits and hyphens, starting with a letter and not ending with a hyphen); got 'Web_1'."
    )
    assert isinstance(info.value, ValueError)
    assert info.value.parameter == "name"
    assert info.value.rule.startswith("must match [a-z]")


def test_error_survives_pickle_and_copy() -> None:
    error = MachineImageValidationError("labels['Team']", "label keys must match x", "'Team'")
    for clone in (pickle.loads(pickle.dumps(error)), copy.copy(error)):
        assert isinstance(clone, MachineImageValidationError)
        assert (clone.parameter, clone.rule, str(clone)) == (error.parameter, error.rule, str(error))


def test_unprintable_value_still_gives_a_message() -> None:
    with raises("name", "must be a string"):
        v.validate_machine_image_name(s._BadRepr())


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
            ["us-central1-a", "europe-west4-b", "z"],
            ["US-central1-a", "us-central1-a-", "1z", "", "a/b"],
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
# Source instances and machine image references
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("us-central1-a/web-1", ("default-proj", "us-central1-a", "web-1")),
        ("zones/us-central1-a/instances/web-1", ("default-proj", "us-central1-a", "web-1")),
        ("projects/p/zones/z/instances/i", ("p", "z", "i")),
        ("projects/example.com:p/zones/z/instances/123", ("example.com:p", "z", "123")),
        ("https://www.googleapis.com/compute/v1/projects/p/zones/z/instances/i", ("p", "z", "i")),
        ("https://www.googleapis.com/compute/beta/projects/p/zones/z/instances/i", ("p", "z", "i")),
        ("https://compute.googleapis.com/compute/alpha/projects/p/zones/z/instances/i", ("p", "z", "i")),
        ("https://compute.example.com:8443/base/compute/v1/projects/p/zones/z/instances/i", ("p", "z", "i")),
        ("http://127.0.0.1:8085/compute/beta/projects/p/zones/z/instances/i", ("p", "z", "i")),
        ("http://localhost/compute/v1/projects/p/zones/z/instances/i", ("p", "z", "i")),
        ("http://[::1]:8085/compute/v1/projects/p/zones/z/instances/i", ("p", "z", "i")),
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
        "projects/p/zones/z/instances/i/extra",
        "projects/P/zones/z/instances/i",
        "projects/p/zones/Z/instances/i",
        "projects/p/zones/z/instances/I",
        "ftp://www.googleapis.com/compute/v1/projects/p/zones/z/instances/i",
        "http://www.googleapis.com/compute/v1/projects/p/zones/z/instances/i",
        "https://www.googleapis.com/compute/v2/projects/p/zones/z/instances/i",
        "https://www.googleapis.com/projects/p/zones/z/instances/i",
        "https://user@www.googleapis.com/compute/v1/projects/p/zones/z/instances/i",
        "https://www.googleapis.com:0/compute/v1/projects/p/zones/z/instances/i",
        "https:///compute/v1/projects/p/zones/z/instances/i",
        "https://www.googleapis.com//compute/v1/projects/p/zones/z/instances/i",
        "//www.googleapis.com/compute/v1/projects/p/zones/z/instances/i",
        "a" * 3000,
        None,
        7,
        ["us-central1-a", "web-1"],
        {"zone": "z"},
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
        v.parse_source_instance("projects/Bad/zones/z/instances/i", None)


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ("zones/z/instances/i/", "empty path segments"),
        ("zones//instances/i", "empty path segments"),
        ("zones/z/instances/i?alt=json", "query string"),
        ("zones/z/instances/i#top", "fragment"),
        ("zones/z/instances/web%2F1", "percent-encoding"),
        ("zones/z/instances/a\\b", "'\\'"),
        ("zones/z/instances/../i", "'..'"),
        ("zones/z/instances/ i", "whitespace"),
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
    assert v.parse_source_instance("projects/p/zones/z/instances/i", None).project == "p"


def test_instance_ref_validates_its_parts_and_is_frozen() -> None:
    with raises("zone"):
        InstanceRef(project="p", zone="Z", instance="i")
    with raises("project"):
        InstanceRef(project="", zone="z", instance="i")
    with raises("instance"):
        InstanceRef(project="p", zone="z", instance=None)  # type: ignore[arg-type]
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
# Storage locations, choices, numbers, endpoints
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


def test_choice() -> None:
    assert v.validate_choice("reuse", "if_exists", ("reuse", "fail")) == "reuse"
    for bad in ("overwrite", "", "REUSE", None, ["reuse"], {"reuse": 1}, 1):
        with raises("if_exists", "must be one of 'reuse', 'fail'"):
            v.validate_choice(bad, "if_exists", ("reuse", "fail"))
    with raises("mode", "must be one of 'a', 'b'"):
        v.validate_choice([], "mode", {"b", "a"})


def test_positive_number() -> None:
    assert v.validate_positive_number(5, "timeout") == 5.0
    assert v.validate_positive_number(0.5, "timeout") == 0.5
    with pytest.raises(MachineImageValidationError) as info:
        v.validate_positive_number(None, "timeout")
    assert str(info.value) == "Invalid timeout: must be a positive, finite number; got None (NoneType)."
    for bad in (0, -1, -0.0, float("nan"), float("inf"), float("-inf"), True, False, "5", None, [1], 10**400):
        with raises("timeout", "positive, finite number"):
            v.validate_positive_number(bad, "timeout")


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
# Encryption keys: never echo key material
# --------------------------------------------------------------------------------------------------

CANARY = s.CANARY_RAW_KEY
CANARY_RSA = s.CANARY_RSA_KEY


def assert_no_secret(error: BaseException, *secrets: str) -> None:
    texts = [str(error), repr(error), repr(error.args), str(getattr(error, "got", ""))]
    cause: BaseException | None = error.__cause__ or error.__context__
    while cause is not None:
        texts.append(repr(cause))
        cause = cause.__cause__ or cause.__context__
    for secret in secrets:
        for text in texts:
            assert secret not in text, text
            assert secret[:12] not in text, text


@pytest.mark.parametrize(
    "good",
    [
        {"rawKey": RAW_KEY},
        {"rawKey": CANARY},
        {"rsaEncryptedKey": CANARY_RSA},
        {"kmsKeyName": KMS_KEY},
        {"kmsKeyName": KMS_KEY + "/cryptoKeyVersions/3"},
        {"kmsKeyName": KMS_KEY, "kmsKeyServiceAccount": "sa@kms-proj.iam.gserviceaccount.com"},
        {"kmsKeyName": "projects/example.com:p/locations/global/keyRings/R_1/cryptoKeys/K-2"},
    ],
)
def test_encryption_key_accepted(good: dict[str, str]) -> None:
    result = key_material.validate_encryption_key(good)
    assert result == good and result is not good


BAD_KEYS: list[tuple[Any, str, str]] = [
    ({"rawKey": CANARY[:-4]}, "machine_image_encryption_key.rawKey", "32 bytes"),
    ({"rawKey": CANARY + "AAAA"}, "machine_image_encryption_key.rawKey", "32 bytes"),
    ({"rawKey": CANARY.replace("=", "")}, "machine_image_encryption_key.rawKey", "32 bytes"),
    ({"rawKey": CANARY[:-2] + "B="}, "machine_image_encryption_key.rawKey", "32 bytes"),  # non-canonical bits
    ({"rawKey": " " + CANARY}, "machine_image_encryption_key.rawKey", "32 bytes"),
    ({"rawKey": CANARY.replace("+", "-").replace("/", "_") + "!"}, "machine_image_encryption_key.rawKey", "base64"),
    ({"rawKey": CANARY.encode()}, "machine_image_encryption_key.rawKey", "must be a string"),
    ({"rawKey": [CANARY]}, "machine_image_encryption_key.rawKey", "must be a string"),
    ({"rawKey": "too-short"}, "machine_image_encryption_key.rawKey", "32 bytes"),
    ({"rsaEncryptedKey": CANARY_RSA[:-1]}, "machine_image_encryption_key.rsaEncryptedKey", "base64"),
    ({"rsaEncryptedKey": CANARY_RSA + "\n"}, "machine_image_encryption_key.rsaEncryptedKey", "base64"),
    ({"rsaEncryptedKey": ""}, "machine_image_encryption_key.rsaEncryptedKey", "non-empty"),
    ({"rawKey": CANARY, "kmsKeyName": KMS_KEY}, "machine_image_encryption_key", "exactly one"),
    ({"rawKey": CANARY, "rsaEncryptedKey": CANARY_RSA}, "machine_image_encryption_key", "exactly one"),
    ({}, "machine_image_encryption_key", "exactly one"),
    ({"rawKey": CANARY, "sha256": CANARY}, "machine_image_encryption_key.sha256", "output only"),
    ({"rawKey": CANARY, "raw_key": CANARY}, "machine_image_encryption_key.raw_key", "rawKey"),
    ({"rawKey": CANARY, CANARY: "x"}, "machine_image_encryption_key (a field)", "not a CustomerEncryptionKey"),
    ({"rawKey": CANARY, 5: CANARY}, "machine_image_encryption_key", "field names must be strings"),
    (
        {"rawKey": CANARY, "kmsKeyServiceAccount": "sa@p.iam.gserviceaccount.com"},
        "machine_image_encryption_key.kmsKeyServiceAccount",
        "only",
    ),
    (
        {"kmsKeyName": KMS_KEY, "kmsKeyServiceAccount": "not an email"},
        "machine_image_encryption_key.kmsKeyServiceAccount",
        "email",
    ),
    ({"kmsKeyName": "projects/p/keyRings/r/cryptoKeys/k"}, "machine_image_encryption_key.kmsKeyName", "locations"),
    ({"kmsKeyName": KMS_KEY + "/"}, "machine_image_encryption_key.kmsKeyName", "cryptoKeys"),
    ({"kmsKeyName": None}, "machine_image_encryption_key.kmsKeyName", "must be a string"),
    (CANARY, "machine_image_encryption_key", "must be a dict"),
    ([CANARY], "machine_image_encryption_key", "must be a dict"),
    (None, "machine_image_encryption_key", "must be a dict"),
]


@pytest.mark.parametrize(("bad", "parameter", "fragment"), BAD_KEYS)
def test_encryption_key_rejected_without_echoing_key_material(bad: Any, parameter: str, fragment: str) -> None:
    with pytest.raises(MachineImageValidationError) as info:
        key_material.validate_encryption_key(bad)
    assert info.value.parameter == parameter, str(info.value)
    assert fragment in str(info.value)
    assert_no_secret(info.value, CANARY, CANARY_RSA)


def test_source_disk_encryption_keys() -> None:
    good = [
        {"sourceDisk": "zones/us-central1-a/disks/d1", "diskEncryptionKey": {"kmsKeyName": KMS_KEY}},
        {"sourceDisk": "projects/p/zones/z/disks/d2", "diskEncryptionKey": {"rawKey": RAW_KEY}},
        {"sourceDisk": "projects/p/regions/us-central1/disks/d3", "diskEncryptionKey": {"rawKey": RAW_KEY}},
        {
            "sourceDisk": "https://www.googleapis.com/compute/v1/projects/p/zones/z/disks/d4",
            "diskEncryptionKey": {"rsaEncryptedKey": CANARY_RSA},
        },
    ]
    result = key_material.validate_source_disk_encryption_keys(good)
    assert result == good and result[0] is not good[0]
    assert key_material.validate_source_disk_encryption_keys([]) == []


@pytest.mark.parametrize(
    ("bad", "parameter", "fragment"),
    [
        ([{"sourceDisk": "zones/z/disks/d", "diskEncryptionKey": {"rawKey": CANARY[:-4]}}],
         "source_disk_encryption_keys[0].diskEncryptionKey.rawKey", "32 bytes"),
        ([{"sourceDisk": "zones/z/disks/d"}], "source_disk_encryption_keys[0]", "diskEncryptionKey is missing"),
        ([{"diskEncryptionKey": {"rawKey": CANARY}}], "source_disk_encryption_keys[0]", "sourceDisk is missing"),
        ([{"sourceDisk": "zones/z/disks/d", "diskEncryptionKey": {"rawKey": CANARY}, "x": 1}],
         "source_disk_encryption_keys[0]", "unexpected field"),
        ([{"sourceDisk": "zones/z/instances/d", "diskEncryptionKey": {"rawKey": CANARY}}],
         "source_disk_encryption_keys[0].sourceDisk", "disks"),
        ([{"sourceDisk": "d", "diskEncryptionKey": {"rawKey": CANARY}}],
         "source_disk_encryption_keys[0].sourceDisk", "disks"),
        ([{"sourceDisk": "zones/z/disks/../d", "diskEncryptionKey": {"rawKey": CANARY}}],
         "source_disk_encryption_keys[0].sourceDisk", ".."),
        ([CANARY], "source_disk_encryption_keys[0]", "must be a dict"),
        ({"sourceDisk": "zones/z/disks/d", "diskEncryptionKey": {"rawKey": CANARY}},
         "source_disk_encryption_keys", "list"),
        (CANARY, "source_disk_encryption_keys", "list"),
        (None, "source_disk_encryption_keys", "list"),
    ],
)  # fmt: skip
def test_source_disk_encryption_keys_rejected(bad: Any, parameter: str, fragment: str) -> None:
    with pytest.raises(MachineImageValidationError) as info:
        key_material.validate_source_disk_encryption_keys(bad)
    assert info.value.parameter == parameter, str(info.value)
    assert fragment in str(info.value)
    assert_no_secret(info.value, CANARY)


# --------------------------------------------------------------------------------------------------
# Bodies against the real discovery documents
# --------------------------------------------------------------------------------------------------

FULL_BODY: dict[str, Any] = {
    "description": "nightly",
    "labels": {"team": "data"},
    "storageLocations": ["us"],
    "guestFlush": True,
    "labelFingerprint": "42WmSpB8rSM=",
    "machineImageEncryptionKey": {"kmsKeyName": KMS_KEY, "kmsKeyServiceAccount": "sa@p.iam.gserviceaccount.com"},
    "sourceDiskEncryptionKeys": [
        {"sourceDisk": "zones/us-central1-a/disks/d1", "diskEncryptionKey": {"rawKey": RAW_KEY}},
    ],
    "params": {
        "resourceManagerTags": {"tagKeys/123": "tagValues/456"},
        "includedDisks": ["boot"],
        "excludedDisks": [],
    },
}


def test_full_body_accepted_as_a_deep_copy(schemas: Any) -> None:
    body = copy.deepcopy(FULL_BODY)
    result = v.validate_body(body, schemas)
    assert result == FULL_BODY
    result["labels"]["team"] = "changed"
    result["sourceDiskEncryptionKeys"][0]["diskEncryptionKey"]["rawKey"] = "x"
    assert body == FULL_BODY
    assert v.validate_body({}, schemas) == {}
    named = {"name": "img", "sourceInstance": REF.partial_url}
    assert v.validate_body(named, schemas) == named


@pytest.mark.parametrize("field", sorted(s.OUTPUT_ONLY_FIELDS))
def test_output_only_fields_rejected(schemas: Any, field: str) -> None:
    with raises(f"body.{field}", "output-only"):
        v.validate_body({"description": "x", field: s.OUTPUT_ONLY_FIELDS[field]}, schemas)


def test_output_only_nested_field_rejected(schemas: Any) -> None:
    body = {"machineImageEncryptionKey": {"kmsKeyName": KMS_KEY, "sha256": CANARY}}
    with raises("body.machineImageEncryptionKey.sha256", "output-only"):
        v.validate_body(body, schemas)


@pytest.mark.parametrize(
    ("body", "parameter", "fragment"),
    [
        ({"colour": "blue"}, "body.colour", "is not a field of MachineImage"),
        ({"Labels": {}}, "body.Labels", "did you mean 'labels'?"),
        ({"storageLocation": ["us"]}, "body.storageLocation", "did you mean 'storageLocations'?"),
        ({"sourceDiskEncryptionKeys": [{"sourceDisk": "zones/z/disks/d", "diskEncryptionKey": {"foo": 1}}]},
         "body.sourceDiskEncryptionKeys[0].diskEncryptionKey.foo", "is not a field of CustomerEncryptionKey"),
        ({"machineImageEncryptionKey": {"kmsKeyNme": KMS_KEY}},
         "body.machineImageEncryptionKey.kmsKeyNme", "did you mean 'kmsKeyName'?"),
        ({"params": {"resourceManagerTag": {}}},
         "body.params.resourceManagerTag", "did you mean 'resourceManagerTags'?"),
        ({"a b": 1}, "body['a b']", "is not a field"),
        ({1: "x"}, "body[1]", "field names must be strings"),
    ],
)  # fmt: skip
def test_unknown_fields_rejected_with_a_suggestion(schemas: Any, body: Any, parameter: str, fragment: str) -> None:
    with raises(parameter, fragment):
        v.validate_body(body, schemas)


@pytest.mark.parametrize(("wrong", "parameter"), s.WRONG_TYPES)
def test_wrong_types_rejected(schemas: Any, wrong: dict[str, Any], parameter: str) -> None:
    with raises(parameter, "must be"):
        v.validate_body(wrong, schemas)


@pytest.mark.parametrize(
    ("schema_name", "body", "parameter", "fragment"),
    [
        ("Scheduling", {"onHostMaintenance": "SOMETIMES"}, "body.onHostMaintenance", "'MIGRATE', 'TERMINATE'"),
        ("Scheduling", {"onHostMaintenance": 1}, "body.onHostMaintenance", "must be a string"),
        ("Scheduling", {"hostErrorTimeoutSeconds": 2**31}, "body.hostErrorTimeoutSeconds", "int32"),
        ("Scheduling", {"hostErrorTimeoutSeconds": "30"}, "body.hostErrorTimeoutSeconds", "integer"),
        ("Scheduling", {"hostErrorTimeoutSeconds": True}, "body.hostErrorTimeoutSeconds", "integer"),
        ("Scheduling", {"hostErrorTimeoutSeconds": 1.5}, "body.hostErrorTimeoutSeconds", "integer"),
        ("AttachedDisk", {"mode": "READ_SOMETIMES"}, "body.mode", "'READ_ONLY', 'READ_WRITE'"),
        ("AttachedDisk", {"diskSizeGb": "ten"}, "body.diskSizeGb", "int64"),
        ("AttachedDisk", {"diskSizeGb": 1.0}, "body.diskSizeGb", "int64"),
        ("AttachedDisk", {"diskSizeGb": 2**63}, "body.diskSizeGb", "int64"),
        ("AttachedDisk", {"index": 0}, "body.index", "output-only"),
        ("Quota", {"limit": 1.0}, "body.limit", "output-only"),
        ("AutoscalingPolicyCpuUtilization", {"utilizationTarget": "0.5"}, "body.utilizationTarget", "finite number"),
        ("AutoscalingPolicyCpuUtilization", {"utilizationTarget": float("nan")}, "body.utilizationTarget", "finite"),
        ("MachineImage", {"name": "Bad_Name"}, "body.name", "must match [a-z]"),
    ],
)
def test_types_enums_ranges_and_patterns(
    schemas: Any, schema_name: str, body: dict[str, Any], parameter: str, fragment: str
) -> None:
    with raises(parameter, fragment):
        v.validate_body(body, schemas, schema_name=schema_name)


def test_integer_typed_strings_accept_ints(schemas: Any) -> None:
    body = {"diskSizeGb": 10, "deviceName": "boot", "mode": "READ_WRITE"}
    assert v.validate_body(body, schemas, schema_name="AttachedDisk") == body
    assert v.validate_body({"diskSizeGb": "10"}, schemas, schema_name="AttachedDisk") == {"diskSizeGb": "10"}
    target = {"utilizationTarget": 0.5}
    assert v.validate_body(target, schemas, schema_name="AutoscalingPolicyCpuUtilization") == target
    assert v.validate_body({"utilizationTarget": 1}, schemas, schema_name="AutoscalingPolicyCpuUtilization")


def test_body_must_be_a_dict_and_schema_must_exist(schemas: Any) -> None:
    junk: object
    for junk in (None, [], "x", 5, b"{}"):
        with raises("body", "must be a dict of MachineImage fields"):
            v.validate_body(junk, schemas)
    with raises("schema_name"):
        v.validate_body({}, schemas, schema_name="NoSuchSchema")
    with raises("overrides.colour"):
        v.validate_body({"colour": 1}, schemas, parameter="overrides")


def test_body_never_echoes_key_material(schemas: Any) -> None:
    cases = [
        {"machineImageEncryptionKey": CANARY},
        {"machineImageEncryptionKey": {"rawKey": [CANARY]}},
        {"machineImageEncryptionKey": {"rawKey": CANARY.encode()}},
        {"sourceDiskEncryptionKeys": [{"sourceDisk": "zones/z/disks/d", "diskEncryptionKey": CANARY}]},
        {"sourceDiskEncryptionKeys": [CANARY]},
        {"sourceDiskEncryptionKeys": CANARY},
    ]
    for body in cases:
        with pytest.raises(MachineImageValidationError) as info:
            v.validate_body(body, schemas)
        assert_no_secret(info.value, CANARY)


def test_containers_holding_key_fields_are_never_echoed(schemas: Any) -> None:
    """Defence in depth: a value that mentions key fields is described by its type only, wherever it is."""
    cases = [
        lambda: v.validate_body([{"machineImageEncryptionKey": {"rawKey": CANARY}}], schemas),
        lambda: v.validate_body({"description": {"rawKey": CANARY}}, schemas),
        lambda: v.validate_labels({"k": {"rawKey": CANARY}}),
        lambda: v.validate_labels([("diskEncryptionKey", CANARY)]),
        lambda: v.validate_storage_locations({"rsaEncryptedKey": CANARY}),
        lambda: build(schemas, machine_image_params=[{"rawKey": CANARY}]),
    ]
    for case in cases:
        with pytest.raises(MachineImageValidationError) as info:
            case()
        assert_no_secret(info.value, CANARY)
        assert "not shown" in str(info.value)


SYNTHETIC: dict[str, Any] = {
    "Thing": {
        "id": "Thing",
        "type": "object",
        "properties": {
            "anything": {"type": "any"},
            "free": {"type": "object"},
            "children": {"type": "object", "additionalProperties": {"$ref": "Thing"}},
            "broken": {"$ref": "Missing"},
            "count": {"type": "integer", "format": "uint32"},
            "big": {"type": "string", "format": "uint64"},
            "ratio": {"type": "number"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "legacy": {"type": "string", "description": "[Output only] Old."},
            "stamp": {"type": "string", "description": "Output only. When."},
        },
    }
}


@pytest.mark.parametrize(
    ("body", "parameter", "fragment"),
    [
        ({"anything": {"a": [1, {"b": float("inf")}]}}, "body.anything['a'][1]['b']", "finite"),
        ({"anything": {1: "x"}}, "body.anything[1]", "keys must be strings"),
        ({"anything": {"x": object()}}, "body.anything['x']", "JSON value"),
        ({"free": {"k": {1, 2}}}, "body.free['k']", "JSON value"),
        ({"children": {"a": {"count": -1}}}, "body.children['a'].count", "uint32"),
        ({"children": {"a": {"nope": 1}}}, "body.children['a'].nope", "is not a field of Thing"),
        ({"broken": {}}, "body.broken", "lacks"),
        ({"big": -1}, "body.big", "uint64"),
        ({"big": "-1"}, "body.big", "uint64"),
        ({"big": str(2**64)}, "body.big", "uint64"),
        ({"ratio": True}, "body.ratio", "finite number"),
        ({"ratio": 10**400}, "body.ratio", "finite number"),
        ({"tags": ["a", 1]}, "body.tags[1]", "must be a string"),
        ({"legacy": "x"}, "body.legacy", "output-only"),
        ({"stamp": "x"}, "body.stamp", "output-only"),
    ],
)
def test_generic_schema_rules(body: dict[str, Any], parameter: str, fragment: str) -> None:
    with raises(parameter, fragment):
        v.validate_body(body, SYNTHETIC, schema_name="Thing")


def test_generic_schema_accepts_json_values() -> None:
    body = {
        "anything": {"a": [1, 2.5, None, True, "s", {"b": []}]},
        "free": {"x": {"y": [1]}},
        "children": {"a": {"count": 4, "children": {"b": {"big": 2**64 - 1}}}},
        "ratio": 1,
        "tags": ("a", "b"),
    }
    result = v.validate_body(body, SYNTHETIC, schema_name="Thing")
    assert result["tags"] == ["a", "b"]
    assert json.loads(json.dumps(result)) == result


def test_deep_and_cyclic_values_fail_cleanly() -> None:
    deep: list[Any] = []
    cursor = deep
    for _ in range(5000):
        cursor.append([])
        cursor = cursor[0]
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    nested_things: dict[str, Any] = {}
    cursor_thing = nested_things
    for _ in range(200):
        cursor_thing["children"] = {"x": {}}
        cursor_thing = cursor_thing["children"]["x"]
    for body in ({"anything": deep}, {"free": cyclic}, nested_things):
        with pytest.raises(MachineImageValidationError) as info:
            v.validate_body(body, SYNTHETIC, schema_name="Thing")
        assert "nested more than" in str(info.value)


# --------------------------------------------------------------------------------------------------
# build_machine_image_body
# --------------------------------------------------------------------------------------------------


def build(schemas: Any, **overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "name": "img-1",
        "source_instance": REF,
        "description": None,
        "labels": None,
        "storage_locations": None,
        "guest_flush": None,
        "machine_image_encryption_key": None,
        "source_disk_encryption_keys": None,
        "machine_image_params": None,
        "body": None,
        "schemas": schemas,
    }
    arguments.update(overrides)
    return machine_image_body.build_machine_image_body(**arguments)


def test_build_minimal_body(schemas: Any) -> None:
    assert build(schemas) == {"name": "img-1", "sourceInstance": REF.partial_url}


def test_build_merges_arguments_and_body(schemas: Any) -> None:
    key = {"rawKey": RAW_KEY}
    disks = [{"sourceDisk": "zones/us-central1-a/disks/d1", "diskEncryptionKey": {"kmsKeyName": KMS_KEY}}]
    result = build(
        schemas,
        description="nightly",
        labels={"team": "data"},
        storage_locations=["us"],
        guest_flush=False,
        machine_image_encryption_key=key,
        source_disk_encryption_keys=disks,
        machine_image_params={"resourceManagerTags": {"tagKeys/1": "tagValues/2"}},
        body={"labelFingerprint": "42WmSpB8rSM="},
    )
    assert result == {
        "name": "img-1",
        "sourceInstance": "projects/my-project/zones/us-central1-a/instances/web-1",
        "description": "nightly",
        "labels": {"team": "data"},
        "storageLocations": ["us"],
        "guestFlush": False,
        "machineImageEncryptionKey": key,
        "sourceDiskEncryptionKeys": disks,
        "params": {"resourceManagerTags": {"tagKeys/1": "tagValues/2"}},
        "labelFingerprint": "42WmSpB8rSM=",
    }
    assert list(result)[:2] == ["name", "sourceInstance"]
    assert result["machineImageEncryptionKey"] is not key


def test_build_takes_dedicated_fields_from_body(schemas: Any) -> None:
    result = build(schemas, body={"labels": {"a": "b"}, "guestFlush": True, "description": "d"})
    assert result["labels"] == {"a": "b"} and result["guestFlush"] is True and result["description"] == "d"


@pytest.mark.parametrize(
    ("overrides", "parameter", "fragment"),
    [
        ({"labels": {"a": "b"}, "body": {"labels": {"c": "d"}}}, "body.labels", "also given as the labels argument"),
        ({"description": "x", "body": {"description": "y"}}, "body.description", "description argument"),
        ({"guest_flush": True, "body": {"guestFlush": True}}, "body.guestFlush", "guest_flush argument"),
        ({"storage_locations": ["us"], "body": {"storageLocations": ["eu"]}},
         "body.storageLocations", "storage_locations"),
        ({"machine_image_encryption_key": {"rawKey": RAW_KEY},
          "body": {"machineImageEncryptionKey": {"rawKey": RAW_KEY}}},
         "body.machineImageEncryptionKey", "machine_image_encryption_key argument"),
        ({"source_disk_encryption_keys": [], "body": {"sourceDiskEncryptionKeys": []}},
         "body.sourceDiskEncryptionKeys", "source_disk_encryption_keys argument"),
        ({"machine_image_params": {}, "body": {"params": {}}}, "body.params", "machine_image_params argument"),
        ({"body": {"name": "img-1"}}, "body.name", "set it with the name argument"),
        ({"body": {"sourceInstance": REF.partial_url}}, "body.sourceInstance", "source_instance argument"),
        ({"body": {"labels": {"Team": "x"}}}, "body.labels['Team']", "label keys"),
        ({"body": {"storageLocations": ["US"]}}, "body.storageLocations[0]", "location"),
        ({"body": {"machineImageEncryptionKey": {"rawKey": "short"}}},
         "body.machineImageEncryptionKey.rawKey", "32 bytes"),
        ({"body": {"colour": "blue"}}, "body.colour", "not a field"),
        ({"body": {"status": "READY"}}, "body.status", "output-only"),
        ({"body": ["x"]}, "body", "must be a dict"),
        ({"guest_flush": "yes"}, "guest_flush", "boolean"),
        ({"guest_flush": 1}, "guest_flush", "boolean"),
        ({"description": 5}, "description", "string"),
        ({"labels": {"Team": "x"}}, "labels['Team']", "label keys"),
        ({"storage_locations": "us"}, "storage_locations", "list"),
        ({"machine_image_params": {"foo": 1}}, "machine_image_params.foo", "not a field of MachineImageParams"),
        ({"machine_image_params": ["x"]}, "machine_image_params", "must be a dict"),
        ({"machine_image_encryption_key": {"rawKey": "short"}}, "machine_image_encryption_key.rawKey", "32 bytes"),
        ({"name": "Bad_Name"}, "name", "must match"),
        ({"name": None}, "name", "must be a string"),
        ({"source_instance": "us-central1-a/web-1"}, "source_instance", "InstanceRef"),
    ],
)  # fmt: skip
def test_build_rejects(schemas: Any, overrides: dict[str, Any], parameter: str, fragment: str) -> None:
    with raises(parameter, fragment):
        build(schemas, **overrides)


# --------------------------------------------------------------------------------------------------
# Property tests (hypothesis; profile from tests/strategies.py)
# --------------------------------------------------------------------------------------------------


def expect_error(function: Any, *args: Any, **kwargs: Any) -> MachineImageValidationError:
    """Call and require a MachineImageValidationError (any other exception fails the test as it is)."""
    with pytest.raises(MachineImageValidationError) as info:
        function(*args, **kwargs)
    error = info.value
    assert isinstance(error.parameter, str) and error.parameter
    assert str(error).startswith(f"Invalid {error.parameter}: ")
    return error


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


@given(s.valid_encryption_keys())
def test_valid_encryption_keys_accepted(key: dict[str, str]) -> None:
    assert key_material.validate_encryption_key(key) == key


@given(
    st.one_of(
        s.junk(),
        st.dictionaries(st.sampled_from(["rawKey", "rsaEncryptedKey", "kmsKeyName", "sha256", "x"]), s.junk()),
        st.fixed_dictionaries({"rawKey": st.text().map(lambda text: s.CANARY_RAW_KEY[:20] + text)}),
    )
)
def test_junk_encryption_keys_rejected_without_echo(value: Any) -> None:
    try:
        key_material.validate_encryption_key(value)
    except MachineImageValidationError as error:
        assert_no_secret(error, s.CANARY_RAW_KEY[:20])


@given(s.valid_bodies())
def test_valid_bodies_build(body: dict[str, Any]) -> None:
    for version in API_VERSIONS:
        result = build(machine_image_schemas(version), body=copy.deepcopy(body))
        assert result == {"name": "img-1", "sourceInstance": REF.partial_url, **body}


@given(s.invalid_bodies())
def test_invalid_bodies_rejected(case: tuple[Any, str]) -> None:
    body, path = case
    for version in API_VERSIONS:
        error = expect_error(v.validate_body, body, machine_image_schemas(version))
        assert error.parameter.startswith(path), (error.parameter, path)
        error = expect_error(build, machine_image_schemas(version), body=body)
        assert error.parameter.startswith(path), (error.parameter, path)


@given(s.junk())
def test_every_validator_raises_only_validation_errors(value: Any) -> None:
    schemas = machine_image_schemas("beta")
    checks = [
        lambda: v.validate_machine_image_name(value),
        lambda: v.validate_project_id(value),
        lambda: v.validate_request_id(value),
        lambda: v.validate_operation_name(value),
        lambda: v.validate_zone(value),
        lambda: v.validate_instance_name(value),
        lambda: v.parse_source_instance(value, "p"),
        lambda: v.parse_machine_image_ref(value, "p"),
        lambda: v.validate_labels(value),
        lambda: v.validate_labels({"k": value}),
        lambda: v.validate_storage_locations(value),
        lambda: v.validate_storage_locations([value]),
        lambda: key_material.validate_encryption_key(value),
        lambda: key_material.validate_encryption_key({"rawKey": value}),
        lambda: key_material.validate_source_disk_encryption_keys(value),
        lambda: key_material.validate_source_disk_encryption_keys([{"sourceDisk": value, "diskEncryptionKey": value}]),
        lambda: v.validate_choice(value, "mode", {"a", "b"}),
        lambda: v.validate_positive_number(value, "timeout"),
        lambda: v.validate_api_endpoint(value),
        lambda: v.validate_body(value, schemas),
        lambda: v.validate_body({"params": value}, schemas),
        lambda: v.validate_body({"labels": {"k": value}}, schemas),
        lambda: v.validate_body({"storageLocations": [value]}, schemas),
        lambda: build(schemas, body={"description": value}),
        lambda: build(schemas, guest_flush=value),
        lambda: build(schemas, machine_image_params=value),
        lambda: build(schemas, name=value),
        lambda: v.sanitize_label_value(value),
        lambda: v.is_loopback_host(value),
    ]
    for check in checks:
        try:
            check()
        except MachineImageValidationError as error:
            assert str(error).startswith("Invalid ")


# --------------------------------------------------------------------------------------------------
# The package: re-exports only, and no import cycle whichever module comes first
# --------------------------------------------------------------------------------------------------

#: Where each name the validation package exports is defined.
HOMES = {
    "airflow_machine_images.exceptions": ["MachineImageValidationError"],
    "airflow_machine_images.validation.primitives": [
        "coerce_rendered_bool",
        "validate_bool",
        "validate_choice",
        "validate_optional_bool",
        "validate_optional_positive_int",
        "validate_positive_int",
        "validate_positive_number",
    ],
    "airflow_machine_images.validation.names": [
        "INSTANCE_PATTERN",
        "LABEL_KEY_PATTERN",
        "LABEL_VALUE_PATTERN",
        "MACHINE_IMAGE_REF_PATTERN",
        "MAX_LABELS",
        "NAME_PATTERN",
        "split_label_selector",
        "OPERATION_PATTERN",
        "PROJECT_PATTERN",
        "REQUEST_ID_PATTERN",
        "STORAGE_LOCATION_PATTERN",
        "ZONE_PATTERN",
        "sanitize_label_value",
        "validate_instance_name",
        "validate_labels",
        "validate_machine_image_name",
        "validate_operation_name",
        "validate_project_id",
        "validate_request_id",
        "validate_storage_locations",
        "validate_zone",
    ],
    "airflow_machine_images.validation.references": [
        "URL_API_VERSIONS",
        "InstanceRef",
        "is_loopback_host",
        "parse_machine_image_ref",
        "parse_source_instance",
        "validate_api_endpoint",
    ],
    "airflow_machine_images.validation.body_schema": ["validate_body"],
}


def test_package_exports_each_name_of_its_home_module() -> None:
    assert sorted(v.__all__) == sorted(name for names in HOMES.values() for name in names)
    for module_name, names in HOMES.items():
        module = importlib.import_module(module_name)
        for name in names:
            assert getattr(v, name) is getattr(module, name), (module_name, name)
    with pytest.raises(AttributeError, match="no attribute 'no_such_check'"):
        v.no_such_check  # noqa: B018


CYCLE_PROBE = """
import importlib, sys
import airflow.sdk.exceptions
for first in {modules!r}:
    for name in [m for m in sys.modules if m.startswith("airflow_machine_images")]:
        del sys.modules[name]
    importlib.import_module(first)
    validation = importlib.import_module("airflow_machine_images.validation")
    namespace = {{}}
    exec("from airflow_machine_images.validation import *", namespace)
    assert all(name in namespace for name in validation.__all__), first
print("ok")
"""


def test_each_module_can_be_imported_first() -> None:
    modules = [
        *HOMES,
        "airflow_machine_images.bodies.keys",
        "airflow_machine_images.bodies.machine_image",
        "airflow_machine_images.validation",
        "airflow_machine_images.api.calls",
        "airflow_machine_images.api.paging",
        "airflow_machine_images.api.responses",
        "airflow_machine_images.api.redaction",
        "airflow_machine_images.api.schema",
        "airflow_machine_images.planning.retention",
    ]
    out = subprocess.run(
        [sys.executable, "-c", CYCLE_PROBE.format(modules=modules)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "ok"


# --------------------------------------------------------------------------------------------------
# Import cost
# --------------------------------------------------------------------------------------------------

HEAVY = ("google", "googleapiclient", "requests", "aiohttp", "airflow", "httplib2", "grpc")

# The error types' module subclasses airflow.sdk.exceptions.AirflowException: that import is the
# baseline; beyond it, no Airflow module (nor Google or HTTP library) may be loaded.
PROBE = """
import json, sys
import airflow.sdk.exceptions
before = set(sys.modules)
import {module}
added = sorted(set(sys.modules) - before)
print(json.dumps(added))
"""


@pytest.mark.parametrize(
    "module",
    [
        "airflow_machine_images.validation",
        "airflow_machine_images.api.schema",
        "airflow_machine_images.bodies.keys",
        "airflow_machine_images.bodies.machine_image",
    ],
)
def test_import_loads_no_google_http_or_further_airflow_module(module: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)], capture_output=True, text=True, check=True
    )
    added = json.loads(out.stdout.strip().splitlines()[-1])
    assert module in added
    heavy = [name for name in added if name.split(".")[0] in HEAVY]
    assert heavy == [], heavy
