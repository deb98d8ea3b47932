"""The shipped schema snapshot against the installed google-api-python-client's discovery documents.

``airflow_machine_images/api/compute_schemas.json`` is what request bodies are checked against. Where the
installed client carries the documents the snapshot was made from (the project's lock), the two must be
the same: a test here fails, naming each changed field, when the lock moves the client on and nobody ran
``make schema-snapshot``. An older client (Airflow 2.11's cell, Composer images) has older documents:
then the snapshot must be the newer side, and what it adds is shown as a warning.
"""

from __future__ import annotations

import copy
import json
import warnings

import pytest

from airflow_machine_images.api import schema
from airflow_machine_images.api.schema import (
    ROOT_SCHEMAS,
    SUPPORTED_API_VERSIONS,
    describe_changes,
    load_discovery_document,
    load_snapshot,
    schema_closure,
    snapshot_of,
)


def installed_snapshot() -> dict:
    """The snapshot the installed client's documents would give."""
    documents = {version: load_discovery_document(version) for version in SUPPORTED_API_VERSIONS}
    return snapshot_of(documents, "installed")


def test_the_snapshot_matches_the_installed_clients_documents() -> None:
    shipped, installed = load_snapshot(), installed_snapshot()
    changes = describe_changes(shipped, installed)
    revisions = {
        version: (shipped["versions"][version]["revision"], installed["versions"][version]["revision"])
        for version in shipped["versions"]
    }
    newer = {v: pair for v, pair in revisions.items() if pair[1] > pair[0]}
    assert not newer, (
        f"the installed google-api-python-client has newer documents than the snapshot ({shipped['source']}), "
        f"(snapshot, installed) revisions {newer}: run `make schema-snapshot`. What changed:\n" + "\n".join(changes)
    )
    if all(old == new for old, new in revisions.values()):
        assert changes == [], "the snapshot differs from the documents of its own revision:\n" + "\n".join(changes)
    else:  # an older client: the snapshot is the newer side
        warnings.warn(
            f"installed discovery documents are older than the snapshot's, (snapshot, installed) revisions "
            f"{revisions}: {len(changes)} differences, the first: " + "; ".join(changes[:8]),
            stacklevel=1,
        )
    assert installed["versions"].keys() == shipped["versions"].keys()


def test_the_snapshot_holds_what_the_package_sends_and_nothing_else() -> None:
    shipped = load_snapshot()
    assert shipped["roots"] == list(ROOT_SCHEMAS)
    for version in SUPPORTED_API_VERSIONS:
        schemas = shipped["versions"][version]["schemas"]
        assert schema_closure(schemas) == schemas  # closed under $ref, and no schema beyond the closure
        assert {"Instance", "MachineImage", "MachineImageParams", "CustomerEncryptionKey"} <= schemas.keys()
        assert "Operation" not in schemas and "Disk" not in schemas


def test_the_file_is_the_scripts_rendering() -> None:
    text = schema.SNAPSHOT_PATH.read_text(encoding="utf-8")
    assert text == json.dumps(load_snapshot(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def test_changes_name_each_field_and_revision() -> None:
    old = load_snapshot()
    new = copy.deepcopy(old)
    v1 = new["versions"]["v1"]
    v1["revision"] = "20991231"
    del v1["schemas"]["MachineImageParams"]["properties"]["includedDisks"]
    v1["schemas"]["MachineImage"]["properties"]["guestFlush"]["type"] = "string"
    v1["schemas"]["Extra"] = {"id": "Extra"}
    del new["versions"]["beta"]["schemas"]["CustomerEncryptionKey"]
    assert describe_changes(old, new) == [
        "beta CustomerEncryptionKey: schema removed",
        f"v1 revision: {old['versions']['v1']['revision']} -> 20991231",
        "v1 Extra: schema added",
        'v1 MachineImage.properties.guestFlush.type: "boolean" -> "string"',
        "v1 MachineImageParams.properties.includedDisks: removed",
    ]
    assert describe_changes(old, copy.deepcopy(old)) == []


def test_a_missing_referenced_schema_is_an_error() -> None:
    with pytest.raises(schema.DiscoveryDocumentError, match="no schema 'Gone'"):
        schema_closure({"MachineImage": {"properties": {"x": {"$ref": "Gone"}}}, "Instance": {}})
