"""Hypothesis strategies for the validation layer, shared by the unit tests and the bad-input campaign.

Valid values are generated from the discovery documents' own regexes (as copied into
``airflow_machine_images.validation.names``, whose unit tests check they still agree); invalid values are
valid ones broken in targeted ways, plus arbitrary junk of any type.

Profiles: ``ci`` (default, 100 examples) and ``long`` (1,000 examples), picked by the environment
variable ``HYPOTHESIS_PROFILE``.
"""

from __future__ import annotations

import base64
import os
import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, unquote

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from airflow_machine_images.validation.names import (
    INSTANCE_PATTERN,
    LABEL_KEY_PATTERN,
    LABEL_VALUE_PATTERN,
    NAME_PATTERN,
    OPERATION_PATTERN,
    PROJECT_PATTERN,
    REQUEST_ID_PATTERN,
    ZONE_PATTERN,
)
from airflow_machine_images.validation.references import InstanceRef
from airflow_machine_images.validation.zones import KNOWN_ZONES, ZONE_SHAPE_PATTERN

settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile(
    "long", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

NAME_RE = re.compile(NAME_PATTERN)
PROJECT_RE = re.compile(PROJECT_PATTERN)
ZONE_RE = re.compile(ZONE_PATTERN)
INSTANCE_RE = re.compile(INSTANCE_PATTERN)
OPERATION_RE = re.compile(OPERATION_PATTERN)
REQUEST_ID_RE = re.compile(REQUEST_ID_PATTERN)
LABEL_KEY_RE = re.compile(LABEL_KEY_PATTERN)
LABEL_VALUE_RE = re.compile(LABEL_VALUE_PATTERN)

#: Fragments that make any path or URL invalid, wherever they are inserted.
PATH_POISON = ("..", "?", "#", "%2F", "%", " ", "\t", "\n", "\\", "?x=1", "#frag", "//", "\x00", "é")
#: Characters and tokens for random path-like junk.
PATH_ALPHABET = st.sampled_from(
    [
        *("/", ".", "..", "?", "#", "%2F", "%", " ", ":", "@", "a", "z", "0", "9", "-", "_", "A", "é", "\n"),
        *("projects", "zones", "instances", "compute", "v1", "https://", "http://", "global", "machineImages"),
    ]
)


# --------------------------------------------------------------------------------------------------
# Junk of any type
# --------------------------------------------------------------------------------------------------


class _Opaque:
    """An arbitrary object, with an unhelpful repr."""

    def __repr__(self) -> str:
        return "<opaque>"


class _BadRepr:
    """An object whose repr raises: messages must still be built."""

    def __repr__(self) -> str:
        raise RuntimeError("repr exploded")


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON-ish value: None, bools, numbers (incl. NaN/inf), text, lists and dicts of them."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=20),
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def junk() -> st.SearchStrategy[Any]:
    """Anything at all: JSON-ish values, bytes, sets, tuples, huge ints, odd objects and path-like text."""
    return st.one_of(
        json_values(),
        st.binary(max_size=20),
        st.sets(st.integers(), max_size=3),
        st.tuples(st.text(max_size=5), st.integers()),
        st.integers(min_value=10**300, max_value=10**400),
        st.builds(_Opaque),
        st.builds(_BadRepr),
        st.builds(object),
        st.just(NotImplemented),
        st.just(Ellipsis),
        st.complex_numbers(max_magnitude=10),
        path_junk(),
    )


def path_junk() -> st.SearchStrategy[str]:
    """Random text made of path tokens: '/', '..', '?', '#', '%2F', whitespace, scheme prefixes..."""
    return st.lists(PATH_ALPHABET, max_size=20).map("".join)


def non_strings() -> st.SearchStrategy[Any]:
    """Junk that is not a str."""
    return junk().filter(lambda value: not isinstance(value, str))


# --------------------------------------------------------------------------------------------------
# Names and ids
# --------------------------------------------------------------------------------------------------


def valid_names() -> st.SearchStrategy[str]:
    """Machine image names (``MachineImage.name`` pattern)."""
    return st.from_regex(NAME_PATTERN, fullmatch=True)


def valid_project_ids() -> st.SearchStrategy[str]:
    """Anything the discovery document's ``project`` pattern accepts, plus readable examples."""
    return st.one_of(
        st.from_regex(PROJECT_PATTERN, fullmatch=True),
        st.sampled_from(["my-project", "example.com:my-project", "123456789012", "a.b.c:proj-1"]),
    )


def valid_zones() -> st.SearchStrategy[str]:
    """Zone names: a region, '-' and a letter (or an AI zone's suffix), within the discovery pattern."""
    return st.one_of(
        st.from_regex(ZONE_SHAPE_PATTERN, fullmatch=True).filter(lambda zone: len(zone) <= 63),
        st.sampled_from(["us-central1-a", "europe-west1-b", "us-west4-ai2b", "northamerica-south1-c"]),
    )


def valid_instance_names() -> st.SearchStrategy[str]:
    """Instance names or numeric ids."""
    return st.from_regex(INSTANCE_PATTERN, fullmatch=True)


def valid_operation_names() -> st.SearchStrategy[str]:
    """Operation names or numeric ids."""
    return st.from_regex(OPERATION_PATTERN, fullmatch=True)


def _broken(valid: st.SearchStrategy[str], regex: re.Pattern[str]) -> st.SearchStrategy[str]:
    """Valid values broken in targeted ways (upper case, bad characters, lengths, edges)."""

    @st.composite
    def build(draw: st.DrawFn) -> str:
        text = draw(valid)
        how = draw(st.sampled_from(["upper", "insert", "prefix", "suffix", "long", "space", "empty"]))
        if how == "upper":
            return text.upper() + "A"
        if how == "insert":
            at = draw(st.integers(0, len(text)))
            bad = draw(st.sampled_from(["_", " ", "/", "?", "#", "%2F", "..", "A", "é", "\n", "\x00", "!", "*"]))
            return text[:at] + bad + text[at:]
        if how == "prefix":
            return draw(st.sampled_from(["-", "_", " ", "/", "\n"])) + text
        if how == "suffix":
            return text + draw(st.sampled_from(["-", " ", "\n", "/", "?", "_"]))
        if how == "long":
            return "a" + "b" * 64 + text
        if how == "space":
            return f" {text} "
        return ""

    return build().filter(lambda text: regex.fullmatch(text) is None)


def invalid_strings_for(regex: re.Pattern[str], valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Strings the regex rejects: broken valid values, random text and path junk."""
    return st.one_of(
        _broken(valid, regex),
        st.text(max_size=70).filter(lambda text: regex.fullmatch(text) is None),
        path_junk().filter(lambda text: regex.fullmatch(text) is None),
    )


def invalid_names() -> st.SearchStrategy[Any]:
    """Invalid machine image names of any type."""
    return st.one_of(invalid_strings_for(NAME_RE, valid_names()), non_strings())


def invalid_project_ids() -> st.SearchStrategy[Any]:
    """Invalid project ids of any type."""
    return st.one_of(invalid_strings_for(PROJECT_RE, valid_project_ids()), non_strings())


def invalid_zones() -> st.SearchStrategy[Any]:
    """Invalid zones of any type."""
    return st.one_of(invalid_strings_for(ZONE_RE, valid_zones()), non_strings())


def invalid_instance_names() -> st.SearchStrategy[Any]:
    """Invalid instance names of any type."""
    return st.one_of(invalid_strings_for(INSTANCE_RE, valid_instance_names()), non_strings())


def invalid_operation_names() -> st.SearchStrategy[Any]:
    """Invalid operation names of any type."""
    return st.one_of(invalid_strings_for(OPERATION_RE, valid_operation_names()), non_strings())


def valid_request_ids() -> st.SearchStrategy[str]:
    """Non-zero UUIDs in canonical form, lower or upper case."""
    canonical = st.uuids().filter(lambda value: value.int != 0).map(str)
    return st.one_of(canonical, canonical.map(str.upper))


def invalid_request_ids() -> st.SearchStrategy[Any]:
    """Request ids the API would refuse: zero UUID, braces, urn form, no hyphens, junk of any type."""
    some = st.uuids().filter(lambda value: value.int != 0)
    return st.one_of(
        st.sampled_from([str(uuid.UUID(int=0)), str(uuid.UUID(int=0)).upper()]),
        some.map(lambda value: "{" + str(value) + "}"),
        some.map(lambda value: value.urn),
        some.map(lambda value: value.hex),
        some.map(lambda value: f" {value}"),
        some.map(lambda value: f"{value}\n"),
        some.map(lambda value: str(value)[:-1]),
        some.map(lambda value: str(value) + "0"),
        some.map(lambda value: str(value).replace("-", "_")),
        some.map(lambda value: "g" + str(value)[1:]),
        st.text(max_size=40).filter(lambda text: REQUEST_ID_RE.fullmatch(text) is None),
        non_strings(),
        st.uuids(),  # a UUID object, not a string
    )


# --------------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------------


def label_keys() -> st.SearchStrategy[str]:
    """Valid label keys."""
    return st.from_regex(LABEL_KEY_PATTERN, fullmatch=True)


def label_values() -> st.SearchStrategy[str]:
    """Valid label values (may be empty)."""
    return st.from_regex(LABEL_VALUE_PATTERN, fullmatch=True)


def valid_labels(max_size: int = 64) -> st.SearchStrategy[dict[str, str]]:
    """Valid label dicts (at most 64 entries)."""
    return st.dictionaries(label_keys(), label_values(), max_size=max_size)


def invalid_labels() -> st.SearchStrategy[Any]:
    """Invalid labels: a bad key, a bad value, too many entries, or not a dict of strings at all."""

    @st.composite
    def bad_entry(draw: st.DrawFn) -> dict[Any, Any]:
        labels: dict[Any, Any] = draw(valid_labels(max_size=5))
        if draw(st.booleans()):
            key = draw(st.one_of(invalid_strings_for(LABEL_KEY_RE, label_keys()), non_strings().filter(_hashable)))
            labels[key] = draw(label_values())
        else:
            value = draw(st.one_of(invalid_strings_for(LABEL_VALUE_RE, label_values()), non_strings()))
            labels[draw(label_keys())] = value
        return labels

    too_many = st.just({f"k{i}": "v" for i in range(65)})
    return st.one_of(bad_entry(), too_many, junk().filter(lambda value: not isinstance(value, dict)))


def _hashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


# --------------------------------------------------------------------------------------------------
# Source instances
# --------------------------------------------------------------------------------------------------

#: Hosts a full URL may carry, and the API version segment.
URL_PREFIXES = (
    "https://www.googleapis.com/compute/v1/",
    "https://www.googleapis.com/compute/beta/",
    "https://compute.googleapis.com/compute/alpha/",
    "https://compute.googleapis.com/compute/v1/",
    "http://127.0.0.1:8085/compute/beta/",
    "http://localhost:8085/compute/v1/",
)


@st.composite
def valid_source_instances(draw: st.DrawFn) -> tuple[str, str, InstanceRef]:
    """``(text, default_project, expected InstanceRef)`` in every accepted form."""
    project = draw(valid_project_ids())
    # A zone Compute Engine has: the references are sent to the emulator, which answers any other zone
    # 400 "Unknown zone" as the service does (the shapes alone are covered by valid_zones()).
    zone = draw(st.sampled_from(KNOWN_ZONES))
    instance = draw(valid_instance_names())
    default = draw(valid_project_ids())
    form = draw(st.sampled_from(["short", "zones", "projects", "url"]))
    expected = InstanceRef(project=default if form in ("short", "zones") else project, zone=zone, instance=instance)
    if form == "short":
        text = f"{zone}/{instance}"
    elif form == "zones":
        text = f"zones/{zone}/instances/{instance}"
    elif form == "projects":
        text = f"projects/{project}/zones/{zone}/instances/{instance}"
    else:
        text = f"{draw(st.sampled_from(URL_PREFIXES))}projects/{project}/zones/{zone}/instances/{instance}"
    return text, default, expected


@st.composite
def invalid_source_instances(draw: st.DrawFn) -> str:
    """Valid references broken by a poison fragment, a trailing slash, or random path junk."""
    text, _, _ = draw(valid_source_instances())
    how = draw(st.sampled_from(["poison", "trailing", "leading", "junk", "extra", "drop"]))
    if how == "poison":
        at = draw(st.integers(0, len(text)))
        return text[:at] + draw(st.sampled_from(PATH_POISON)) + text[at:]
    if how == "trailing":
        return text + draw(st.sampled_from(["/", "?", "?alt=json", "#x", " ", "/.."]))
    if how == "leading":
        return draw(st.sampled_from(["/", " ", "./", "../"])) + text
    if how == "extra":
        return text + "/disks/d"
    if how == "drop":
        # Remove one path segment from a form with a fixed shape (never leaves another valid form).
        segments = text.split("/")
        if len(segments) in (4, 6) and "://" not in text:
            del segments[draw(st.integers(0, len(segments) - 1))]
            return "/".join(segments)
        return text + "/"
    return draw(path_junk().filter(lambda value: value.count("/") not in (1, 3, 5)))


# --------------------------------------------------------------------------------------------------
# Encryption keys
# --------------------------------------------------------------------------------------------------

#: A recognisable secret: tests assert it never appears in any message.
CANARY_RAW_KEY = base64.b64encode(b"CANARY-KEY-0123456789abcdef-XYZ!").decode()
CANARY_RSA_KEY = base64.b64encode(b"CANARY-RSA-WRAPPED-KEY" * 12).decode()
#: A rawKey whose base64 holds '+' and '/' (so its URL-safe form differs) and ends in '=' padding.
CANARY_SLASH_KEY = base64.b64encode(b"\xfb\xef\xbe\xff\xff\xffSLASHED-CANARY-KEY-012345!").decode()


def secret_encodings(secret: str) -> dict[str, str]:
    """The forms a JSON or URL layer may give ``secret`` when it quotes it back, by name.

    :param secret: the secret as sent (e.g. padded standard base64).
    """
    urlsafe = secret.replace("+", "-").replace("/", "_")
    percent = quote(secret, safe="")
    return {
        "as sent": secret,
        "JSON \\/ escape": secret.replace("/", "\\/"),
        "Gson \\u003d escape": secret.replace("=", "\\u003d").replace("/", "\\/"),
        "every character \\u-escaped": "".join(f"\\u{ord(c):04x}" for c in secret),
        "URL-safe": urlsafe,
        "unpadded": secret.rstrip("="),
        "URL-safe unpadded": urlsafe.rstrip("="),
        "percent-encoded": percent,
        "percent-encoded, lower-case hex": re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), percent),
        "percent-encoded URL-safe": quote(urlsafe, safe=""),
        "form-decoded ('+' read as space)": secret.replace("+", " "),
    }


def _normalised(text: str) -> str:
    """``text`` with JSON escapes and percent-encoding undone and the URL-safe alphabet mapped back."""
    text = re.sub(r"\\u([0-9A-Fa-f]{4})", lambda m: chr(int(m.group(1), 16)), text).replace("\\/", "/")
    return unquote(text).replace("-", "+").replace("_", "/")


def leaked(text: str, secret: str) -> bool:
    """Whether ``text`` still holds ``secret`` in any of the forms of :func:`secret_encodings` (or mixes).

    :param text: what a user, a log or a table would see.
    :param secret: the secret.
    """
    core = secret.rstrip("=")
    if any(form.rstrip("=") in text for form in secret_encodings(secret).values()):
        return True
    return core.replace("-", "+").replace("_", "/") in _normalised(text) or core in text.replace(" ", "+")


def valid_raw_keys() -> st.SearchStrategy[str]:
    """rawKey values: base64 of exactly 32 bytes."""
    return st.binary(min_size=32, max_size=32).map(lambda raw: base64.b64encode(raw).decode())


def valid_kms_key_names() -> st.SearchStrategy[str]:
    """Cloud KMS key (version) names."""
    segment = st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True)
    location = st.sampled_from(["global", "us", "us-central1", "europe-west4"])
    version = st.one_of(st.just(""), st.integers(1, 10**6).map(lambda n: f"/cryptoKeyVersions/{n}"))
    return st.builds(
        lambda project, loc, ring, key, ver: (
            f"projects/{project}/locations/{loc}/keyRings/{ring}/cryptoKeys/{key}{ver}"
        ),
        valid_project_ids(),
        location,
        segment,
        segment,
        version,
    )


def valid_encryption_keys() -> st.SearchStrategy[dict[str, str]]:
    """Valid CustomerEncryptionKey dicts."""
    service_account = st.sampled_from(["sa@my-project.iam.gserviceaccount.com", "x-1@p.iam.gserviceaccount.com"])
    return st.one_of(
        valid_raw_keys().map(lambda key: {"rawKey": key}),
        st.binary(min_size=1, max_size=300).map(lambda raw: {"rsaEncryptedKey": base64.b64encode(raw).decode()}),
        valid_kms_key_names().map(lambda name: {"kmsKeyName": name}),
        st.builds(lambda n, sa: {"kmsKeyName": n, "kmsKeyServiceAccount": sa}, valid_kms_key_names(), service_account),
    )


# --------------------------------------------------------------------------------------------------
# Bodies
# --------------------------------------------------------------------------------------------------


@st.composite
def valid_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """Valid extra ``body`` dicts for an insert (fields without a dedicated argument, or any of them)."""
    body: dict[str, Any] = {}
    if draw(st.booleans()):
        body["description"] = draw(st.text(max_size=40))
    if draw(st.booleans()):
        body["labels"] = draw(valid_labels(max_size=5))
    if draw(st.booleans()):
        body["storageLocations"] = draw(st.sampled_from([["us"], ["eu"], ["us-central1"], []]))
    if draw(st.booleans()):
        body["guestFlush"] = draw(st.booleans())
    if draw(st.booleans()):
        body["labelFingerprint"] = draw(st.binary(max_size=8).map(lambda raw: base64.b64encode(raw).decode()))
    if draw(st.booleans()):
        body["machineImageEncryptionKey"] = draw(valid_encryption_keys())
    if draw(st.booleans()):
        body["params"] = {
            "resourceManagerTags": draw(st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3)),
            "includedDisks": draw(st.lists(st.text(max_size=10), max_size=3)),
        }
    if draw(st.booleans()):
        body["sourceDiskEncryptionKeys"] = [
            {"sourceDisk": "zones/us-central1-a/disks/d1", "diskEncryptionKey": draw(valid_encryption_keys())}
        ]
    return body


#: Output-only MachineImage fields with plausible values (as a GET would return them).
OUTPUT_ONLY_FIELDS: dict[str, Any] = {
    "id": "1234567890",
    "selfLink": "https://www.googleapis.com/compute/beta/projects/p/global/machineImages/m",
    "status": "READY",
    "creationTimestamp": "2024-01-01T00:00:00.000-07:00",
    "totalStorageBytes": "1024",
    "kind": "compute#machineImage",
    "satisfiesPzs": False,
    "satisfiesPzi": False,
    "sourceInstanceProperties": {"description": "x"},
    "instanceProperties": {"description": "x"},
    "savedDisks": [],
}

#: Bodies with one wrong-typed field, and the path the error must name.
WRONG_TYPES: list[tuple[dict[str, Any], str]] = [
    ({"description": 5}, "body.description"),
    ({"guestFlush": "yes"}, "body.guestFlush"),
    ({"guestFlush": 1}, "body.guestFlush"),
    ({"labels": ["a"]}, "body.labels"),
    ({"labels": {"a": 1}}, "body.labels['a']"),
    ({"storageLocations": "us"}, "body.storageLocations"),
    ({"storageLocations": [1]}, "body.storageLocations[0]"),
    ({"params": []}, "body.params"),
    ({"params": {"includedDisks": "d"}}, "body.params.includedDisks"),
    ({"params": {"resourceManagerTags": {"k": None}}}, "body.params.resourceManagerTags['k']"),
    ({"sourceDiskEncryptionKeys": {"sourceDisk": "x"}}, "body.sourceDiskEncryptionKeys"),
    ({"sourceDiskEncryptionKeys": [{"sourceDisk": 3}]}, "body.sourceDiskEncryptionKeys[0].sourceDisk"),
    ({"labelFingerprint": b"abc"}, "body.labelFingerprint"),
]


@st.composite
def invalid_bodies(draw: st.DrawFn) -> tuple[Any, str]:
    """``(body, path prefix the error must name)``: unknown, output-only or wrong-typed fields, or junk."""
    base = draw(valid_bodies())
    how = draw(st.sampled_from(["unknown", "nested-unknown", "output-only", "wrong-type", "junk"]))
    if how == "unknown":
        key = draw(st.text(min_size=1, max_size=20).filter(lambda k: k not in _MACHINE_IMAGE_FIELDS))
        return {**base, key: draw(json_values(4))}, "body"
    if how == "nested-unknown":
        key = draw(st.text(min_size=1, max_size=20).filter(lambda k: k not in _KEY_FIELDS))
        body = {
            **base,
            "sourceDiskEncryptionKeys": [
                {"sourceDisk": "zones/us-central1-a/disks/d", "diskEncryptionKey": {key: "x"}}
            ],
        }
        return body, "body.sourceDiskEncryptionKeys[0].diskEncryptionKey"
    if how == "output-only":
        field = draw(st.sampled_from(sorted(OUTPUT_ONLY_FIELDS)))
        return {**base, field: OUTPUT_ONLY_FIELDS[field]}, f"body.{field}"
    if how == "wrong-type":
        wrong, path = draw(st.sampled_from(WRONG_TYPES))
        return {**base, **wrong}, path
    return draw(junk().filter(lambda value: value is not None and not isinstance(value, dict))), "body"


_MACHINE_IMAGE_FIELDS = frozenset(
    {
        "creationTimestamp", "description", "guestFlush", "id", "instanceProperties", "kind", "labelFingerprint",
        "labels", "machineImageEncryptionKey", "name", "params", "satisfiesPzi", "satisfiesPzs", "savedDisks",
        "selfLink", "sourceDiskEncryptionKeys", "sourceInstance", "sourceInstanceProperties", "status",
        "storageLocations", "totalStorageBytes",
    }
)  # fmt: skip
_KEY_FIELDS = frozenset({"rawKey", "rsaEncryptedKey", "kmsKeyName", "kmsKeyServiceAccount", "sha256"})


# --------------------------------------------------------------------------------------------------
# Edges the reliability campaign adds
# --------------------------------------------------------------------------------------------------


def valid_labels_near_the_limit() -> st.SearchStrategy[dict[str, str]]:
    """Valid label dicts of 60 to 64 entries: the API's limit, which default labels must not push past."""
    return st.dictionaries(label_keys(), label_values(), min_size=60, max_size=64)


def any_valid_labels() -> st.SearchStrategy[dict[str, str]]:
    """Valid labels of any size, the sizes near the 64-label limit included."""
    return st.one_of(valid_labels(), valid_labels_near_the_limit())


# --------------------------------------------------------------------------------------------------
# Retention: fleets of machine images, and listings of them as a paged list may return them
# --------------------------------------------------------------------------------------------------

RETENTION_NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
RETENTION_SELECTOR = {"managed-by": "airflow"}
RETENTION_SOURCES = ("web-1", "web-2", "db-1")


def fleet_image(
    name: str,
    image_id: str | None,
    days_old: float,
    *,
    source: str = "web-1",
    status: str = "READY",
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A MachineImage as ``machineImages.list`` shows it (only the fields retention reads).

    :param name: the image name.
    :param image_id: its numeric id (None: an answer without ids).
    :param days_old: its age at :data:`RETENTION_NOW`.
    :param source: the source instance's name.
    :param status: READY, CREATING, ...
    :param labels: its labels (default: the selector's).
    """
    image: dict[str, Any] = {
        "name": name,
        "status": status,
        "creationTimestamp": (RETENTION_NOW - timedelta(days=days_old)).isoformat(),
        "sourceInstance": f"https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a/instances/{source}",
        "labels": dict(RETENTION_SELECTOR if labels is None else labels),
    }
    if image_id is not None:
        image["id"] = image_id
    return image


@st.composite
def retention_fleets(draw: st.DrawFn, max_size: int = 30) -> list[dict[str, Any]]:
    """Images of a project: unique names and ids, ages drawn from few values (so ties are common)."""
    names = draw(
        st.lists(
            st.text("abcdefgh0123456789-", min_size=1, max_size=10).map(lambda s: "i" + s),
            max_size=max_size,
            unique=True,
        )
    )
    fleet = []
    for index, name in enumerate(names):
        fleet.append(
            fleet_image(
                name,
                str(1000 + index),
                draw(st.one_of(st.integers(0, 12).map(float), st.floats(0, 400))),
                source=draw(st.sampled_from(RETENTION_SOURCES)),
                status=draw(st.sampled_from(["READY", "READY", "READY", "CREATING", "INVALID", "DELETING"])),
                labels=draw(st.sampled_from([RETENTION_SELECTOR, {}, {"managed-by": "someone"}, {"x": "y"}])),
            )
        )
    return fleet


#: What may change about an image between two pages of one listing (name, id, time and source cannot).
IMAGE_CHANGES: tuple[dict[str, Any], ...] = (
    {"status": "DELETING"},
    {"status": "READY"},
    {"status": "INVALID"},
    {"labels": {}},
    {"labels": {"managed-by": "someone"}},
    {"labels": dict(RETENTION_SELECTOR)},
)


@st.composite
def retention_listings(
    draw: st.DrawFn, fleet: list[dict[str, Any]], *, stale: bool = False
) -> tuple[list[dict[str, Any]], set[str]]:
    """What a paged ``machineImages.list`` of ``fleet`` may return while the set changes between pages.

    Entries left out, entries repeated (a page boundary shifted), entries repeated in another state
    (the image changed between the two pages), an image deleted and made again under the same name
    (a new id, newer), and any order. With ``stale``, some images are listed only in a state they
    no longer have (the fleet changed after the listing: only reading them again can tell).

    :return: the listing, and the names whose entries visibly changed while it was read (the planner
        must leave those alone).
    """
    present = [image for image in fleet if draw(st.integers(0, 9)) > 0]  # about one in ten left out
    entries = [
        {**image, **draw(st.sampled_from(IMAGE_CHANGES))} if stale and draw(st.booleans()) else dict(image)
        for image in present
    ]
    changed: set[str] = set()
    if present:
        entries += [dict(image) for image in draw(st.lists(st.sampled_from(present), max_size=8))]
        for image, change in draw(st.lists(st.tuples(st.sampled_from(present), st.sampled_from(IMAGE_CHANGES)))):
            copy = {**image, **change}
            if copy != image:
                entries.append(copy)
                changed.add(image["name"])
        for image in draw(st.lists(st.sampled_from(present), max_size=2)):
            made_again = {"id": str(int(image["id"]) + 100_000), "creationTimestamp": RETENTION_NOW.isoformat()}
            entries.append({**image, **made_again})
            changed.add(image["name"])
    return draw(st.permutations(entries)), changed
