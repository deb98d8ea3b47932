"""Apache Airflow operators for Google Compute Engine machine images."""

from __future__ import annotations

from typing import Any

from airflow_machine_images.config import provider_config
from airflow_machine_images.version import __version__

__all__ = ["__version__", "get_provider_info"]


_INTEGRATION = "Google Compute Engine Machine Images"
#: The ``gce-machine-image`` URI scheme: its check and its factory (``airflow_machine_images.assets``).
_ASSET_URIS = {
    "schemes": ["gce-machine-image"],
    "handler": "airflow_machine_images.assets.sanitize_uri",
    "factory": "airflow_machine_images.assets.create_asset",
}


#: What the providers manager (and ``airflow providers list``) says the package does: every operator module.
PROVIDER_DESCRIPTION = (
    "Google Compute Engine machine images from Airflow: create them exactly once (one instance, or a whole "
    "fleet selected by labels), wait for them, restore them into new instances (the newest of an instance "
    "included) and delete what a restore made, prune them by retention policy, and check a fleet's backup "
    "coverage."
)


def get_provider_info() -> dict[str, Any]:
    """Describe this package to Airflow's providers manager (``apache_airflow_provider`` entry point).

    Connections use the Google provider's ``google_cloud_platform`` type (with our optional
    ``compute_api_endpoint`` extra), so no connection type of our own is registered. ``config``
    declares the ``[machine_images]`` section (the request budget), so ``airflow config list`` shows it.
    The ``gce-machine-image`` URI scheme is declared twice: ``asset-uris`` for Airflow 3, ``dataset-uris``
    for Airflow 2.
    """
    return {
        "package-name": "airflow-machine-images",
        "name": _INTEGRATION,
        "description": PROVIDER_DESCRIPTION,
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://cloud.google.com/compute/docs/machine-images",
                "tags": ["gcp"],
            }
        ],
        "hooks": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": ["airflow_machine_images.hooks.sync", "airflow_machine_images.hooks.asynchronous"],
            }
        ],
        "operators": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": [
                    "airflow_machine_images.operators.machine_images",
                    "airflow_machine_images.operators.retention",
                    "airflow_machine_images.operators.restore",
                    "airflow_machine_images.operators.restore_cleanup",
                    "airflow_machine_images.operators.fleet",
                    "airflow_machine_images.operators.fleet_backup",
                    "airflow_machine_images.operators.boot",
                ],
            }
        ],
        "sensors": [{"integration-name": _INTEGRATION, "python-modules": ["airflow_machine_images.sensors"]}],
        "triggers": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": [
                    "airflow_machine_images.triggers.waits",
                    "airflow_machine_images.triggers.source_limit",
                    "airflow_machine_images.triggers.fleet_backup",
                    "airflow_machine_images.triggers.boot",
                ],
            }
        ],
        "extra-links": [
            "airflow_machine_images.links.MachineImageLink",
            "airflow_machine_images.links.InstanceLink",
        ],
        "asset-uris": [_ASSET_URIS],
        "dataset-uris": [_ASSET_URIS],  # what Airflow 2 reads: assets were datasets there
        "config": provider_config(),
    }
