"""Pure checks and normalisers for everything a DAG author hands us, before any request is sent.

This module only re-exports; import from here. The checks live by subject:

* :mod:`~airflow_machine_images.validation.primitives`: safe renderings of bad values, basic types,
  choices and positive numbers;
* :mod:`~airflow_machine_images.validation.names`: resource names and ids, labels, storage locations;
* :mod:`~airflow_machine_images.validation.zones`: zones (a region where a zone belongs fails, naming its zones);
* :mod:`~airflow_machine_images.validation.references`: instance, machine image and disk references,
  API endpoints;
* :mod:`~airflow_machine_images.validation.body_schema`: request bodies against the discovery schema;

Two neighbours are not re-exported (they import this package's modules): customer-supplied keys
are checked in :mod:`airflow_machine_images.bodies.keys`, and the ``machineImages.insert`` body
is built in :mod:`airflow_machine_images.bodies.machine_image`, next to the insert flow.

Nothing here does I/O or imports Google or HTTP libraries (the one Airflow import is
``airflow.sdk.exceptions``, through :mod:`airflow_machine_images.exceptions`): DAG files import the
operators at parse time, and the operators import this package. Every check raises
:class:`~airflow_machine_images.exceptions.MachineImageValidationError` (a :class:`ValueError`) naming
the parameter and the rule, whatever the type of the bad value, and never echoes encryption key material.
"""

from __future__ import annotations

from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.validation.body_schema import validate_body
from airflow_machine_images.validation.names import (
    INSTANCE_PATTERN,
    LABEL_KEY_PATTERN,
    LABEL_VALUE_PATTERN,
    MACHINE_IMAGE_REF_PATTERN,
    MAX_LABELS,
    NAME_PATTERN,
    OPERATION_PATTERN,
    PROJECT_PATTERN,
    REQUEST_ID_PATTERN,
    STORAGE_LOCATION_PATTERN,
    ZONE_PATTERN,
    sanitize_label_value,
    split_label_selector,
    validate_instance_name,
    validate_labels,
    validate_machine_image_name,
    validate_operation_name,
    validate_project_id,
    validate_request_id,
    validate_storage_locations,
)
from airflow_machine_images.validation.primitives import (
    coerce_rendered_bool,
    validate_bool,
    validate_choice,
    validate_optional_bool,
    validate_optional_positive_int,
    validate_positive_int,
    validate_positive_number,
)
from airflow_machine_images.validation.references import (
    URL_API_VERSIONS,
    InstanceRef,
    is_loopback_host,
    parse_machine_image_ref,
    parse_source_instance,
    validate_api_endpoint,
)
from airflow_machine_images.validation.zones import validate_zone

__all__ = [
    "INSTANCE_PATTERN",
    "LABEL_KEY_PATTERN",
    "LABEL_VALUE_PATTERN",
    "MACHINE_IMAGE_REF_PATTERN",
    "MAX_LABELS",
    "NAME_PATTERN",
    "OPERATION_PATTERN",
    "PROJECT_PATTERN",
    "REQUEST_ID_PATTERN",
    "STORAGE_LOCATION_PATTERN",
    "URL_API_VERSIONS",
    "ZONE_PATTERN",
    "InstanceRef",
    "MachineImageValidationError",
    "coerce_rendered_bool",
    "is_loopback_host",
    "parse_machine_image_ref",
    "parse_source_instance",
    "sanitize_label_value",
    "split_label_selector",
    "validate_api_endpoint",
    "validate_body",
    "validate_bool",
    "validate_choice",
    "validate_instance_name",
    "validate_labels",
    "validate_machine_image_name",
    "validate_operation_name",
    "validate_optional_bool",
    "validate_optional_positive_int",
    "validate_positive_int",
    "validate_positive_number",
    "validate_project_id",
    "validate_request_id",
    "validate_storage_locations",
    "validate_zone",
]
