"""Unit tests for airflow_machine_images.validation.body_schema: request bodies against the real discovery
documents (beta and v1) and a synthetic schema; key material is never echoed."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given

from airflow_machine_images import validation as v
from airflow_machine_images.api.schema import machine_image_schemas
from airflow_machine_images.validation import MachineImageValidationError
from tests import strategies as s
from tests.unit.validation.support import (
    API_VERSIONS,
    CANARY,
    KMS_KEY,
    RAW_KEY,
    REF,
    assert_no_secret,
    build,
    expect_error,
    raises,
)

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
        ({"sourceDiskEncryptionKeys": [{"sourceDisk": "zones/us-central1-a/disks/d", "diskEncryptionKey": {"foo": 1}}]},
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
    document_schemas: Any, schema_name: str, body: dict[str, Any], parameter: str, fragment: str
) -> None:
    with raises(parameter, fragment):
        v.validate_body(body, document_schemas, schema_name=schema_name)


def test_integer_typed_strings_accept_ints(document_schemas: Any) -> None:
    body = {"diskSizeGb": 10, "deviceName": "boot", "mode": "READ_WRITE"}
    assert v.validate_body(body, document_schemas, schema_name="AttachedDisk") == body
    assert v.validate_body({"diskSizeGb": "10"}, document_schemas, schema_name="AttachedDisk") == {"diskSizeGb": "10"}
    target = {"utilizationTarget": 0.5}
    assert v.validate_body(target, document_schemas, schema_name="AutoscalingPolicyCpuUtilization") == target
    assert v.validate_body({"utilizationTarget": 1}, document_schemas, schema_name="AutoscalingPolicyCpuUtilization")


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
        {"sourceDiskEncryptionKeys": [{"sourceDisk": "zones/us-central1-a/disks/d", "diskEncryptionKey": CANARY}]},
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
# Property tests (hypothesis; profile from tests/strategies.py)
# --------------------------------------------------------------------------------------------------


@given(s.invalid_bodies())
def test_invalid_bodies_rejected(case: tuple[Any, str]) -> None:
    body, path = case
    for version in API_VERSIONS:
        error = expect_error(v.validate_body, body, machine_image_schemas(version))
        assert error.parameter.startswith(path), (error.parameter, path)
        error = expect_error(build, machine_image_schemas(version), body=body)
        assert error.parameter.startswith(path), (error.parameter, path)
