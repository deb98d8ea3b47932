"""What the API accepts: the MachineImage fields (from Google's discovery document), names, labels, ids."""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import uuid
from pathlib import Path
from typing import Any

__all__ = [
    "LABEL_KEY_RE",
    "LABEL_VALUE_RE",
    "NAME_PATTERN",
    "NAME_RE",
    "PROJECT_RE",
    "instance_fields",
    "machine_image_fields",
    "query_params",
    "valid_request_id",
]

NAME_PATTERN = r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?"
NAME_RE = re.compile(NAME_PATTERN)
#: The project pattern the real API quotes in its 400 answers (also accepts domain-scoped ids).
PROJECT_RE = re.compile(
    r"(?:(?:[-a-z0-9]{1,63}\.)*(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?):)?"
    r"(?:[0-9]{1,19}|(?:[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?))"
)
LABEL_KEY_RE = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LABEL_VALUE_RE = re.compile(r"[a-z0-9_-]{0,63}")

#: Query parameters every Google API takes (the discovery documents' top-level ``parameters``).
_SYSTEM_PARAMS = frozenset(
    {
        "alt", "fields", "key", "prettyPrint", "quotaUser", "userIp", "access_token", "callback",
        "oauth_token", "upload_protocol", "uploadType", "$.xgafv",
    }
)  # fmt: skip
#: Every action the emulator answers, each with its ``resources.RESOURCE.methods.METHOD`` in the
#: discovery documents (the order is the order faults and the control API list them in).
ACTIONS: dict[str, tuple[str, str]] = {
    action: (action.split(".")[0], action.split(".")[1])
    for action in (
        "machineImages.insert",
        "machineImages.get",
        "machineImages.list",
        "machineImages.delete",
        "machineImages.setLabels",
        "globalOperations.get",
        "globalOperations.wait",
        "globalOperations.list",
        "instances.get",
        "instances.aggregatedList",
        "instances.insert",
        "instances.delete",
        "instances.setDeletionProtection",
        "instances.getSerialPortOutput",
        "disks.get",
        "disks.delete",
        "zoneOperations.get",
        "zoneOperations.wait",
        "zoneOperations.list",
    )
}
_LIST = frozenset({"filter", "maxResults", "orderBy", "pageToken"})
#: Used when googleapiclient's discovery documents are not installed: the method-specific query
#: parameters of compute.beta.json and compute.v1.json, revision 20261106.
_FALLBACK_QUERY_PARAMS: dict[str, dict[str, frozenset[str]]] = {
    version: {
        "machineImages.insert": frozenset({"requestId", "sourceInstance"}),
        "machineImages.get": frozenset(),
        "machineImages.list": _LIST | _partial,
        "machineImages.delete": frozenset({"requestId"}),
        "machineImages.setLabels": frozenset(),  # no requestId in either version
        "globalOperations.get": frozenset(),
        "globalOperations.wait": frozenset(),
        "globalOperations.list": _LIST | _partial,
        "instances.get": frozenset({"view"} if version == "beta" else ()),
        "instances.aggregatedList": _LIST | _partial | {"includeAllScopes", "serviceProjectNumber"},
        "instances.insert": frozenset({"requestId", "sourceInstanceTemplate", "sourceMachineImage"}),
        "instances.delete": frozenset({"requestId", "noGracefulShutdown"}),
        "instances.setDeletionProtection": frozenset({"deletionProtection", "requestId"}),
        "instances.getSerialPortOutput": frozenset({"port", "start"}),
        "disks.get": frozenset(),
        "disks.delete": frozenset({"requestId"}),
        "zoneOperations.get": frozenset(),
        "zoneOperations.wait": frozenset(),
        "zoneOperations.list": _LIST | _partial,
    }
    for version, _partial in (("beta", frozenset({"returnPartialSuccess"})), ("v1", frozenset()))
}


def _discovery_document(version: str) -> dict[str, Any] | None:
    """googleapiclient's bundled ``compute.{version}.json``, read without importing googleapiclient.

    :param version: ``beta`` or ``v1``.
    :return: the parsed document, or None when it is not installed or unreadable.
    """
    try:
        spec = importlib.util.find_spec("googleapiclient")
        locations = list(spec.submodule_search_locations or []) if spec else []
        for location in locations:
            path = Path(location) / "discovery_cache" / "documents" / f"compute.{version}.json"
            if path.is_file():
                document = json.loads(path.read_text(encoding="utf-8"))
                return document if isinstance(document, dict) else None
    except (ImportError, ValueError, OSError):
        pass
    return None


