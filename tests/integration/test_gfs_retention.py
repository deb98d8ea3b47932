"""Grandfather-father-son retention end to end with dag.test(): a dry run shows the plan and the rules that
keep each image, a real run deletes exactly what an independent model of the rules deletes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest

from airflow_machine_images.planning.retention import RetentionPolicy
from tests.integration.conftest import PROJECT, load_dag, task_states, xcom_result
from tests.unit.test_retention_gfs import model_reasons

if TYPE_CHECKING:
    from airflow_machine_images.emulator import ComputeEngineEmulator

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

MANAGED = {"managed-by": "airflow"}
WEB_1 = f"projects/{PROJECT}/zones/us-central1-a/instances/web-1"
WEB_2 = f"projects/{PROJECT}/zones/us-central1-a/instances/web-2"


def seed_history(emulator: ComputeEngineEmulator) -> list[dict[str, Any]]:
    """web-1: a nightly image at 01:00 UTC for 100 days; web-2: one every third day for 100 days."""
    emulator.add_instance("us-central1-a/web-2")
    midnight = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    seeded = [
        emulator.add_machine_image(
            f"web-1-{day:03d}",
            source_instance=WEB_1,
            labels=MANAGED,
            creation_timestamp=midnight - timedelta(days=day) + timedelta(hours=1),
        )
        for day in range(1, 101)
    ]
    seeded += [
        emulator.add_machine_image(
            f"web-2-{day:03d}",
            source_instance=WEB_2,
            labels=MANAGED,
            creation_timestamp=midnight - timedelta(days=day) + timedelta(hours=1),
        )
        for day in range(1, 101, 3)
    ]
    return seeded


def test_gfs_dry_run_names_the_rules_and_the_run_deletes_what_the_model_deletes(
    gcp_connection: ComputeEngineEmulator,
) -> None:
    seeded = seed_history(gcp_connection)
    policy = RetentionPolicy(
        label_selector=MANAGED, keep_last=2, keep_daily=7, keep_weekly=4, keep_monthly=3, keep_yearly=2
    )
    model = model_reasons(seeded, policy, datetime.now(timezone.utc))
    doomed = sorted(name for name, why in model.items() if not why)
    assert 60 < len(doomed) < 120  # the history is long enough for every rule to matter

    dry = load_dag("ami_test_retention_gfs").test(run_conf={"dry_run": True})
    assert task_states(dry) == {"prune": "success"}
    plan = xcom_result(dry, "prune")
    assert plan["would_delete"] == doomed and plan["deleted"] == []
    assert {name: set(why) for name, why in plan["kept_by"].items()} == {n: w for n, w in model.items() if w}
    assert plan["kept_by"]["web-1-001"][:2] == ["newest", "last"]
    assert gcp_connection.count("machineImages.delete") == 0

    run = load_dag("ami_test_retention_gfs").test(run_conf={"dry_run": False})
    assert task_states(run) == {"prune": "success"}
    result = xcom_result(run, "prune")
    assert result["deleted"] == doomed
    assert {image["name"] for image in gcp_connection.machine_images()} == {n for n, w in model.items() if w}
    # every delete went by the numeric id read just before it (issue 22), one per image
    ids = {image["name"]: image["id"] for image in seeded}
    sent = sorted(r.path.rsplit("/", 1)[1] for r in gcp_connection.requests if r.action == "machineImages.delete")
    assert sent == sorted(ids[name] for name in doomed)
