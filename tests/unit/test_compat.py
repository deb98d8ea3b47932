"""The compat module: every name resolves on the installed Airflow (2.11 or 3.x), from its newest location."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings
from datetime import datetime
from typing import TYPE_CHECKING

import pytest

from airflow_machine_images import compat

if TYPE_CHECKING:
    from pathlib import Path


#: Names whose old and new locations, where both exist, must be the very same class.
SAME_CLASS_EVERYWHERE = {"DagBag"}
#: What the module defines itself (not resolved from a location).
FUNCTIONS = {"airflow_major", "dag_test"}


def _existing(location: str) -> object | None:
    module_name, _, attribute = location.partition(":")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # old locations may warn on a new Airflow
            module = importlib.import_module(module_name)
            return getattr(module, attribute) if attribute else module
    except (ImportError, AttributeError):
        return None


def test_all_lists_every_compat_name() -> None:
    assert sorted(compat.__all__) == sorted({*compat.CANDIDATES, *compat.FROM_COMMON_COMPAT, *FUNCTIONS})
    assert set(compat.__all__) <= set(dir(compat))


@pytest.mark.parametrize("name", compat.FROM_COMMON_COMPAT)
def test_names_exported_before_come_from_common_compat(name: str) -> None:
    from airflow.providers.common.compat import sdk

    assert compat.resolve(name) is getattr(sdk, name)
    assert getattr(compat, name) is getattr(sdk, name)


def test_airflow_major_is_the_installed_airflows() -> None:
    import airflow

    assert compat.airflow_major() == int(airflow.__version__.split(".")[0])
    assert compat.airflow_major() in (2, 3)
    assert compat.airflow_version == airflow.__version__


class _RecordingDag:
    """Records the arguments ``dag.test()`` is called with."""

    def __init__(self) -> None:
        self.calls: list[dict[str, object]] = []

    def test(self, **kwargs: object) -> str:
        self.calls.append(kwargs)
        return "run"


@pytest.mark.parametrize(
    ("major", "expected"),
    [
        (3, {"logical_date": "D", "run_after": "D", "run_conf": {"a": 1}}),
        (2, {"execution_date": "D", "run_conf": {"a": 1}}),
    ],
)
def test_dag_test_passes_each_majors_arguments(
    major: int, expected: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compat, "airflow_major", lambda: major)
    dag = _RecordingDag()
    assert compat.dag_test(dag, logical_date="D", run_conf={"a": 1}) == "run"  # type: ignore[arg-type]
    assert compat.dag_test(dag) == "run"
    assert dag.calls[0] == expected
    if major >= 3:  # a new run is given today's date (Airflow 3.0 would leave it None: no {{ ds }})
        now = dag.calls[1]["logical_date"]
        assert isinstance(now, datetime) and now.tzinfo is not None
        assert dag.calls[1] == {"logical_date": now, "run_after": now, "run_conf": None}
    else:
        assert dag.calls[1] == {"run_conf": None}


def test_dag_test_arguments_exist_on_this_airflows_dag() -> None:
    import inspect

    from airflow.providers.common.compat.sdk import DAG

    parameters = inspect.signature(DAG.test).parameters
    wanted = {"logical_date", "run_after"} if compat.airflow_major() >= 3 else {"execution_date"}
    assert wanted | {"run_conf"} <= set(parameters)


@pytest.mark.parametrize("name", sorted(compat.CANDIDATES))
def test_each_name_resolves_from_its_first_existing_location(name: str) -> None:
    found = [value for value in map(_existing, compat.CANDIDATES[name]) if value is not None]
    assert found, f"{name}: none of {compat.CANDIDATES[name]} exists on this Airflow"
    assert compat.resolve(name) is found[0]
    assert getattr(compat, name) is found[0]
    if name in SAME_CLASS_EVERYWHERE:
        # Where old and new locations both exist they hold the same class: raised via one, caught via the other.
        assert all(value is found[0] for value in found), name


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        compat.no_such_name  # noqa: B018


def test_no_existing_location_is_an_import_error_naming_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(compat.CANDIDATES, "Gone", ("no_such_package.sub:Gone", "airflow:NoSuchAttribute"))
    with pytest.raises(ImportError, match=r"Gone is in none of no_such_package\.sub:Gone, airflow:NoSuchAttribute"):
        compat.resolve("Gone")


def test_a_broken_module_is_not_mistaken_for_a_missing_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "compat_probe_broken.py").write_text("import compat_probe_dependency_that_is_missing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(compat.CANDIDATES, "Broken", ("compat_probe_broken:X", "airflow:__version__"))
    with pytest.raises(ModuleNotFoundError, match="compat_probe_dependency_that_is_missing"):
        compat.resolve("Broken")


def test_importing_compat_loads_no_airflow_module() -> None:
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import airflow_machine_images.compat\n"
        "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] == 'airflow'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
