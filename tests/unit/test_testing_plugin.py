"""The pytest plugin (``airflow_machine_images.testing``): registered by the entry point, cheap to load."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_machine_images.testing import harness

if TYPE_CHECKING:
    from pathlib import Path

#: What a user's unrelated tests must not pay for: Airflow, its database layer, Google, HTTP clients, the emulator.
HEAVY = ("airflow", "sqlalchemy", "google", "googleapiclient", "requests", "aiohttp", "pendulum")

UNRELATED_TEST = f"""
import sys


def test_unrelated(pytestconfig):
    loaded = pytestconfig.pluginmanager.has_plugin("airflow_machine_images")
    print("PLUGIN", loaded)
    # namespace packages (``google``, set up by .pth files at interpreter start) have no code: not counted
    heavy = sorted(
        name for name, module in sys.modules.items()
        if (name.split(".")[0] in {HEAVY!r} or name.startswith("airflow_machine_images.emulator"))
        and getattr(module, "__file__", None)
    )
    assert heavy == [], heavy
"""


def run_unrelated_test(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_unrelated.py").write_text(UNRELATED_TEST)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "test_unrelated.py", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_entry_point_loads_the_plugin_and_nothing_heavy(tmp_path: Path) -> None:
    result = run_unrelated_test(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "PLUGIN True" in result.stdout


def test_the_plugin_can_be_turned_off(tmp_path: Path) -> None:
    result = run_unrelated_test(tmp_path, "-p", "no:airflow_machine_images")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "PLUGIN False" in result.stdout


def test_importing_the_plugin_module_loads_only_itself() -> None:
    code = (
        "import sys; before = set(sys.modules); import airflow_machine_images.testing; "
        "print(sorted(m for m in set(sys.modules) - before if (m.split('.')[0] in "
        f"{HEAVY!r} or m.startswith('airflow_machine_images.emulator')) and getattr(sys.modules[m], '__file__', None)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


@dataclass
class FakeTaskInstance:
    task_id: str
    map_index: int
    state: str


class FakeDagRun:
    def __init__(self, tis: list[FakeTaskInstance]) -> None:
        self.tis = tis

    def get_task_instances(self) -> list[Any]:
        return self.tis


def test_task_states_list_a_mapped_task_by_map_index() -> None:
    run = FakeDagRun(
        [
            FakeTaskInstance("backup", 1, "failed"),
            FakeTaskInstance("select", -1, "success"),
            FakeTaskInstance("backup", 0, "success"),
        ]
    )
    assert harness.task_states(run) == {"backup": ["success", "failed"], "select": "success"}


def test_the_airflow_environment_points_at_the_home(tmp_path: Path) -> None:
    env = harness.airflow_environment(tmp_path, tmp_path / "dags")
    assert env["AIRFLOW_HOME"] == str(tmp_path)
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(tmp_path / "dags")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{tmp_path / 'airflow.db'}"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"


def test_the_connection_is_anonymous_and_names_the_endpoint_only_when_given() -> None:
    assert '"compute_api_endpoint": "http://127.0.0.1:1"' in harness.connection_json("http://127.0.0.1:1", "p")
    assert "compute_api_endpoint" not in harness.connection_json(None, "p")
    assert '"is_anonymous": true' in harness.connection_json(None, "p")
