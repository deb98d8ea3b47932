"""The ``schemas`` fixtures: each test that takes one runs against both API versions (beta, v1)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_machine_images.api.schema import load_discovery_document, machine_image_schemas
from tests.unit.validation.support import API_VERSIONS


@pytest.fixture(params=API_VERSIONS)
def schemas(request: pytest.FixtureRequest) -> Any:
    """The schemas request bodies are checked against: the snapshot shipped in the package."""
    return machine_image_schemas(request.param)


@pytest.fixture(params=API_VERSIONS)
def document_schemas(request: pytest.FixtureRequest) -> Any:
    """Every schema of the installed client's discovery document: the checker on schemas no body of ours
    uses (``number`` fields, for one, appear only there)."""
    return load_discovery_document(request.param)["schemas"]
