"""Unit tests for the two checks that live outside the validation package: customer-supplied keys
(airflow_machine_images.bodies.keys) and the machineImages.insert body (airflow_machine_images.bodies.machine_image)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_machine_images.api.schema import machine_image_schemas
from airflow_machine_images.bodies import keys as key_material
from airflow_machine_images.validation import MachineImageValidationError
from tests import strategies as s
from tests.unit.validation.support import (
    API_VERSIONS,
    CANARY,
    CANARY_RSA,
    KMS_KEY,
    RAW_KEY,
    REF,
    assert_no_secret,
    build,
    raises,
)

# --------------------------------------------------------------------------------------------------
# Encryption keys: never echo key material
# --------------------------------------------------------------------------------------------------


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
        {"sourceDisk": "projects/p/zones/us-central1-a/disks/d2", "diskEncryptionKey": {"rawKey": RAW_KEY}},
        {"sourceDisk": "projects/p/regions/us-central1/disks/d3", "diskEncryptionKey": {"rawKey": RAW_KEY}},
        {
            "sourceDisk": "https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a/disks/d4",
            "diskEncryptionKey": {"rsaEncryptedKey": CANARY_RSA},
        },
    ]
    result = key_material.validate_source_disk_encryption_keys(good)
    assert result == good and result[0] is not good[0]
    assert key_material.validate_source_disk_encryption_keys([]) == []


@pytest.mark.parametrize(
    ("bad", "parameter", "fragment"),
    [
        ([{"sourceDisk": "zones/us-central1-a/disks/d", "diskEncryptionKey": {"rawKey": CANARY[:-4]}}],
         "source_disk_encryption_keys[0].diskEncryptionKey.rawKey", "32 bytes"),
        ([{"sourceDisk": "zones/us-central1-a/disks/d"}], "source_disk_encryption_keys[0]", "diskEncryptionKey is missing"),  # noqa: E501
        ([{"diskEncryptionKey": {"rawKey": CANARY}}], "source_disk_encryption_keys[0]", "sourceDisk is missing"),
        ([{"sourceDisk": "zones/us-central1-a/disks/d", "diskEncryptionKey": {"rawKey": CANARY}, "x": 1}],
         "source_disk_encryption_keys[0]", "unexpected field"),
        ([{"sourceDisk": "zones/us-central1-a/instances/d", "diskEncryptionKey": {"rawKey": CANARY}}],
         "source_disk_encryption_keys[0].sourceDisk", "disks"),
        ([{"sourceDisk": "d", "diskEncryptionKey": {"rawKey": CANARY}}],
         "source_disk_encryption_keys[0].sourceDisk", "disks"),
        ([{"sourceDisk": "zones/us-central1-a/disks/../d", "diskEncryptionKey": {"rawKey": CANARY}}],
         "source_disk_encryption_keys[0].sourceDisk", ".."),
        ([CANARY], "source_disk_encryption_keys[0]", "must be a dict"),
        ({"sourceDisk": "zones/us-central1-a/disks/d", "diskEncryptionKey": {"rawKey": CANARY}},
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
# build_machine_image_body
# --------------------------------------------------------------------------------------------------


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
