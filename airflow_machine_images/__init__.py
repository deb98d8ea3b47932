"""Apache Airflow operators for Google Compute Engine machine images."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def get_provider_info() -> dict[str, Any]:
    """Describe this package to Airflow's providers manager (``apache_airflow_provider`` entry point)."""
    return {
        "package-name": "airflow-machine-images",
        "name": "Google Compute Engine Machine Images",
        "description": "Create, wait for, and prune Google Compute Engine machine images from Airflow.",
        "versions": [__version__],
    }
