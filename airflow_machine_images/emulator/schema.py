"""What the API accepts: the MachineImage fields (from Google's discovery document), names, labels, ids."""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import uuid
from pathlib import Path

__all__ = [
    "LABEL_KEY_RE",
    "LABEL_VALUE_RE",
    "NAME_PATTERN",
    "NAME_RE",
    "PROJECT_RE",
    "QUERY_PARAMS",
    "instance_fields",
    "machine_image_fields",
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

#: Query parameters every Google API takes (system parameters).
_SYSTEM_PARAMS = frozenset(
    {
        "alt", "fields", "key", "prettyPrint", "quotaUser", "userIp", "access_token", "callback",
        "oauth_token", "upload_protocol", "uploadType", "$.xgafv",
    }
)  # fmt: skip
_LIST_PARAMS = frozenset({"filter", "maxResults", "orderBy", "pageToken", "returnPartialSuccess"})

#: Query parameters each action accepts besides the system ones.
QUERY_PARAMS: dict[str, frozenset[str]] = {
    "machineImages.insert": _SYSTEM_PARAMS | {"requestId", "sourceInstance"},
    "machineImages.get": _SYSTEM_PARAMS,
    "machineImages.list": _SYSTEM_PARAMS | _LIST_PARAMS,
    "machineImages.delete": _SYSTEM_PARAMS | {"requestId"},
    "machineImages.setLabels": _SYSTEM_PARAMS | {"requestId"},
    "globalOperations.get": _SYSTEM_PARAMS,
    "globalOperations.wait": _SYSTEM_PARAMS,
    "globalOperations.list": _SYSTEM_PARAMS | _LIST_PARAMS,
    "instances.get": _SYSTEM_PARAMS | {"view"},
    # instances.insert/delete and zoneOperations.*: compute.beta.json and compute.v1.json, resources.instances
    # and resources.zoneOperations (helper A's discovery-derived table replaces this hand table).
    "instances.insert": _SYSTEM_PARAMS | {"requestId", "sourceInstanceTemplate", "sourceMachineImage"},
    "instances.delete": _SYSTEM_PARAMS | {"requestId", "noGracefulShutdown"},
    "zoneOperations.get": _SYSTEM_PARAMS,
    "zoneOperations.wait": _SYSTEM_PARAMS,
    "zoneOperations.list": _SYSTEM_PARAMS | _LIST_PARAMS,
}

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


def _discovery_fields(schema: str, version: str) -> dict[str, bool] | None:
    """A schema's top-level fields in googleapiclient's bundled discovery document, each mapped to "is it
    output only"; None when the document is not installed (read without importing googleapiclient).

    :param schema: e.g. ``MachineImage``, ``Instance``.
    :param version: ``beta`` or ``v1``.
    """
    try:
        spec = importlib.util.find_spec("googleapiclient")
        locations = list(spec.submodule_search_locations or []) if spec else []
        for location in locations:
            path = Path(location) / "discovery_cache" / "documents" / f"compute.{version}.json"
            if path.is_file():
                properties = json.loads(path.read_text(encoding="utf-8"))["schemas"][schema]["properties"]
                return {
                    name: bool(prop.get("readOnly")) or "[Output Only]" in prop.get("description", "")
                    for name, prop in properties.items()
                }
    except (ImportError, ValueError, KeyError, OSError):
        pass
    return None


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
