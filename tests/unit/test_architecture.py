"""The package keeps its import layers, has no import cycle, and ``docs/architecture.md`` shows the code
as it is (``scripts/architecture.py``, rerun by ``make architecture``)."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import airflow_machine_images

if TYPE_CHECKING:
    from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("architecture_script", REPO / "scripts" / "architecture.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


architecture = _load_script()


@pytest.fixture(scope="module")
def package() -> tuple[dict, list]:
    # The package as imported: the work tree's in the project's env, the installed wheel's in a compat cell.
    return architecture.analyse(Path(airflow_machine_images.__file__).parent)


def test_no_import_runs_against_the_layers(package: tuple[dict, list]) -> None:
    bad = architecture.violations(*reversed(package))
    assert not bad, "imports against the layers (scripts/architecture.py, LAYERS):\n" + "\n".join(map(str, bad))


def test_there_is_no_import_cycle(package: tuple[dict, list]) -> None:
    loops = architecture.cycles(package[1])
    assert not loops, "import cycles:\n" + "\n".join(" -> ".join(loop) for loop in loops)


def test_docs_architecture_shows_the_code_as_it_is(package: tuple[dict, list]) -> None:
    document = architecture.DOC.read_text(encoding="utf-8")
    assert architecture.generated_section(document) == architecture.generate(*package), (
        "docs/architecture.md is out of date: run `make architecture`"
    )


# The checker itself, on a small package written for each test.


def _write(root: Path, files: dict[str, str]) -> Path:
    package_dir = root / architecture.PACKAGE
    for name, text in {"__init__.py": '"""Root."""\n', **files}.items():
        path = package_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return package_dir


def _check(tmp_path: Path, files: dict[str, str]) -> tuple[list, list, list]:
    modules, found = architecture.analyse(_write(tmp_path, files))
    return found, architecture.violations(found, modules), architecture.cycles(found)


def test_an_import_from_a_higher_layer_is_reported_with_module_line_and_layers(tmp_path: Path) -> None:
    _, bad, _ = _check(
        tmp_path,
        {
            "results.py": '"""Results."""\n',
            "hooks/__init__.py": "",
            "hooks/sync.py": "import os\n\nfrom airflow_machine_images.results import x\n",
            "api/__init__.py": "",
            "api/calls.py": "from airflow_machine_images.hooks import sync\n",
        },
    )
    assert [str(v) for v in bad] == [
        "airflow_machine_images/api/calls.py:1: api.calls [api model] imports hooks.sync [hooks]",
    ]


def test_function_local_and_type_checking_imports_count_for_the_layers(tmp_path: Path) -> None:
    found, bad, loops = _check(
        tmp_path,
        {
            "config.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from airflow_machine_images.events import Event\n"
                "def f():\n"
                "    import airflow_machine_images.results\n"
            ),
            "events.py": "",
            "results.py": "import airflow_machine_images.config\n",
        },
    )
    flags = {(imp.importer, imp.imported): (imp.type_checking, imp.local) for imp in found}
    assert flags == {
        ("config", "events"): (True, False),
        ("config", "results"): (False, True),
        ("results", "config"): (False, False),
    }
    assert [(v.imp.importer, v.imp.imported) for v in bad] == [("config", "events"), ("config", "results")]
    assert loops == [["config", "results", "config"]]  # the function-local import runs; TYPE_CHECKING ones do not


def test_a_cycle_is_reported_as_a_path_back_to_its_first_module(tmp_path: Path) -> None:
    _, _, loops = _check(
        tmp_path,
        {
            "events.py": "import airflow_machine_images.results\n",
            "results.py": "import airflow_machine_images.links\n",
            "links.py": "import airflow_machine_images.events\nimport airflow_machine_images.links\n",
            "assets.py": "import airflow_machine_images.assets\n",
        },
    )
    assert loops == [["assets", "assets"], ["events", "results", "links", "events"]]


def test_a_cycle_through_type_checking_only_is_no_cycle(tmp_path: Path) -> None:
    _, _, loops = _check(
        tmp_path,
        {
            "events.py": "from airflow_machine_images.results import R\n",
            "results.py": "import typing\nif typing.TYPE_CHECKING:\n    from airflow_machine_images.events import E\n",
        },
    )
    assert loops == []


def test_from_package_import_name_resolves_to_the_submodule_or_the_package(tmp_path: Path) -> None:
    found, _, _ = _check(
        tmp_path,
        {
            "validation/__init__.py": "X = 1\n",
            "validation/names.py": "",
            "sensors.py": (
                "from airflow_machine_images.validation import names, X\n"
                "from airflow_machine_images import validation, __version__\n"
            ),
        },
    )
    assert [imp.imported for imp in found] == ["validation.names", "validation", "validation", "__init__"]


def test_the_emulator_imports_nothing_of_the_package_and_nothing_imports_it(tmp_path: Path) -> None:
    _, bad, _ = _check(
        tmp_path,
        {
            "config.py": "",
            "emulator/__init__.py": "from airflow_machine_images.emulator.core import E\n",
            "emulator/core.py": "from airflow_machine_images.config import C\n",
            "sensors.py": "from airflow_machine_images.emulator import E\n",
        },
    )
    assert [(v.imp.importer, v.imp.imported, v.importer_layer, v.imported_layer) for v in bad] == [
        ("emulator.core", "config", "emulator", "foundation"),
        ("sensors", "emulator", "operators and sensors", "emulator"),
    ]


def test_a_module_with_no_layer_is_reported(tmp_path: Path) -> None:
    _, bad, _ = _check(tmp_path, {"somewhere_new.py": ""})
    assert [v.imp.importer for v in bad] == ["somewhere_new"]


def test_a_stale_generated_section_is_told_apart(tmp_path: Path) -> None:
    modules, found = architecture.analyse(_write(tmp_path, {"config.py": '"""Settings."""\n'}))
    section = architecture.generate(modules, found)
    document = f"# Architecture\n\nProse.\n\n{section}\n\nMore prose.\n"
    assert architecture.generated_section(document) == section
    assert "| `config.py` | 0. foundation | Settings. | 1 |" in section
    assert architecture.generated_section(document.replace("| 1 |", "| 2 |")) != section
