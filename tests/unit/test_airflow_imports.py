"""Airflow names come from the compat layer only, and every name taken from common-compat exists here.

The compat layer is ``airflow.providers.common.compat`` (common-compat maps each moved name for Airflow
2.11 and every 3.x) and our own ``airflow_machine_images/compat.py`` (what common-compat does not map).
Any other ``airflow.*`` import (bar the Google provider's, whose paths are the same on both majors)
would work on one major only. ``scripts/architecture.py`` (``make architecture``) finds them by
reading the source; these tests run it on the installed package, so a compatibility cell checks the
wheel it installed, and they check that every name we take from common-compat resolves on this
Airflow with this common-compat (each cell's: the floor included).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import airflow_machine_images

if TYPE_CHECKING:
    from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
PACKAGE_DIR = Path(airflow_machine_images.__file__).parent


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("architecture_script", REPO / "scripts" / "architecture.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


architecture = _load_script()


def _common_compat_names() -> list[tuple[str, str]]:
    """Every (common-compat module, name) the package imports."""
    modules = architecture.discover(PACKAGE_DIR)
    return sorted(
        {
            (imp.imported, name)
            for module in modules.values()
            for imp in architecture.airflow_imports(module)
            if imp.imported.startswith("airflow.providers.common.compat")
            for name in imp.names
        }
    )


def test_no_airflow_import_outside_the_compat_layer() -> None:
    outside = architecture.airflow_import_violations(architecture.discover(PACKAGE_DIR))
    assert not outside, "Airflow imports outside the compat layer (use common-compat or compat.py):\n" + "\n".join(
        map(str, outside)
    )


def test_the_package_takes_its_airflow_names_from_common_compat() -> None:
    names = {name for _, name in _common_compat_names()}
    assert {"BaseOperator", "BaseSensorOperator", "BaseOperatorLink", "Asset", "AirflowFailException"} <= names


@pytest.mark.parametrize(("module", "name"), _common_compat_names())
def test_each_common_compat_name_resolves_on_this_airflow(module: str, name: str) -> None:
    assert getattr(importlib.import_module(module), name) is not None


def test_the_checker_finds_every_kind_of_airflow_import(tmp_path: Path) -> None:
    package = tmp_path / architecture.PACKAGE
    package.mkdir()
    files = {
        "__init__.py": '"""Root."""\n',
        "compat.py": '"""Compat: may import anything."""\nfrom airflow.models.dagbag import DagBag\n',
        "good.py": textwrap.dedent(
            '''\
            """Imports through the compat layer."""
            from airflow.providers.common.compat.sdk import BaseOperator
            from airflow.providers.google.common.hooks.base_google import GoogleBaseHook
            import airflow_machine_images.compat
            '''
        ),
        "bad.py": textwrap.dedent(
            '''\
            """Imports that work on one Airflow major only."""
            from typing import TYPE_CHECKING
            import airflow.sdk
            from airflow.sdk import BaseOperator
            if TYPE_CHECKING:
                from airflow.triggers.base import BaseTrigger
            def version():
                from airflow import __version__
                return __version__
            '''
        ),
    }
    for name, text in files.items():
        (package / name).write_text(text, encoding="utf-8")
    found = [str(imp) for imp in architecture.airflow_import_violations(architecture.discover(package))]
    assert found == [
        f"{architecture.PACKAGE}/bad.py:3: imports airflow.sdk",
        f"{architecture.PACKAGE}/bad.py:4: imports BaseOperator from airflow.sdk",
        f"{architecture.PACKAGE}/bad.py:6: imports BaseTrigger from airflow.triggers.base",
        f"{architecture.PACKAGE}/bad.py:8: imports __version__ from airflow",
    ]


def test_the_test_dags_import_airflow_names_through_the_compat_layer() -> None:
    """The integration DAG folder is loaded whole on Airflow 2.11 too (the compat cell): one file importing
    ``airflow.sdk`` there fails every test that loads the folder."""
    dags = Path(__file__).resolve().parents[1] / "integration" / "dags"
    direct = [
        f"{path.name}:{number}"
        for path in sorted(dags.glob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.match(r"\s*(from airflow\.sdk\b|import airflow\.sdk\b)", line)
    ]
    assert direct == [], f"import these through airflow.providers.common.compat.sdk: {direct}"
