"""The zones the emulated Compute Engine knows, and its answer to any other: 400 "Unknown zone".

Compute Engine answers a zone it does not have (a region such as ``us-central1`` included) with 400
"Invalid value for field 'zone': 'us-central1'. Unknown zone." (COMPUTE_ENGINE_NOTES, "Restores and
instances"), on every zonal route. The zones are the "Available regions and zones" table of "Regions and
zones" (cloud.google.com/compute/docs/regions-zones, read 2026-11-30), plus that page's example of an AI
zone (``us-west4-ai2b``: "the fully qualified name for AI zone ai2b in region us-west4"). The emulator
imports nothing of the package, so this is its own copy; ``tests/unit/validation/test_zones.py`` keeps it
equal to the package's list (``airflow_machine_images.validation.zones``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from airflow_machine_images.emulator import errors

if TYPE_CHECKING:
    from airflow_machine_images.emulator.errors import ApiError

__all__ = ["AI_ZONES", "ZONES", "check_zone", "unknown_zone"]

#: Region -> the letters of its zones (the page's table).
_LETTERS: Final[dict[str, str]] = {
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
#: The AI zones the page names.
AI_ZONES: Final = frozenset({"us-west4-ai2b"})
#: Every zone the emulator serves.
ZONES: Final = AI_ZONES | {f"{region}-{letter}" for region, letters in _LETTERS.items() for letter in letters}


def unknown_zone(zone: str) -> ApiError:
    """The real API's answer to a zone it does not have.

    :param zone: the zone sent.
    :return: 400 ``invalid``: "Invalid value for field 'zone': 'ZONE'. Unknown zone."
    """
    return errors.invalid_field("zone", zone, "Unknown zone.")


def check_zone(zone: str) -> str:
    """Refuse a zone Compute Engine does not have, as it does.

    :param zone: the zone of a request or of something seeded.
    :return: the zone.
    :raises ApiError: 400 "Unknown zone".
    """
    if zone not in ZONES:
        raise unknown_zone(zone)
    return zone
