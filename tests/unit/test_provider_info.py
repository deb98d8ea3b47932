"""What Airflow's providers manager learns about this package lists every operator module."""

from __future__ import annotations

import ast
from pathlib import Path

import airflow_machine_images
from airflow_machine_images import get_provider_info

PACKAGE = Path(airflow_machine_images.__file__).parent


def test_every_operator_module_is_declared() -> None:
    declared = {module for entry in get_provider_info()["operators"] for module in entry["python-modules"]}
    on_disk = {
        f"airflow_machine_images.operators.{path.stem}"
        for path in (PACKAGE / "operators").glob("*.py")
        if any(
            isinstance(node, ast.ClassDef) and node.name.endswith("Operator") and "Base" not in node.name
            for node in ast.parse(path.read_text()).body
        )
    }
    assert on_disk == declared
    assert "airflow_machine_images.operators.restore" in declared  # the operators of issue 15 included


def test_the_description_names_what_each_operator_module_does() -> None:
    """It listed only create/wait/prune (issue 24 item 6): restore, fleet backup and coverage were missing."""
    description = get_provider_info()["description"].lower()
    for does in ("create", "fleet", "wait", "restore", "delete", "prune", "coverage"):
        assert does in description, does
