"""The emulator's query-parameter table: derived from the discovery documents, with a faithful fallback."""

from __future__ import annotations

import pytest

from airflow_machine_images.emulator import schema


@pytest.mark.parametrize("version", ["beta", "v1"])
@pytest.mark.parametrize("action", sorted(schema.ACTIONS))
def test_the_fallback_table_says_what_the_discovery_document_says(
    version: str, action: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    derived = schema.query_params(version, action)
    assert "alt" in derived and "fields" in derived  # the system parameters
    schema.query_params.cache_clear()
    monkeypatch.setattr(schema, "_discovery_document", lambda version: None)  # googleapiclient absent
    try:
        assert schema.query_params(version, action) == derived
    finally:
        schema.query_params.cache_clear()


def test_set_labels_takes_no_request_id_and_v1_lists_no_partial_success() -> None:
    assert "requestId" not in schema.query_params("beta", "machineImages.setLabels")
    assert "requestId" in schema.query_params("v1", "machineImages.insert")
    assert "returnPartialSuccess" in schema.query_params("beta", "machineImages.list")
    assert "returnPartialSuccess" not in schema.query_params("v1", "machineImages.list")
