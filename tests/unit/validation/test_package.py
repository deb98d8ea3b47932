"""The validation package: re-exports only, no import cycle whichever module comes first, no heavy
imports, and every check raises only MachineImageValidationError."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given

from airflow_machine_images import validation as v
from airflow_machine_images.api.schema import machine_image_schemas
from airflow_machine_images.bodies import keys as key_material
from airflow_machine_images.validation import MachineImageValidationError
from tests import strategies as s
from tests.unit.validation.support import (
    build,
)

# --------------------------------------------------------------------------------------------------
# Every check raises only validation errors
# --------------------------------------------------------------------------------------------------


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
    ],
    "airflow_machine_images.validation.zones": ["validate_zone"],
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
from airflow.providers.common.compat.sdk import AirflowException
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

# The error types' module subclasses AirflowException (through common-compat: airflow.sdk.exceptions on 3.x,
# airflow.exceptions on 2.x): that import is the baseline; beyond it, no Airflow module (nor Google or
# HTTP library) may be loaded.
PROBE = """
import json, sys
from airflow.providers.common.compat.sdk import AirflowException
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
