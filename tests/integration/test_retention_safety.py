"""Retention against a fleet that changes while it runs: real HTTP to the emulator, the operator's own hook.

The emulator's ``on_request`` hook runs before an answer is sent, so a test can change the fleet
exactly between the list and the deletes (or between two pages of the list), as another pipeline or
a person would.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
import requests

from airflow_machine_images.operators import ComputeEngineMachineImageRetentionOperator
from tests.integration.conftest import PROJECT, SOURCE

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_machine_images.emulator import ComputeEngineEmulator, RecordedRequest

pytestmark = pytest.mark.integration

SELECTOR = {"managed-by": "airflow"}
NOW = datetime.now(timezone.utc)


@dataclass
class FakeTaskInstance:
    """The parts of a task instance the retention operator reads."""

    dag_id: str = "retention_dag"
    task_id: str = "prune"
    run_id: str = "manual__1"
    map_index: int = -1
    try_number: int = 1


def prune(**kwargs: Any) -> dict[str, Any]:
    operator = ComputeEngineMachineImageRetentionOperator(
        task_id="prune", label_selector=SELECTOR, timeout=30, **kwargs
    )
    return operator.execute({"ti": FakeTaskInstance()})  # type: ignore[arg-type]


def seed(emulator: ComputeEngineEmulator, name: str, days_old: float, **kwargs: Any) -> None:
    kwargs.setdefault("labels", SELECTOR)
    emulator.add_machine_image(
        name, source_instance=SOURCE, creation_timestamp=NOW - timedelta(days=days_old), **kwargs
    )


def names(emulator: ComputeEngineEmulator) -> set[str]:
    return {image["name"] for image in emulator.machine_images(PROJECT)}


def once_after(action: str, change: Callable[[], None]) -> Callable[[RecordedRequest], None]:
    """An ``on_request`` hook that runs ``change`` once, after the first ``action`` request, before its answer."""
    done: list[bool] = []

    def hook(record: RecordedRequest) -> None:
        if record.action == action and not done:
            done.append(True)
            change()

    return hook


class OtherClient:
    """Someone else working on the same project (plain HTTP, no part of the package)."""

    def __init__(self, emulator: ComputeEngineEmulator) -> None:
        self.base = f"{emulator.url}/compute/beta/projects/{PROJECT}/global/machineImages"

    def relabel(self, name: str, labels: dict[str, str]) -> None:
        fingerprint = requests.get(f"{self.base}/{name}", timeout=5).json()["labelFingerprint"]
        answer = requests.post(
            f"{self.base}/{name}/setLabels", json={"labels": labels, "labelFingerprint": fingerprint}, timeout=5
        )
        answer.raise_for_status()

    def delete(self, name: str) -> None:
        requests.delete(f"{self.base}/{name}", timeout=5).raise_for_status()


def test_a_page_boundary_that_shifts_does_not_delete_the_newest_image(gcp_connection: ComputeEngineEmulator) -> None:
    """An image added between two pages repeats the last entry of page 1 on page 2 (offset paging).

    Before: the repeated newest image counted as its own older copy and was planned for deletion
    (keep_last=1), and deleted.
    """
    emulator = gcp_connection
    for n in range(499):  # page 1 (500 per page): 499 images left alone (not READY), then the newest
        seed(emulator, f"b-{n:03d}", 10, status="INVALID")
    seed(emulator, "c-newest", 1)  # the last entry of page 1
    seed(emulator, "c-oldest", 3)  # page 2
    emulator.on_request = once_after(
        "machineImages.list", lambda: seed(emulator, "a-late", 0, status="CREATING")
    )  # sorts first: shifts page 2 back by one
    result = prune(keep_last=1)
    lists = [r for r in emulator.requests if r.action == "machineImages.list"]
    assert len(lists) == 2, "the listing was not paged"
    assert "c-newest" in names(emulator)
    assert result["deleted"] == ["c-oldest"]
    assert "c-newest" in result["kept"]


def test_an_image_that_changed_since_the_listing_is_re_read_and_skipped(
    gcp_connection: ComputeEngineEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    emulator = gcp_connection
    seed(emulator, "img-new", 0)
    seed(emulator, "img-mid", 2)
    seed(emulator, "img-old", 3)
    other = OtherClient(emulator)

    def meanwhile() -> None:
        other.relabel("img-old", {"managed-by": "someone-else"})  # no longer selected
        other.delete("img-mid")  # DELETING, then gone

    emulator.on_request = once_after("machineImages.list", meanwhile)
    result = prune(keep_last=1)
    ours = [r for r in emulator.requests if r.action == "machineImages.delete" and r.query.get("requestId")]
    assert ours == [], "retention deleted an image that changed after the listing"
    assert result["deleted"] == []
    assert result["skipped"] == ["img-mid", "img-old"]
    assert "img-old" in names(emulator)
    captured = capfd.readouterr()
    log = captured.out + captured.err
    assert "img-old" in log and "no longer match" in log
    assert "img-mid" in log


def test_deletions_wait_for_the_images_that_justify_them(gcp_connection: ComputeEngineEmulator) -> None:
    """If the newest image goes away after the listing, the next one is the newest: it must stay."""
    emulator = gcp_connection
    seed(emulator, "img-new", 0)
    seed(emulator, "img-mid", 2)
    seed(emulator, "img-old", 3)
    other = OtherClient(emulator)
    emulator.on_request = once_after("machineImages.list", lambda: other.delete("img-new"))
    result = prune(keep_last=1)
    assert result["deleted"] == []
    assert sorted(result["skipped"]) == ["img-mid", "img-old"]
    assert {"img-mid", "img-old"} <= names(emulator)
