"""Unit tests for airflow_machine_images.api.schema: the shipped snapshot, and reading compute.{beta,v1}.json
without importing googleapiclient."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_machine_images.api import schema as discovery
from airflow_machine_images.api.schema import (
    DiscoveryDocumentError,
    discovery_document_path,
    load_discovery_document,
    machine_image_schemas,
)
from airflow_machine_images.validation import MachineImageValidationError

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def fresh_cache() -> Iterator[None]:
    """Clear the document cache around a test that fakes the installed package."""
    load_discovery_document.cache_clear()
    yield
    load_discovery_document.cache_clear()


def fake_package(monkeypatch: pytest.MonkeyPatch, locations: list[str] | None) -> None:
    """Make find_spec("googleapiclient") answer with ``locations`` (None: not installed)."""
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> ModuleSpec | None:
        if name != "googleapiclient":
            return real_find_spec(name, package)
        if locations is None:
            return None
        spec = ModuleSpec("googleapiclient", None, is_package=True)
        spec.submodule_search_locations = list(locations)
        return spec

    monkeypatch.setattr(discovery.importlib.util, "find_spec", find_spec)


def write_document(root: Path, version: str, content: Any) -> None:
    documents = root / "discovery_cache" / "documents"
    documents.mkdir(parents=True, exist_ok=True)
    text = content if isinstance(content, str) else json.dumps(content)
    (documents / f"compute.{version}.json").write_text(text, encoding="utf-8")


@pytest.mark.parametrize("version", ["beta", "v1"])
def test_reads_the_installed_document(version: str) -> None:
    document = load_discovery_document(version)
    assert document["name"] == "compute"
    assert document["version"] == version
    assert document["servicePath"] == f"compute/{version}/"
    properties = document["schemas"]["MachineImage"]["properties"]
    assert {"name", "sourceInstance", "labels", "storageLocations", "guestFlush", "params"} <= set(properties)
    spec = importlib.util.find_spec("googleapiclient")
    assert spec is not None and spec.submodule_search_locations
    assert discovery_document_path(version).parent.parent.parent == Path(spec.submodule_search_locations[0])


def test_document_is_cached() -> None:
    assert load_discovery_document("beta") is load_discovery_document("beta")
    assert load_discovery_document("beta") is not load_discovery_document("v1")


@pytest.mark.parametrize("version", ["beta", "v1"])
def test_schemas_are_a_read_only_view(version: str) -> None:
    schemas = machine_image_schemas(version)
    assert schemas["MachineImage"]["id"] == "MachineImage"
    assert "CustomerEncryptionKey" in schemas and "MachineImageParams" in schemas
    with pytest.raises(TypeError):
        schemas["MachineImage"] = {}  # type: ignore[index]


@pytest.mark.parametrize("version", ["alpha", "v2", "", None, 1, ["beta"]])
@pytest.mark.parametrize("reader", [discovery_document_path, machine_image_schemas])
def test_unsupported_api_version(version: Any, reader: Any) -> None:
    with pytest.raises(MachineImageValidationError) as info:
        reader(version)
    assert info.value.parameter == "api_version"
    assert "'beta', 'v1'" in str(info.value)


@pytest.mark.usefixtures("fresh_cache")
@pytest.mark.parametrize("version", ["beta", "v1"])
def test_schemas_come_from_the_shipped_snapshot_without_any_client(
    monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    fake_package(monkeypatch, None)  # no google-api-python-client at all
    schemas = machine_image_schemas(version)
    snapshot = json.loads(discovery.SNAPSHOT_PATH.read_text(encoding="utf-8"))
    assert dict(schemas) == snapshot["versions"][version]["schemas"]
    assert {"includedDisks", "excludedDisks"} <= set(schemas["MachineImageParams"]["properties"])
    assert "sourceMachineImage" in schemas["Instance"]["properties"]


@pytest.mark.parametrize("content", ["{not json", "[]", '{"versions": {"beta": {}}}'])
def test_a_broken_snapshot_says_to_reinstall(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: str) -> None:
    broken = tmp_path / "compute_schemas.json"
    broken.write_text(content, encoding="utf-8")
    monkeypatch.setattr(discovery, "SNAPSHOT_PATH", broken)
    discovery.load_snapshot.cache_clear()
    try:
        with pytest.raises(DiscoveryDocumentError, match="reinstall airflow-machine-images"):
            machine_image_schemas("beta")
    finally:
        discovery.load_snapshot.cache_clear()


@pytest.mark.usefixtures("fresh_cache")
def test_missing_package_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_package(monkeypatch, None)
    with pytest.raises(DiscoveryDocumentError) as info:
        load_discovery_document("beta")
    assert "google-api-python-client" in str(info.value)
    assert "compute.beta.json" in str(info.value)


@pytest.mark.usefixtures("fresh_cache")
def test_missing_document_names_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write_document(tmp_path, "v1", {"schemas": {"MachineImage": {}}})
    fake_package(monkeypatch, [str(tmp_path)])
    with pytest.raises(DiscoveryDocumentError) as info:
        load_discovery_document("beta")
    assert "google-api-python-client" in str(info.value)
    assert "compute.beta.json" in str(info.value)
    assert load_discovery_document("v1")["schemas"]["MachineImage"] == {}


@pytest.mark.usefixtures("fresh_cache")
@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "Cannot read"),
        ([], "not a discovery document"),
        ({"schemas": []}, "not a discovery document"),
        ({"schemas": {"Other": {}}}, "does not describe MachineImage"),
    ],
)
def test_broken_document(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: Any, fragment: str) -> None:
    write_document(tmp_path, "beta", content)
    fake_package(monkeypatch, [str(tmp_path)])
    with pytest.raises(DiscoveryDocumentError) as info:
        load_discovery_document("beta")
    assert fragment in str(info.value)
    assert "google-api-python-client" in str(info.value)


@pytest.mark.usefixtures("fresh_cache")
def test_second_search_location_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    second = tmp_path / "second"
    write_document(second, "beta", {"schemas": {"MachineImage": {"id": "MachineImage"}}, "revision": "x"})
    fake_package(monkeypatch, [str(tmp_path / "first"), str(second)])
    assert load_discovery_document("beta")["revision"] == "x"


PROBE = """
import json, sys
from airflow_machine_images.api.schema import machine_image_schemas
from airflow_machine_images.validation import validate_body
schemas = machine_image_schemas("beta")
validate_body({"description": "x"}, schemas)
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in ("googleapiclient", "httplib2"))))
"""


def test_loading_does_not_import_googleapiclient() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
