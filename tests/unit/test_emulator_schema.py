"""The emulator's query-parameter table: derived from the discovery documents, with a faithful fallback."""

from __future__ import annotations

import pytest

from airflow_machine_images.emulator import schema

#: The discovery revision the emulator's fallback table was written from (emulator/schema.py).
TABLE_REVISION = "20261106"


#: How the discovery documents of the other revisions our environments install differ from the table,
#: measured: the compat cells of Airflow 2.11 to 3.2 pin google-api-python-client as of their provider's
#: release (revision 20260501). ``(version, revision)`` -> action -> (query parameters only that revision
#: lists, query parameters only the table's revision lists); actions not named are the same.
OTHER_REVISIONS: dict[tuple[str, str], dict[str, tuple[frozenset[str], frozenset[str]]]] = {
    ("beta", "20260501"): {},
    ("v1", "20260501"): {
        "globalOperations.list": (frozenset({"returnPartialSuccess"}), frozenset()),
        "zoneOperations.list": (frozenset({"returnPartialSuccess"}), frozenset()),
        "machineImages.list": (frozenset({"returnPartialSuccess"}), frozenset()),
        "instances.aggregatedList": (frozenset({"returnPartialSuccess"}), frozenset()),
        "instances.delete": (frozenset(), frozenset({"noGracefulShutdown"})),
    },
}


def _as_the_installed_revision_says(version: str, action: str, table: frozenset[str]) -> frozenset[str]:
    """What the installed client's document should list for ``action``, given what the table lists.

    :param version: ``beta`` or ``v1``.
    :param action: e.g. ``machineImages.list``.
    :param table: the fallback table's parameters (revision :data:`TABLE_REVISION`).
    """
    document = schema._discovery_document(version)
    revision = None if document is None else document.get("revision")
    if revision in (None, TABLE_REVISION):
        return table
    changes = OTHER_REVISIONS.get((version, str(revision)))
    assert changes is not None, f"compute.{version}.json revision {revision}: record how it differs in OTHER_REVISIONS"
    only_then, only_now = changes.get(action, (frozenset(), frozenset()))
    return (table - only_now) | only_then


@pytest.mark.parametrize("version", ["beta", "v1"])
@pytest.mark.parametrize("action", sorted(schema.ACTIONS))
def test_the_fallback_table_says_what_the_discovery_document_says(
    version: str, action: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    derived = schema.query_params(version, action)
    assert "alt" in derived and "fields" in derived  # the system parameters
    schema.query_params.cache_clear()
    installed = schema._discovery_document
    monkeypatch.setattr(schema, "_discovery_document", lambda version: None)  # googleapiclient absent
    try:
        table = schema.query_params(version, action)
    finally:
        schema.query_params.cache_clear()
    monkeypatch.setattr(schema, "_discovery_document", installed)
    assert derived == _as_the_installed_revision_says(version, action, table)


def test_set_labels_takes_no_request_id_and_v1_lists_no_partial_success(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the emulator's table (the current revision) says, whichever client is installed."""
    schema.query_params.cache_clear()
    monkeypatch.setattr(schema, "_discovery_document", lambda version: None)
    try:
        assert "requestId" not in schema.query_params("beta", "machineImages.setLabels")
        assert "requestId" in schema.query_params("v1", "machineImages.insert")
        assert "returnPartialSuccess" in schema.query_params("beta", "machineImages.list")
        assert "returnPartialSuccess" not in schema.query_params("v1", "machineImages.list")
    finally:
        schema.query_params.cache_clear()
