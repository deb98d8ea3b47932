"""Google's Compute Engine discovery documents, read from the installed google-api-python-client.

``googleapiclient`` ships ``discovery_cache/documents/compute.{beta,v1}.json``: the full description
of every field the API accepts. We read the file directly instead of importing ``googleapiclient``
(which pulls in httplib2, google-auth and friends), and only when a body is being checked, never at
DAG parse time.
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
    from collections.abc import Mapping

__all__ = [
    "SUPPORTED_API_VERSIONS",
    "DiscoveryDocumentError",
    "discovery_document_path",
    "load_discovery_document",
    "machine_image_schemas",
]

#: Compute Engine API versions whose documents we read: the versions the hooks call.
SUPPORTED_API_VERSIONS: Final = API_VERSIONS
_PACKAGE: Final = "googleapiclient"
_INSTALL_HINT: Final = (
    "install google-api-python-client (pip install google-api-python-client; "
    "apache-airflow-providers-google brings it in)"
)


class DiscoveryDocumentError(RuntimeError):
    """The Compute Engine discovery document is missing or unreadable."""


def discovery_document_path(api_version: str) -> Path:
    """Where ``compute.{api_version}.json`` is, without importing ``googleapiclient``.

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
            f"Cannot check request bodies: the {_PACKAGE} package, which holds {filename}, is not installed; "
            f"{_INSTALL_HINT}."
        )
    for location in locations:
        path = Path(location) / "discovery_cache" / "documents" / filename
        if path.is_file():
            return path
    raise DiscoveryDocumentError(
        f"Cannot check request bodies: {filename} is not in the installed {_PACKAGE} "
        f"({', '.join(locations)}/discovery_cache/documents); reinstall or upgrade it: {_INSTALL_HINT}."
    )


@functools.cache
def load_discovery_document(api_version: str) -> dict[str, Any]:
    """The parsed Compute Engine discovery document of ``api_version``, read once per process.

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


def machine_image_schemas(api_version: str) -> Mapping[str, dict[str, Any]]:
    """The document's ``schemas`` map (``MachineImage``, ``CustomerEncryptionKey``, ...), read-only.

    :param api_version: ``beta`` or ``v1``.
    :return: schema id -> schema.
    """
    return MappingProxyType(load_discovery_document(api_version)["schemas"])
