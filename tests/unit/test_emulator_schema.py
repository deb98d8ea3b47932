"""The emulator's query-parameter table: derived from the discovery documents, with a faithful fallback."""

from __future__ import annotations

import pytest

from airflow_machine_images.emulator import schema

#: The discovery revision the emulator's fallback table was written from (emulator/schema.py).
TABLE_REVISION = "20261106"


def _same_revision_as_the_table(*versions: str) -> None:
    """Skip, saying why, where the installed client's documents are of another revision than the table's.

    An older google-api-python-client (the Airflow 2.11 cell's, as of its provider's release day) lists
    other parameters (v1 ``returnPartialSuccess``, no ``noGracefulShutdown``); the table is compared in
    every environment whose client carries revision 20261106: ``make test`` and the newest compat cell.
    """
    for version in versions:
        document = schema._discovery_document(version)
        revision = None if document is None else document.get("revision")
        if revision not in (None, TABLE_REVISION):
            pytest.skip(f"installed compute.{version}.json is revision {revision}, the table is of {TABLE_REVISION}")


@pytest.mark.parametrize("version", ["beta", "v1"])
@pytest.mark.parametrize("action", sorted(schema.ACTIONS))
def test_the_fallback_table_says_what_the_discovery_document_says(
    version: str, action: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _same_revision_as_the_table(version)
    derived = schema.query_params(version, action)
    assert "alt" in derived and "fields" in derived  # the system parameters
    schema.query_params.cache_clear()
    monkeypatch.setattr(schema, "_discovery_document", lambda version: None)  # googleapiclient absent
    try:
        assert schema.query_params(version, action) == derived
    finally:
        schema.query_params.cache_clear()


def test_set_labels_takes_no_request_id_and_v1_lists_no_partial_success() -> None:
    _same_revision_as_the_table("beta", "v1")
    assert "requestId" not in schema.query_params("beta", "machineImages.setLabels")
    assert "requestId" in schema.query_params("v1", "machineImages.insert")
    assert "returnPartialSuccess" in schema.query_params("beta", "machineImages.list")
    assert "returnPartialSuccess" not in schema.query_params("v1", "machineImages.list")
