"""What the validation tests share: the error check, the canary keys, the insert body builder's defaults.

Split from the one ``tests/unit/test_validation.py``; the tests mirror ``airflow_machine_images/validation/``
(and ``bodies/keys.py``, ``bodies/machine_image.py`` in ``test_bodies.py``). Checks are called through the
validation package (the import path users and the operators use), except those defined outside it
(``bodies.keys``, ``bodies.machine_image``), which are called in their own modules; the package's
re-exports are tested in ``test_package.py``.
"""

from __future__ import annotations

import base64
import contextlib
from typing import TYPE_CHECKING, Any

import pytest

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


def expect_error(function: Any, *args: Any, **kwargs: Any) -> MachineImageValidationError:
    """Call and require a MachineImageValidationError (any other exception fails the test as it is)."""
    with pytest.raises(MachineImageValidationError) as info:
        function(*args, **kwargs)
    error = info.value
    assert isinstance(error.parameter, str) and error.parameter
    assert str(error).startswith(f"Invalid {error.parameter}: ")
    return error