def _discovery_fields(schema: str, version: str) -> dict[str, bool] | None:
    """A schema's top-level fields in the discovery document, each mapped to "is it output only";
    None when the document is not installed.

    :param schema: e.g. ``MachineImage``, ``Instance``.
    :param version: ``beta`` or ``v1``.
    """
    document = _discovery_document(version)
    try:
        properties = document["schemas"][schema]["properties"]  # type: ignore[index]
        return {
            name: bool(prop.get("readOnly")) or "[Output Only]" in prop.get("description", "")
            for name, prop in properties.items()
        }
    except (KeyError, TypeError, AttributeError):
        return None


@functools.lru_cache(maxsize=32)
def query_params(version: str, action: str) -> frozenset[str]:
    """The query parameters an action accepts: what the discovery document lists for the method
    (``location: query``) plus the system parameters, so the emulator answers any other with 400
    as the API does (e.g. ``requestId`` on ``machineImages.setLabels``, ``returnPartialSuccess`` on
    v1 ``machineImages.list``).

    :param version: ``beta`` or ``v1``.
    :param action: e.g. ``machineImages.insert``.
    :return: the accepted names.
    """
    resource, method = ACTIONS[action]
    document = _discovery_document(version)
    try:
        declared = document["resources"][resource]["methods"][method]["parameters"]  # type: ignore[index]
        system = frozenset(document["parameters"])  # type: ignore[index]
        return system | {name for name, spec in declared.items() if spec.get("location") == "query"}
    except (KeyError, TypeError, AttributeError):
        return _SYSTEM_PARAMS | _FALLBACK_QUERY_PARAMS[version][action]


#: Used when googleapiclient's discovery documents are not installed (as of compute beta/v1, 2025).
_FALLBACK_FIELDS: dict[str, bool] = {
    "creationTimestamp": True,
    "description": False,
    "guestFlush": False,
    "id": True,
    "instanceProperties": True,
    "kind": True,
    "labelFingerprint": False,
    "labels": False,
    "machineImageEncryptionKey": False,
    "name": False,
    "params": False,
    "satisfiesPzi": True,
    "satisfiesPzs": True,
    "savedDisks": True,
    "selfLink": True,
    "sourceDiskEncryptionKeys": False,
    "sourceInstance": False,
    "sourceInstanceProperties": True,
    "status": True,
    "storageLocations": False,
    "totalStorageBytes": True,
}


@functools.lru_cache(maxsize=4)
def machine_image_fields(version: str) -> dict[str, bool]:
    """The top-level MachineImage fields of an API version, each mapped to "is it output only".

    Read from googleapiclient's bundled discovery document without importing googleapiclient; falls
    back to a built-in list.

    :param version: ``beta`` or ``v1``.
    :return: field name -> output only.
    """
    return _discovery_fields("MachineImage", version) or dict(_FALLBACK_FIELDS)


#: The Instance fields an insert from a machine image uses, when no discovery document is installed.
_FALLBACK_INSTANCE_FIELDS: dict[str, bool] = {
    "name": False,
    "description": False,
    "labels": False,
    "machineType": False,
    "metadata": False,
    "networkInterfaces": False,
    "sourceMachineImage": False,
    "status": True,
}


@functools.lru_cache(maxsize=4)
def instance_fields(version: str) -> dict[str, bool]:
    """The top-level Instance fields of an API version (discovery document, else a built-in list).

    :param version: ``beta`` or ``v1``.
    :return: field name -> output only.
    """
    return _discovery_fields("Instance", version) or dict(_FALLBACK_INSTANCE_FIELDS)


def valid_request_id(value: str) -> bool:
    """The API's rule for ``requestId``: a UUID in its canonical text form, not the zero UUID.

    :param value: the ``requestId`` query parameter.
    :return: whether the API would accept it.
    """
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return False
    return parsed.int != 0 and len(value) == 36
