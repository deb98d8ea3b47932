"""The built distributions in ``dist/`` that ``make compat`` installs and checks (``scripts/compat.py``).

Standard library only: it runs before any venv exists.
"""

from __future__ import annotations

import ast
import re
import tarfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "airflow_machine_images"
DIST_DIR = REPO / "dist"


class DistError(RuntimeError):
    """``dist/`` does not hold what ``make dist`` makes."""


class CellLike(Protocol):
    """What the checks read of a compatibility cell."""

    python: str
    airflow: str
    google: str


def package_version() -> str:
    """``__version__`` of the work tree, read without importing the package."""
    tree = ast.parse((REPO / PACKAGE / "version.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__version__" for t in node.targets):
            return str(ast.literal_eval(node.value))
    raise DistError(f"no __version__ in {PACKAGE}/version.py")


def built_wheel() -> Path:
    """The one wheel of this version in ``dist/``.

    :raises DistError: none or several.
    """
    wheels = sorted(DIST_DIR.glob(f"{PACKAGE}-{package_version()}-*.whl"))
    if len(wheels) != 1:
        raise DistError(f"expected one wheel of version {package_version()} in {DIST_DIR}, found {wheels}: make dist")
    return wheels[0]


def _version_key(version: str) -> tuple[int, ...]:
    """``3.0.2`` -> ``(3, 0, 2)``, trailing zeros dropped so ``16.0`` equals ``16.0.0``."""
    parts = [int(part) for part in version.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def check_dist(cells: Sequence[CellLike]) -> list[str]:
    """Check the wheel and the sdist in ``dist/``; return what is wrong (empty: all good).

    :param cells: the cells whose Pythons the classifiers must list.
    """
    problems: list[str] = []
    version = package_version()
    wheel = built_wheel()
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"{PACKAGE}-{version}.dist-info/METADATA").decode()
    sources = {
        path.relative_to(REPO).as_posix()
        for path in (REPO / PACKAGE).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    missing = sorted(sources - names)
    if missing:
        problems.append(f"wheel lacks {missing}")
    for required in (f"{PACKAGE}/py.typed", f"{PACKAGE}/emulator/__main__.py", f"{PACKAGE}/compat.py"):
        if required not in names:
            problems.append(f"wheel lacks {required}")
    stray = sorted(n for n in names if not n.startswith((f"{PACKAGE}/", f"{PACKAGE}-{version}.dist-info/")))
    if stray:
        problems.append(f"wheel holds files outside the package: {stray}")
    if any(n.startswith("tests/") or "/tests/" in n for n in names):
        problems.append("wheel holds test files")
    if not re.search(rf"^Version: {re.escape(version)}$", metadata, re.M):
        problems.append(f"wheel METADATA version is not {version}")
    classified = sorted(re.findall(r"^Classifier: Programming Language :: Python :: (3\.\d+)$", metadata, re.M))
    tested = sorted({cell.python for cell in cells}, key=_version_key)
    if sorted(classified, key=_version_key) != tested:
        problems.append(f"Python classifiers {classified} are not the tested Pythons {tested}")
    lowest = tested[0]
    if not re.search(rf"^Requires-Python: >={re.escape(lowest)}$", metadata, re.M):
        problems.append(f"Requires-Python is not >={lowest}, the lowest tested Python")
    floor_cell = min(cells, key=lambda cell: _version_key(cell.airflow))
    for dist_name, tested_floor in (
        ("apache-airflow", floor_cell.airflow),
        ("apache-airflow-providers-google", floor_cell.google),
    ):
        declared = re.search(rf"^Requires-Dist: {re.escape(dist_name)}>=([\d.]+)$", metadata, re.M)
        if declared is None or _version_key(declared.group(1)) != _version_key(tested_floor):
            problems.append(f"{dist_name}'s declared floor is not {tested_floor}, the lowest cell's")
    sdists = sorted(DIST_DIR.glob(f"{PACKAGE.replace('_', '-')}-{version}.tar.gz")) or sorted(
        DIST_DIR.glob(f"{PACKAGE}-{version}.tar.gz")
    )
    if len(sdists) != 1:
        problems.append(f"expected one sdist of {version} in {DIST_DIR}, found {sdists}")
    else:
        with tarfile.open(sdists[0]) as archive:
            members = {m.name.split("/", 1)[1] for m in archive.getmembers() if "/" in m.name}
        for required in ("pyproject.toml", "README.md", "CHANGELOG.md", f"{PACKAGE}/py.typed", f"{PACKAGE}/compat.py"):
            if required not in members:
                problems.append(f"sdist lacks {required}")
    return problems
