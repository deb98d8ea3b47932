"""The Compute Engine request schemas bodies are checked against: a snapshot shipped in the package.

``compute_schemas.json`` (next to this module) holds, for each API version the hooks call (beta, v1),
the discovery document's ``MachineImage`` and ``Instance`` schemas and every schema they reference:
what the package sends, nothing else. It is generated from google-api-python-client's bundled
discovery documents (``discovery_cache/documents/compute.{beta,v1}.json``) by
``scripts/schema_snapshot.py`` (``make schema-snapshot``), and a unit test compares it with the
documents of the installed client and says what changed. Checking bodies against the snapshot, not
against whatever client is installed, means any google-api-python-client the Google provider brings
will do (Airflow's constraint files and Cloud Composer images pin older ones), and bodies are checked
the same way everywhere.

The snapshot is read on first use, never at DAG-parse time; the installed client's documents are
read (without importing ``googleapiclient``, which pulls in httplib2 and google-auth) only to make or
compare the snapshot.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from airflow_machine_images.api.calls import API_VERSIONS
from airflow_machine_images.validation import validate_choice

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

__all__ = [
    "ROOT_SCHEMAS",
    "SNAPSHOT_PATH",
    "SUPPORTED_API_VERSIONS",
    "DiscoveryDocumentError",
    "describe_changes",
    "discovery_document_path",
    "load_discovery_document",
    "load_snapshot",
    "machine_image_schemas",
    "schema_closure",
    "snapshot_of",
]

#: Compute Engine API versions whose schemas we hold: the versions the hooks call.
SUPPORTED_API_VERSIONS: Final = API_VERSIONS
#: The schemas of the bodies the package sends; the snapshot holds them and what they reference.
ROOT_SCHEMAS: Final = ("Instance", "MachineImage")
#: The snapshot shipped in the package.
SNAPSHOT_PATH: Final = Path(__file__).with_name("compute_schemas.json")
_PACKAGE: Final = "googleapiclient"
_INSTALL_HINT: Final = (
    "install google-api-python-client (pip install google-api-python-client; "
    "apache-airflow-providers-google brings it in)"
)


class DiscoveryDocumentError(RuntimeError):
    """The schema snapshot, or a Compute Engine discovery document, is missing or unreadable."""


@functools.cache
def load_snapshot() -> dict[str, Any]:
    """The shipped snapshot (``compute_schemas.json``), read once per process; do not modify it.

    :return: ``{"about", "roots", "source", "versions": {VERSION: {"revision", "schemas"}}}``.
    :raises DiscoveryDocumentError: the file is missing or broken (a damaged installation).
    """
    try:
        snapshot = json.loads(SNAPSHOT_PATH.read_text(encoding="utf-8"))
        versions = snapshot["versions"]
        for version in SUPPORTED_API_VERSIONS:
            if not isinstance(versions[version]["schemas"]["MachineImage"], dict):
                raise TypeError(f"{version} has no MachineImage schema")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise DiscoveryDocumentError(
            f"Cannot read the schema snapshot {SNAPSHOT_PATH}: {exc}; reinstall airflow-machine-images."
        ) from exc
    return dict(snapshot)


def machine_image_schemas(api_version: str) -> Mapping[str, dict[str, Any]]:
    """The request schemas of ``api_version`` (``MachineImage``, ``Instance``, what they reference), read-only.

    :param api_version: ``beta`` or ``v1``.
    :return: schema id -> schema, from the shipped snapshot.
    """
    version = validate_choice(api_version, "api_version", SUPPORTED_API_VERSIONS)
    return MappingProxyType(load_snapshot()["versions"][version]["schemas"])


def discovery_document_path(api_version: str) -> Path:
    """Where the installed client's ``compute.{api_version}.json`` is, without importing ``googleapiclient``.

    :param api_version: ``beta`` or ``v1``.
    :return: the path of the document.
    :raises DiscoveryDocumentError: if google-api-python-client or the document is not installed.
    """
    version = validate_choice(api_version, "api_version", SUPPORTED_API_VERSIONS)
    filename = f"compute.{version}.json"
    try:
        spec = importlib.util.find_spec(_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise DiscoveryDocumentError(
            f"Cannot read {filename}: the {_PACKAGE} package, which holds it, is not installed; {_INSTALL_HINT}."
        )
    for location in locations:
        path = Path(location) / "discovery_cache" / "documents" / filename
        if path.is_file():
            return path
    raise DiscoveryDocumentError(
        f"Cannot read {filename}: it is not in the installed {_PACKAGE} "
        f"({', '.join(locations)}/discovery_cache/documents); reinstall or upgrade it: {_INSTALL_HINT}."
    )


@functools.cache
def load_discovery_document(api_version: str) -> dict[str, Any]:
    """The installed client's Compute Engine discovery document of ``api_version``, read once per process.

    The dict is shared by every caller: do not modify it.

    :param api_version: ``beta`` or ``v1``.
    :return: the document.
    :raises DiscoveryDocumentError: if the document is missing or is not a discovery document.
    """
    path = discovery_document_path(api_version)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DiscoveryDocumentError(f"Cannot read {path}: {exc}; {_INSTALL_HINT}.") from exc
    if not isinstance(document, dict) or not isinstance(document.get("schemas"), dict):
        raise DiscoveryDocumentError(f"{path} is not a discovery document (it has no 'schemas'); {_INSTALL_HINT}.")
    if not isinstance(document["schemas"].get("MachineImage"), dict):
        raise DiscoveryDocumentError(
            f"{path} does not describe MachineImage; upgrade google-api-python-client ({_INSTALL_HINT})."
        )
    return document


def _references(value: object) -> Iterator[str]:
    """Every ``$ref`` inside a schema, at any depth."""
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str):
            yield ref
        for item in value.values():
            yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def schema_closure(schemas: Mapping[str, Any], roots: Iterable[str] = ROOT_SCHEMAS) -> dict[str, Any]:
    """``roots`` and every schema they reference, directly or not, sorted by name.

    :param schemas: a discovery document's ``schemas`` map.
    :param roots: the schemas to start from.
    :raises DiscoveryDocumentError: a root or a referenced schema is missing.
    """
    found: dict[str, Any] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in found:
            continue
        if not isinstance(schemas.get(name), dict):
            raise DiscoveryDocumentError(f"the discovery document has no schema {name!r}")
        found[name] = schemas[name]
        pending.extend(_references(schemas[name]))
    return {name: found[name] for name in sorted(found)}


def snapshot_of(documents: Mapping[str, Mapping[str, Any]], source: str) -> dict[str, Any]:
    """The snapshot of these discovery documents: per version, its revision and the request schemas.

    :param documents: API version -> discovery document.
    :param source: where the documents come from (``google-api-python-client 2.202.0``).
    """
    return {
        "about": (
            "Compute Engine request schemas (what the package sends: Instance, MachineImage and every schema "
            "they reference), generated by scripts/schema_snapshot.py (make schema-snapshot); do not edit."
        ),
        "roots": list(ROOT_SCHEMAS),
        "source": source,
        "versions": {
            version: {"revision": str(document.get("revision")), "schemas": schema_closure(document["schemas"])}
            for version, document in sorted(documents.items())
        },
    }


def _value_changes(old: object, new: object, path: str) -> Iterator[str]:
    """What differs between two JSON values, one line per changed leaf or key."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() - new.keys()):
            yield f"{path}.{key}: removed"
        for key in sorted(new.keys() - old.keys()):
            yield f"{path}.{key}: added"
        for key in sorted(old.keys() & new.keys()):
            yield from _value_changes(old[key], new[key], f"{path}.{key}")
    elif old != new:
        shown = (json.dumps(v)[:80] for v in (old, new))
        yield f"{path}: {next(shown)} -> {next(shown)}"


def describe_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What changed from one snapshot to another, one line each (empty: the same schemas).

    Revisions are named; a whole schema added or removed is one line; otherwise each changed field,
    as ``v1 MachineImageParams.properties.includedDisks: added``.

    :param old: a snapshot (:func:`snapshot_of`, or the shipped one).
    :param new: another.
    """
    lines: list[str] = []
    old_versions, new_versions = old.get("versions", {}), new.get("versions", {})
    for version in sorted(old_versions.keys() | new_versions.keys()):
        before, after = old_versions.get(version), new_versions.get(version)
        if before is None or after is None:
            lines.append(f"{version}: {'added' if before is None else 'removed'}")
            continue
        if before.get("revision") != after.get("revision"):
            lines.append(f"{version} revision: {before.get('revision')} -> {after.get('revision')}")
        old_schemas, new_schemas = before.get("schemas", {}), after.get("schemas", {})
        for name in sorted(old_schemas.keys() | new_schemas.keys()):
            if name not in new_schemas or name not in old_schemas:
                lines.append(f"{version} {name}: schema {'removed' if name not in new_schemas else 'added'}")
            else:
                lines.extend(f"{version} {line}" for line in _value_changes(old_schemas[name], new_schemas[name], name))
    return lines
