"""The README's "Test your own DAGs" recipe, read from README.md, run as a user would: a fresh pytest process.

The process gets none of this suite's set-up (no ``tests/conftest.py``, no ``AIRFLOW_*`` variables):
only the package as installed, whose ``pytest11`` entry point loads the plugin. So the recipe passes
only if the plugin registers, its fixtures make a working Airflow home, and the text in the README is
right as written.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests.docs_blocks import recipe_files

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration


def user_environment(home: Path) -> dict[str, str]:
    """This process's environment without Airflow's or Google's settings, as a user's shell would have it.

    :param home: a fresh HOME, so no ``~/airflow`` of this machine is read.
    """
    kept = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "_AIRFLOW", "GOOGLE_", "PYTEST_", "MACHINE_IMAGES_"))
    }
    return {**kept, "HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1"}


def run_pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m pytest`` in ``project`` with a user's environment.

    :param project: the directory (the recipe's files written in it).
    :param args: more pytest arguments.
    """
    home = project / "home"
    home.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", *args],
        cwd=project,
        env=user_environment(home),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def write_recipe(project: Path) -> None:
    """Write the README's recipe files under ``project``.

    :param project: the directory.
    """
    for relative, code in recipe_files().items():
        target = project / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(code)


def test_the_readme_recipe_passes_in_a_fresh_pytest(tmp_path: Path) -> None:
    write_recipe(tmp_path)
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "2 passed" in result.stdout, result.stdout[-2000:]


def test_the_recipe_fails_when_the_dag_makes_no_image(tmp_path: Path) -> None:
    """The recipe's assertions can fail: with the DAG's task changed to skip the insert, its test fails."""
    write_recipe(tmp_path)
    dag_file = tmp_path / "dags" / "nightly_backup.py"
    dag_file.write_text(dag_file.read_text().replace('labels={"backup": "nightly"}', 'labels={"backup": "weekly"}'))
    result = run_pytest(tmp_path, "-k", "one_ready_image")
    assert result.returncode == 1, result.stdout[-4000:]
    assert "1 failed" in result.stdout and "'weekly' == 'nightly'" in result.stdout, result.stdout[-4000:]


def test_the_recipe_passes_when_the_test_module_imports_airflow_first(tmp_path: Path) -> None:
    """A test module that imports operators (so Airflow) at its top, before ``airflow_home`` sets the home."""
    write_recipe(tmp_path)
    test_file = tmp_path / "tests" / "test_nightly_backup.py"
    first = (
        "import airflow.settings\n"
        "from airflow_machine_images.operators import ComputeEngineInsertMachineImageOperator  # noqa: F401\n"
    )
    home_is_used = (
        "\n\ndef test_the_home_is_used(airflow_home):\n"
        "    assert str(airflow_home.path / 'airflow.db') in airflow.settings.engine.url.database\n"
        "    assert airflow.settings.DAGS_FOLDER == str(airflow_home.dags_folder)\n"
    )
    test_file.write_text(first + test_file.read_text() + home_is_used)
    result = run_pytest(tmp_path, "-k", "one_ready_image or home_is_used")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "2 passed" in result.stdout, result.stdout[-2000:]
