"""Scheduled on new machine images: runs whenever the nightly backup made images.

The backup's insert tasks declare ``outlets=[machine_image_asset(PROJECT_ID)]``; each image they
make is an asset event whose extra carries its name, self link, source instance, size and
request id.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, get_current_context, task

from airflow_machine_images.assets import machine_image_asset

PROJECT_ID = os.environ.get("MACHINE_IMAGES_PROJECT_ID", "demo-project")

with DAG(
    dag_id="example_react_to_new_images",
    description="Runs when new machine images exist (asset-scheduled)",
    schedule=[machine_image_asset(PROJECT_ID)],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "compute-engine", "machine-image", "assets"],
) as dag:

    @task
    def list_new_images() -> list[str]:
        """Read the images from the triggering asset events."""
        context = get_current_context()
        # Airflow 3 hands the events over as triggering_asset_events; Airflow 2, whose assets are datasets,
        # as triggering_dataset_events.
        events = context.get("triggering_asset_events") or context.get("triggering_dataset_events") or {}
        links = [event.extra["self_link"] for asset_events in events.values() for event in asset_events]
        for link in links:
            print(f"New machine image: {link}")
        return links

    list_new_images()
