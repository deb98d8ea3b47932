"""The one zone check: a region (or anything else that is no zone) fails, naming the zones it meant."""

from __future__ import annotations

import pytest

from airflow_machine_images.emulator.zones import AI_ZONES, ZONES
from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.validation import parse_source_instance, validate_zone
from airflow_machine_images.validation.references import validate_disk_url
from airflow_machine_images.validation.zones import KNOWN_ZONES, zones_of_region


@pytest.mark.parametrize("zone", ["us-central1-a", "europe-west1-d", "northamerica-south1-c", "us-west4-ai2b"])
def test_zones_pass(zone: str) -> None:
    assert validate_zone(zone) == zone


def test_a_region_fails_naming_the_parameter_and_the_zones_of_that_region() -> None:
    with pytest.raises(MachineImageValidationError) as caught:
        validate_zone("us-central1", "zones[0]")
    assert caught.value.parameter == "zones[0]"
    assert str(caught.value) == (
        "Invalid zones[0]: 'us-central1' is a region, not a zone (a zone must be its region, '-' and a letter); "
        "did you mean us-central1-a, -b, -c, -f?"
    )
    with pytest.raises(MachineImageValidationError, match=r"did you mean europe-west1-b, -c, -d\?"):
        validate_zone("europe-west1")


def test_a_region_nobody_lists_fails_with_the_rule() -> None:
    with pytest.raises(MachineImageValidationError, match=r"'us-nowhere1' is no zone: a zone must be a region, '-'"):
        validate_zone("us-nowhere1")


@pytest.mark.parametrize(
    ("text", "hint"),
    [("us-central1-A", "did you mean us-central1-a"), ("us-central-1a", "did you mean us-central1-a"), ("Z", None)],
)
def test_other_non_zones_fail_with_the_rule_and_the_nearest_names(text: str, hint: str | None) -> None:
    with pytest.raises(MachineImageValidationError, match="must be a region, '-' and a letter") as caught:
        validate_zone(text)
    assert (hint in str(caught.value)) if hint else ("did you mean" not in str(caught.value))


def test_a_reference_with_a_region_fails_naming_the_argument_and_the_zone() -> None:
    with pytest.raises(MachineImageValidationError) as caught:
        parse_source_instance("us-central1/web-1", "p")
    assert caught.value.parameter == "source_instance"
    assert "'us-central1/web-1': its zone 'us-central1' is a region, not a zone" in str(caught.value)
    assert "did you mean us-central1-a, -b, -c, -f?" in str(caught.value)
    with pytest.raises(MachineImageValidationError, match="its zone 'us-east1' is a region"):
        parse_source_instance("https://www.googleapis.com/compute/v1/projects/p/zones/us-east1/instances/i", None)


def test_disk_references_take_zones_and_regions() -> None:
    assert validate_disk_url("projects/p/regions/us-central1/disks/d", "d") == "projects/p/regions/us-central1/disks/d"
    with pytest.raises(MachineImageValidationError, match="its zone 'us-central1' is a region"):
        validate_disk_url("projects/p/zones/us-central1/disks/d", "d")


def test_the_list_is_the_published_table() -> None:
    assert len(KNOWN_ZONES) == len(set(KNOWN_ZONES)) > 120
    assert zones_of_region("us-central1") == ["us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"]
    assert zones_of_region("us-nowhere1") == []
    assert all(validate_zone(zone) == zone for zone in KNOWN_ZONES)


def test_the_emulator_knows_the_same_zones() -> None:
    """The emulator imports nothing of the package: its own copy of the list must not drift from ours."""
    assert set(KNOWN_ZONES) == ZONES - AI_ZONES
    assert all(validate_zone(zone) == zone for zone in AI_ZONES)
