"""The ``schemas`` fixture: each test that takes it runs against both discovery documents (beta, v1)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_machine_images.api.schema import machine_image_schemas
from tests.unit.validation.support import API_VERSIONS


@pytest.fixture(params=API_VERSIONS)
def schemas(request: pytest.FixtureRequest) -> Any:
    return machine_image_schemas(request.param)
