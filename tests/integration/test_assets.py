"""Outlets fire only for the instance whose image was made (issue 24 item 5), through dag.test()."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.integration.conftest import run_dag

if TYPE_CHECKING:
    from airflow_machine_images.emulator import ComputeEngineEmulator

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]


def test_a_mapped_task_naming_one_instance_s_asset_images_only_that_instance(
    gcp_connection: ComputeEngineEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    """Airflow records an event on every Asset outlet of a task that succeeds: web-2's image would have been
    announced as web-1's. The mapped task of web-2 is refused before any request, pointing to AssetAlias."""
    gcp_connection.add_instance("us-central1-a/web-2")
    dag_run = run_dag("ami_test_mapped_insert_one_instance_asset")
    states = {ti.map_index: str(ti.state) for ti in dag_run.get_task_instances()}
    assert states == {0: "success", 1: "failed"}
    assert "Invalid outlets[0]" in capfd.readouterr().out
    inserts = [r.query["sourceInstance"] for r in gcp_connection.requests if r.action == "machineImages.insert"]
    assert inserts == ["projects/test-project/zones/us-central1-a/instances/web-1"]
