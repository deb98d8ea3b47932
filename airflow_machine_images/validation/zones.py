"""Zones: what a zone name looks like, the zones Compute Engine lists, and the one zone check of the package.

A zone is its region plus ``-`` and a letter (``us-central1-a``); an AI zone extends the letter to
``ai``, a number and a letter (``us-west4-ai2b``). Source: "Regions and zones", section "Identifying a
region or zone" (cloud.google.com/compute/docs/regions-zones): "A standard zone name contains two
parts: the region and the zone in the region"; "For an AI zone, the <zone> variable consists of three
parts: the string ai ..., a number ... and a letter". A region (``us-central1``) where a zone belongs is
the mistake this check exists for: Compute Engine answers it 400 "Invalid value for field 'zone':
'us-central1'. Unknown zone.", but a list filtered by zone just comes back empty, so a backup would
succeed having done nothing.

:data:`KNOWN_ZONES` is the "Available regions and zones" table of that page (read 2026-11-30). It only
words the errors (the zones of a region someone typed, the nearest names to a typo): a zone name of the
right shape that the list does not hold is passed on, and the service decides (the safe reading: zones
are added to the list over time, and this package must not refuse one that exists). The emulator keeps
its own copy (it imports nothing of the package); ``tests/unit/validation/test_zones.py`` keeps the two equal.
"""

from __future__ import annotations

import difflib
import re
from typing import Final

from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.validation.primitives import require_str, show_value

__all__ = [
    "KNOWN_ZONES",
    "REGION_SHAPE_PATTERN",
    "ZONE_SHAPE_PATTERN",
    "ZONE_SHAPE_RULE",
    "check_zone_component",
    "validate_zone",
    "zones_of_region",
]

#: The zone letters of each region in the "Available regions and zones" table (see the module docstring).
_TABLE: Final[dict[str, str]] = {
    "africa-south1": "abc", "asia-east1": "abc", "asia-east2": "abc", "asia-northeast1": "abc",
    "asia-northeast2": "abc", "asia-northeast3": "abc", "asia-south1": "abc", "asia-south2": "abc",
    "asia-southeast1": "abc", "asia-southeast2": "abc", "asia-southeast3": "abc", "australia-southeast1": "abc",
    "australia-southeast2": "abc", "europe-central2": "abc", "europe-north1": "abc", "europe-north2": "abc",
    "europe-southwest1": "abc", "europe-west1": "bcd", "europe-west2": "abc", "europe-west3": "abc",
    "europe-west4": "abc", "europe-west6": "abc", "europe-west8": "abc", "europe-west9": "abc",
    "europe-west10": "abc", "europe-west12": "abc", "me-central1": "abc", "me-central2": "abc",
    "me-west1": "abc", "northamerica-northeast1": "abc", "northamerica-northeast2": "abc",
    "northamerica-south1": "abc", "southamerica-east1": "abc", "southamerica-west1": "abc",
    "us-central1": "abcf", "us-east1": "bcd", "us-east4": "abc", "us-east5": "abc", "us-south1": "abc",
    "us-west1": "abc", "us-west2": "abc", "us-west3": "abc", "us-west4": "abc",
}  # fmt: skip
#: Every zone of the table, sorted.
KNOWN_ZONES: Final[tuple[str, ...]] = tuple(
    sorted(f"{region}-{letter}" for region, letters in _TABLE.items() for letter in letters)
)
#: A region: words joined by ``-``, the last ending in a number (``us-central1``, ``northamerica-south1``).
REGION_SHAPE_PATTERN: Final = r"[a-z]+(?:-[a-z]+)*[0-9]+"
#: A zone: a region, ``-``, and a letter (or ``ai``, a number and a letter, for an AI zone).
ZONE_SHAPE_PATTERN: Final = rf"{REGION_SHAPE_PATTERN}-(?:[a-z]|ai[0-9]+[a-z])"
ZONE_SHAPE_RULE: Final = (
    "must be a zone: a region, '-' and a letter, such as 'us-central1-a' (an AI zone: 'us-west4-ai2b')"
)
#: Longer than any zone (the discovery document's ``zone`` parameter allows 63 characters).
_MAX_ZONE: Final = 63


def zones_of_region(region: str) -> list[str]:
    """The listed zones of ``region`` (none for a region the table does not hold).

    :param region: e.g. ``us-central1``.
    """
    return [f"{region}-{letter}" for letter in _TABLE.get(region, "")]


def _why_not_a_zone(text: str) -> str:
    """The rule a text that is no zone breaks, with the zones it most likely meant."""
    if re.fullmatch(REGION_SHAPE_PATTERN, text):
        zones = zones_of_region(text)
        if zones:
            others = ", ".join(f"-{zone.rsplit('-', 1)[1]}" for zone in zones[1:])
            hint = zones[0] + (f", {others}" if others else "")
            return f"is a region, not a zone (a zone must be its region, '-' and a letter); did you mean {hint}?"
        return (
            f"is no zone: a zone must be a region, '-' and a letter (such as 'us-central1-a'), and {text!r} is no "
            "region of Compute Engine's list of regions and zones either"
        )
    close = difflib.get_close_matches(text.lower(), KNOWN_ZONES, n=3, cutoff=0.8)
    rule = "is no zone: " + ZONE_SHAPE_RULE.replace("must be a zone: a", "it must be a", 1)
    return f"{rule}; did you mean {', '.join(close)}?" if close else rule


def validate_zone(value: object, parameter: str = "zone") -> str:
    """Check a zone name: a region, ``-`` and a letter (the one zone check of the package).

    A region, a typo or anything else that cannot be a zone fails naming ``parameter``, the rule and
    the zones it most likely meant (the listed zones of that region, or the nearest listed names).

    :param value: the zone, e.g. ``us-central1-a``.
    :param parameter: the argument name used in the error message.
    :return: the zone.
    :raises MachineImageValidationError: it is no zone.
    """
    text = require_str(value, parameter, ZONE_SHAPE_RULE)
    if len(text) > _MAX_ZONE or re.fullmatch(ZONE_SHAPE_PATTERN, text) is None:
        raise MachineImageValidationError(parameter, f"{show_value(text)} {_why_not_a_zone(text)}")
    return text


def check_zone_component(zone: str, parameter: str, shown: str) -> str:
    """Check the zone of a reference (``us-central1/web-1``): the error names the zone and shows the whole text.

    :param zone: the zone part of the reference.
    :param parameter: the argument the reference came in.
    :param shown: the whole reference, as shown in errors.
    :return: the zone.
    """
    if len(zone) > _MAX_ZONE or re.fullmatch(ZONE_SHAPE_PATTERN, zone) is None:
        raise MachineImageValidationError(parameter, f"{shown}: its zone {show_value(zone)} {_why_not_a_zone(zone)}")
    return zone
