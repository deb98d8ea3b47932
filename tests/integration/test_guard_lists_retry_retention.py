"""Guards that a mutation spot-check (issue 21) found unguarded, or guarded only by an exact value or a
log line, checked here by behaviour against the emulator over real HTTP:

- a permanent 400 is sent once, a 400 ``resourceNotReady`` is retried (counted on the server);
- a ``machineImages.list`` answer warned ``LIST_OVERHEAD_QUOTA_EXCEED`` makes retention delete nothing;
- images of one source made in the same instant are kept or deleted together, whatever the listing order.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_machine_images.api.retry import Budget, RetryPolicy
from airflow_machine_images.emulator import ComputeEngineEmulator, Fault
from airflow_machine_images.exceptions import InvalidRequestError, PartialListingError, ResourceNotReadyError
from airflow_machine_images.hooks import ComputeEngineMachineImageHook
from airflow_machine_images.operators import ComputeEngineMachineImageRetentionOperator
from tests.integration.conftest import PROJECT
from tests.integration.test_bad_input import FakeTI

pytestmark = pytest.mark.integration

MANAGED = {"managed-by": "airflow"}

# ---------------------------------------------------------------- 10. a permanent 400 is sent once


def hook_without_pauses() -> ComputeEngineMachineImageHook:
    """The sync hook with the default retry rules, every pause 0 (resourceNotReady: 5 attempts)."""
    policy = RetryPolicy(initial_backoff=0.0, not_ready=Budget(initial=0.0, largest=0.0, max_attempts=5))
    return ComputeEngineMachineImageHook(retry_policy=policy)


def test_a_plain_400_is_sent_once_and_a_400_resource_not_ready_is_retried(
    gcp_connection: ComputeEngineEmulator,
) -> None:
    hook = hook_without_pauses()
    with pytest.raises(InvalidRequestError):
        hook.list_machine_images(filter_="name = (")  # the server answers 400 "invalid"
    assert gcp_connection.count("machineImages.list") == 1
    assert gcp_connection.count("machineImages.list", status=400) == 1

    # An image still being created cannot be deleted yet: 400 "resourceNotReady", a temporary state.
    gcp_connection.add_instance("us-central1-a/slow-1", operation_seconds=600.0)
    gcp_connection.add_machine_image("img-c", source_instance="us-central1-a/slow-1", status="CREATING")
    with pytest.raises(ResourceNotReadyError):
        hook.delete_machine_image(name="img-c", request_id=str(uuid.uuid4()))
    assert gcp_connection.count("machineImages.delete", status=400) == 5


# ---------------------------------------------------------------- 12. LIST_OVERHEAD_QUOTA_EXCEED is no harmless warning


def retention(**overrides: Any) -> ComputeEngineMachineImageRetentionOperator:
    kwargs: dict[str, Any] = {"task_id": "prune", "label_selector": MANAGED, "keep_last": 1, "timeout": 60}
    kwargs.update(overrides)
    return ComputeEngineMachineImageRetentionOperator(**kwargs)


def image_names(emulator: ComputeEngineEmulator) -> list[str]:
    return [image["name"] for image in emulator.machine_images(PROJECT)]


def test_retention_deletes_nothing_on_a_list_warned_list_overhead_quota_exceed(
    gcp_connection: ComputeEngineEmulator,
) -> None:
    old = datetime.now(timezone.utc) - timedelta(days=3)
    for n in range(4):
        gcp_connection.add_machine_image(
            f"old-{n}",
            source_instance="us-central1-a/web-1",
            labels=MANAGED,
            creation_timestamp=old + timedelta(hours=n),
        )
    gcp_connection.inject(
        Fault(
            kind="partial_list",
            action="machineImages.list",
            omit_fraction=0.25,
            warning_code="LIST_OVERHEAD_QUOTA_EXCEED",
        )
    )
    with pytest.raises(PartialListingError, match="LIST_OVERHEAD_QUOTA_EXCEED"):
        retention().execute({"ti": FakeTI()})  # type: ignore[arg-type]
    assert gcp_connection.count("machineImages.delete") == 0
    assert image_names(gcp_connection) == [f"old-{n}" for n in range(4)]


# ---------------------------------------------------------------- 13. retention ties


def test_images_of_one_source_made_in_the_same_instant_are_kept_together_in_any_listing_order(
    gcp_connection: ComputeEngineEmulator,
) -> None:
    gcp_connection.add_instance("us-central1-a/web-2")
    newest = datetime.now(timezone.utc) - timedelta(days=1)
    seeds = [
        # web-1: the two newest are tied (seeded b before a); keep_last=1 keeps both
        ("web-1-tie-b", "web-1", newest),
        ("web-1-tie-a", "web-1", newest),
        ("web-1-older", "web-1", newest - timedelta(hours=1)),
        # web-2: a tie just behind the newest (seeded a before b); keep_last=1 deletes both
        ("web-2-newest", "web-2", newest),
        ("web-2-tie-a", "web-2", newest - timedelta(hours=1)),
        ("web-2-tie-b", "web-2", newest - timedelta(hours=1)),
    ]
    for name, source, created in seeds:
        gcp_connection.add_machine_image(
            name, source_instance=f"us-central1-a/{source}", labels=MANAGED, creation_timestamp=created
        )

    first = retention().execute({"ti": FakeTI()})  # type: ignore[arg-type]
    assert sorted(first["deleted"]) == ["web-1-older", "web-2-tie-a", "web-2-tie-b"]
    assert image_names(gcp_connection) == ["web-1-tie-a", "web-1-tie-b", "web-2-newest"]

    # A second run (another task instance) finds nothing more to delete: the tie is stable.
    again = FakeTI()
    again.run_id = "manual__2"
    second = retention().execute({"ti": again})  # type: ignore[arg-type]
    assert second["deleted"] == []
    assert image_names(gcp_connection) == ["web-1-tie-a", "web-1-tie-b", "web-2-newest"]
