"""``make compat``: prove the README's compatibility table, one cell (Airflow x Google provider x Python) at a time.

The cells are defined here and nowhere else. For each cell this script

1. creates ``.venv-compat/<cell>/`` with uv and the cell's Python (never downloaded: a local interpreter),
2. installs the BUILT WHEEL (not the work tree), with every package as of the cell's date (uv
   ``--exclude-newer``: what a resolver gave on that day, as Airflow's constraint files are made), one
   of two ways:

   - *as Airflow documents* (the oldest cell, the declared floor): the cell's own packages first
     (Airflow, the Google provider, the test tools; none of ours), then the wheel with plain
     ``pip install``, which must change no installed package: a Composer image or an install made with
     Airflow's constraints takes the package as it is;
   - *pinned*: the package's dependencies resolved together with the cell's pins into
     ``.venv-compat/<cell>/requirements.txt`` and the wheel installed under them; a cell may also take the
     lowest version of each direct dependency that fits (``--resolution lowest-direct``), so the floors
     in pyproject.toml are versions tested,

3. checks that the cell got exactly its Airflow, provider and Python, and imports the package from the
   venv's site-packages,
4. runs ``python -m airflow_machine_images.emulator --help``, the unit tests (a copy of ``tests/``,
   ``scripts/`` and ``docs/`` outside the work tree, so nothing is imported from it), ``scripts/demo.py``
   twice (the demo DAG by ``dag.test()`` against the emulator, then again with ``[operators]
   default_deferrable`` on, so the task defers and Airflow runs the trigger in line),
   ``scripts/check_example_dags.py`` (every example DAG imports; the deferrable-sensor example runs by
   ``dag.test()``) and, in a cell that asks for it, the real-Airflow case of its major
   (``tests/e2e/test_e2e_airflow2.py``: scheduler and triggerer on PostgreSQL; needs
   ``scripts/e2e_setup.sh`` once),
5. writes ``.venv-compat/<cell>/result.json`` (versions, test counts, times) and prints a table.

Before the cells it checks the wheel and sdist in ``dist/`` (``make dist`` builds them and runs twine):
``py.typed``, every module of the package (the emulator included), nothing from ``tests/``, the
version, and Python classifiers equal to the cells' Pythons.

Usage: ``python scripts/compat.py [--uv UV] [all | ci | CELL ...]`` (``ci``: the lowest cell only).
Standard library only: it runs before any venv exists.
"""

from __future__ import annotations

import argparse
import ast
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "airflow_machine_images"
COMPAT_DIR = REPO / ".venv-compat"
DIST_DIR = REPO / "dist"

#: Test tools installed in every cell (the dev group's floors; the lowest cell tests these floors too).
TEST_TOOLS = ("pytest>=8", "pytest-timeout>=2.3", "hypothesis>=6.100")

#: The real-Airflow case a cell may run (``Cell.e2e``), by Airflow major.
E2E_CASES = {"2": "tests/e2e/test_e2e_airflow2.py"}


@dataclass(frozen=True)
class Cell:
    """One combination ``make compat`` proves.

    :param name: directory name under ``.venv-compat/``.
    :param python: ``X.Y``; found on this machine, never downloaded.
    :param airflow: the apache-airflow version.
    :param google: the apache-airflow-providers-google version.
    :param as_of: every other package as uploaded before this day (UTC): the day after the newest of
        the pinned releases.
    :param lowest_direct: take the lowest version of each direct dependency that fits.
    :param documented: install as Airflow documents: the cell's packages first, then the wheel with plain
        ``pip install``, which must change none of them (else the package's requirements are resolved
        with the cell's pins).
    :param e2e: also run the real-Airflow case of this major (scheduler and triggerer on PostgreSQL);
        the cell then installs ``apache-airflow[postgres]``.
    :param ci: run by ``.ci/run`` (``scripts/compat.py ci``).
    """

    name: str
    python: str
    airflow: str
    google: str
    as_of: str
    lowest_direct: bool = False
    documented: bool = False
    e2e: bool = False
    ci: bool = False


CELLS: tuple[Cell, ...] = (
    # The floors: Airflow 2.11.0 with the Google provider 22.1.0 (2026-06-07) and Python 3.11, as Cloud
    # Composer's Airflow 2.11 images carry them, installed as Airflow documents; CI's cell.
    Cell("airflow2.11-py3.11", "3.11", "2.11.0", "22.1.0", as_of="2026-06-08", documented=True, e2e=True, ci=True),
    # Airflow 3.0.2 (the first 3.x whose task-SDK DAG has test()) with the floor provider, Python 3.10, and
    # every other direct dependency at its floor.
    Cell("airflow3.0-py3.10", "3.10", "3.0.2", "22.1.0", as_of="2026-06-08", lowest_direct=True),
    # The newest patch of each later minor, with the newest provider of its day (not older than the floor).
    Cell("airflow3.1-py3.11", "3.11", "3.1.8", "22.1.0", as_of="2026-06-08"),
    Cell("airflow3.2-py3.12", "3.12", "3.2.2", "22.1.0", as_of="2026-06-08"),
    # The newest Airflow and provider with the newest Python both support that this machine has.
    Cell("airflow3.3-py3.13", "3.13", "3.3.2", "22.8.0", as_of="2026-11-11"),
)


@dataclass
class Result:
    """What one cell measured (written to ``.venv-compat/<cell>/result.json``)."""

    cell: str
    ok: bool = False
    failed_step: str | None = None
    python: str = ""
    airflow: str = ""
    google: str = ""
    common_compat: str = ""
    api_client: str = ""
    #: What ``pip install`` of the wheel changed in a documented cell (empty: nothing).
    wheel_install_changed: list[str] = field(default_factory=list)
    unit: dict[str, int] = field(default_factory=dict)
    e2e: dict[str, int] = field(default_factory=dict)
    #: The steps that ran to the end, in order.
    steps_done: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


class StepFailed(RuntimeError):
    """A step of a cell failed; the message says which and where its log is."""


# --------------------------------------------------------------------------------------------------
# Finding a Python
# --------------------------------------------------------------------------------------------------


def find_python(version: str) -> Path:
    """A local interpreter of ``version`` (``X.Y``): on PATH, the system's, or pyenv's.

    pyenv's shims only run the globally selected versions, so each candidate is run once to check it.

    :param version: ``X.Y``.
    :raises StepFailed: if none is installed.
    """
    candidates: list[str] = []
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(on_path)
    candidates.append(f"/usr/bin/python{version}")
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python{version}"), reverse=True)
    for candidate in candidates:
        try:
            out = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except OSError:
            continue
        if out.returncode == 0 and out.stdout.strip() == version:
            return Path(candidate)
    raise StepFailed(
        f"no Python {version} on this machine (looked on PATH, in /usr/bin and in {pyenv_root}/versions); "
        f"install one (e.g. `pyenv install {version}`): uv is not allowed to download it here"
    )


# --------------------------------------------------------------------------------------------------
# The built distributions
# --------------------------------------------------------------------------------------------------


def package_version() -> str:
    """``__version__`` of the work tree, read without importing the package."""
    tree = ast.parse((REPO / PACKAGE / "version.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__version__" for t in node.targets):
            return str(ast.literal_eval(node.value))
    raise StepFailed(f"no __version__ in {PACKAGE}/version.py")


def built_wheel() -> Path:
    """The one wheel of this version in ``dist/``.

    :raises StepFailed: none or several.
    """
    wheels = sorted(DIST_DIR.glob(f"{PACKAGE}-{package_version()}-*.whl"))
    if len(wheels) != 1:
        raise StepFailed(f"expected one wheel of version {package_version()} in {DIST_DIR}, found {wheels}: make dist")
    return wheels[0]


def _version_key(version: str) -> tuple[int, ...]:
    """``3.0.2`` -> ``(3, 0, 2)``, trailing zeros dropped so ``16.0`` equals ``16.0.0``."""
    parts = [int(part) for part in version.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def check_dist(cells: tuple[Cell, ...] = CELLS) -> list[str]:
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


# --------------------------------------------------------------------------------------------------
# One cell
# --------------------------------------------------------------------------------------------------


class CellRun:
    """Builds and tests one cell; every command's output goes to ``.venv-compat/<cell>/logs/``.

    :param cell: the cell.
    :param uv: the uv command (e.g. ``uv`` or ``python3 -m uv``).
    :param wheel: the built wheel to install.
    """

    def __init__(self, cell: Cell, uv: list[str], wheel: Path) -> None:
        self.cell = cell
        self.uv = uv
        self.wheel = wheel
        self.venv = COMPAT_DIR / cell.name
        self.python = self.venv / "bin" / "python"
        self.logs = COMPAT_DIR / f"{cell.name}.logs"
        self.workdir = COMPAT_DIR / f"{cell.name}.run"
        self.result = Result(cell=cell.name)

    # -- plumbing -----------------------------------------------------------------------------------

    def _run(self, step: str, command: list[str], *, env: dict[str, str] | None = None) -> str:
        """Run ``command`` (cwd: the cell's work dir), log it, time it; return its output.

        :param step: the step's name (log file and timing key).
        :param command: the command.
        :param env: extra environment variables.
        :raises StepFailed: on a non-zero exit.
        """
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{step}.log"
        started = time.monotonic()
        out = subprocess.run(
            command,
            cwd=self.workdir,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        elapsed = time.monotonic() - started
        self.result.seconds[step] = round(self.result.seconds.get(step, 0.0) + elapsed, 1)
        log.write_text(f"$ {shlex.join(command)}\n{out.stdout}", encoding="utf-8")
        print(f"  {self.cell.name}: {step} {'ok' if out.returncode == 0 else 'FAILED'} ({elapsed:.0f} s)", flush=True)
        if out.returncode != 0:
            tail = "\n".join(out.stdout.splitlines()[-25:])
            raise StepFailed(f"{step} exited {out.returncode} (log: {log.relative_to(REPO)})\n{tail}")
        return out.stdout

    def _uv_env(self) -> dict[str, str]:
        return {"UV_PYTHON_DOWNLOADS": "never", "UV_COMPILE_BYTECODE": "1", "VIRTUAL_ENV": str(self.venv)}

    def _date_flags(self) -> list[str]:
        return ["--exclude-newer", f"{self.cell.as_of}T00:00:00Z"]

    def _pins(self) -> list[str]:
        """The cell's own packages: its Airflow (with PostgreSQL support for the e2e case), provider, test tools."""
        airflow = "apache-airflow[postgres]" if self.cell.e2e else "apache-airflow"
        return [f"{airflow}=={self.cell.airflow}", f"apache-airflow-providers-google=={self.cell.google}", *TEST_TOOLS]

    def _freeze(self, step: str) -> dict[str, str]:
        """The venv's installed distributions: name -> version (``uv pip freeze``)."""
        out = self._run(step, [*self.uv, "pip", "freeze", "--python", str(self.python)], env=self._uv_env())
        installed: dict[str, str] = {}
        for line in out.splitlines():
            name, separator, version = line.partition(" @ ") if " @ " in line else line.partition("==")
            if separator:
                installed[name.strip().lower().replace("_", "-")] = version.strip()
        return installed

    # -- steps --------------------------------------------------------------------------------------

    def create(self) -> None:
        """A fresh venv with the cell's packages and the wheel: as Airflow documents, or pinned."""
        interpreter = find_python(self.cell.python)
        for stale in (self.venv, self.workdir, self.logs):
            shutil.rmtree(stale, ignore_errors=True)
        self.workdir.mkdir(parents=True)
        seed = ["--seed"] if self.cell.documented else []  # pip, for the user's own `pip install`
        venv = [*self.uv, "venv", "--quiet", *seed, "--python", str(interpreter), str(self.venv)]
        self._run("venv", venv, env=self._uv_env())
        pins = self.venv / "cell.in"
        pins.write_text("\n".join(self._pins()) + "\n", encoding="utf-8")
        if self.cell.documented:
            self._install_as_documented(pins)
        else:
            self._install_pinned(pins)

    def _resolve(self, inputs: list[Path], resolution: list[str]) -> Path:
        """``uv pip compile`` of ``inputs`` as of the cell's date into the venv's ``requirements.txt``."""
        requirements = self.venv / "requirements.txt"
        python = ["--python", str(self.python)]
        compile_ = [*self.uv, "pip", "compile", "--quiet", *python, *self._date_flags(), *resolution]
        self._run("resolve", [*compile_, "--output-file", str(requirements), *map(str, inputs)], env=self._uv_env())
        return requirements

    def _install_pinned(self, pins: Path) -> None:
        """The package's requirements resolved with the cell's pins; the wheel installed under them."""
        resolution = ["--resolution", "lowest-direct"] if self.cell.lowest_direct else []
        requirements = self._resolve([REPO / "pyproject.toml", pins], resolution)
        install = [*self.uv, "pip", "install", "--quiet", "--python", str(self.python), *self._date_flags()]
        wheel_and_tools = [str(self.wheel), *TEST_TOOLS]
        self._run("install", [*install, "--constraint", str(requirements), *wheel_and_tools], env=self._uv_env())

    def _install_as_documented(self, pins: Path) -> None:
        """The cell's packages alone (as a constraint file or an image holds them), then ``pip install`` of
        the wheel, which must add the package and change nothing else.

        :raises StepFailed: the wheel's install changed, added or removed another package.
        """
        requirements = self._resolve([pins], [])
        install = [*self.uv, "pip", "install", "--quiet", "--python", str(self.python), *self._date_flags()]
        self._run("install", [*install, "--requirement", str(requirements)], env=self._uv_env())
        before = self._freeze("freeze-before")
        pip = [str(self.python), "-m", "pip", "install", "--no-input", "--disable-pip-version-check"]
        self._run("pip-install-wheel", [*pip, str(self.wheel)])
        after = self._freeze("freeze-after")
        ours = PACKAGE.replace("_", "-")
        changed = sorted(
            f"{name} {before.get(name, '(none)')} -> {after.get(name, '(none)')}"
            for name in before.keys() | after.keys()
            if name != ours and before.get(name) != after.get(name)
        )
        self.result.wheel_install_changed = changed
        if ours not in after or changed:
            raise StepFailed(f"pip install of the wheel changed the cell's packages: {changed or 'did not install it'}")

    def verify(self) -> None:
        """The cell got its versions, and the package comes from the wheel in the venv's site-packages."""
        probe = (
            "import importlib.metadata as md, json, sys, " + PACKAGE + " as p\n"
            "dist = md.distribution('airflow-machine-images')\n"
            "print(json.dumps({'python': '%d.%d.%d' % sys.version_info[:3], 'file': p.__file__,"
            " 'airflow': md.version('apache-airflow'), 'google': md.version('apache-airflow-providers-google'),"
            " 'common_compat': md.version('apache-airflow-providers-common-compat'),"
            " 'api_client': md.version('google-api-python-client'),"
            " 'version': p.__version__, 'direct_url': dist.read_text('direct_url.json')}))\n"
        )
        facts = json.loads(self._run("verify", [str(self.python), "-c", probe]).strip().splitlines()[-1])
        self.result.python, self.result.airflow, self.result.google = facts["python"], facts["airflow"], facts["google"]
        self.result.common_compat, self.result.api_client = facts["common_compat"], facts["api_client"]
        wrong = []
        if not facts["python"].startswith(self.cell.python + "."):
            wrong.append(f"Python {facts['python']} is not {self.cell.python}")
        if facts["airflow"] != self.cell.airflow:
            wrong.append(f"apache-airflow {facts['airflow']} is not {self.cell.airflow}")
        if facts["google"] != self.cell.google:
            wrong.append(f"apache-airflow-providers-google {facts['google']} is not {self.cell.google}")
        if not Path(facts["file"]).resolve().is_relative_to(self.venv.resolve()):
            wrong.append(f"{PACKAGE} imported from {facts['file']}, not from the cell's venv")
        direct_url = json.loads(facts["direct_url"] or "{}")
        if not str(direct_url.get("url", "")).endswith(".whl") or direct_url.get("dir_info", {}).get("editable"):
            wrong.append(f"{PACKAGE} was not installed from a wheel: {direct_url}")
        if facts["version"] != package_version():
            wrong.append(f"installed version {facts['version']} is not the work tree's {package_version()}")
        if wrong:
            raise StepFailed("verify: " + "; ".join(wrong))

    def emulator_help(self) -> None:
        """``python -m airflow_machine_images.emulator --help`` works from the installed wheel."""
        out = self._run("emulator-help", [str(self.python), "-m", f"{PACKAGE}.emulator", "--help"])
        if "--port" not in out:
            raise StepFailed("emulator --help does not describe --port")

    def unit_tests(self) -> None:
        """The unit tests, from a copy of ``tests/`` outside the work tree (with ``scripts/`` and ``docs/``,
        which the layer and schema tests read; the package itself is the installed wheel)."""
        for tree in ("tests", "scripts", "docs", "example_dags"):
            shutil.copytree(REPO / tree, self.workdir / tree, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy2(REPO / "pyproject.toml", self.workdir / "pyproject.toml")  # pytest's configuration
        report = self.logs / "unit.xml"
        try:
            self._run(
                "unit",
                [
                    str(self.python),
                    "-m",
                    "pytest",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    f"--junitxml={report}",
                    "tests/unit",
                ],
            )
        finally:
            if report.is_file():
                root = ET.parse(report).getroot()
                suite = root if root.tag == "testsuite" else root.find("testsuite")
                if suite is not None:
                    self.result.unit = _counts(suite)

    def demo(self) -> None:
        """``scripts/demo.py``: the example DAG by ``dag.test()`` against the emulator, then deferrable."""
        demo = str(REPO / "scripts" / "demo.py")
        out = self._run("demo", [str(self.python), demo])
        if "DAG run" not in out or ": success" not in out:
            raise StepFailed("demo: no successful DAG run reported")
        out = self._run(
            "demo-deferrable", [str(self.python), demo], env={"AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True"}
        )
        # The operator deferred (our log line), and the run still succeeded: only the trigger, which
        # dag.test() runs in line on 2.11 and 3.x, can have resumed it.
        if "Deferring until operation" not in out or "DAG run" not in out or ": success" not in out:
            raise StepFailed("demo-deferrable: the task did not defer, or the run did not succeed")

    def examples(self) -> None:
        """Every example DAG imports; the deferrable-sensor example runs by ``dag.test()``."""
        self._run("examples", [str(self.python), str(REPO / "scripts" / "check_example_dags.py")])

    def e2e(self) -> None:
        """The real-Airflow case of this cell's major (scheduler and triggerer on PostgreSQL), if it asks for one."""
        if not self.cell.e2e:
            return
        case = E2E_CASES[self.cell.airflow.split(".")[0]]
        report = self.logs / "e2e.xml"
        env = {"AMI_E2E_ARTIFACTS": str(self.logs / "e2e")}
        command = [str(self.python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "e2e"]
        command.append(f"--junitxml={report}")
        try:
            self._run("e2e", [*command, case], env=env)
        finally:
            if report.is_file():
                root = ET.parse(report).getroot()
                suite = root if root.tag == "testsuite" else root.find("testsuite")
                if suite is not None:
                    self.result.e2e = _counts(suite)
        if self.result.e2e.get("passed", 0) < 1:
            raise StepFailed(f"e2e: no case of {case} passed")

    def run(self) -> Result:
        """All steps; the first failure stops the cell."""
        started = time.monotonic()
        print(
            f"cell {self.cell.name}: Airflow {self.cell.airflow}, Google provider {self.cell.google}, "
            f"Python {self.cell.python}, packages as of {self.cell.as_of}"
            + (", lowest direct dependencies" if self.cell.lowest_direct else "")
            + (", installed as Airflow documents" if self.cell.documented else ""),
            flush=True,
        )
        steps = (
            ("create", self.create),
            ("verify", self.verify),
            ("emulator-help", self.emulator_help),
            ("unit", self.unit_tests),
            ("demo", self.demo),
            ("examples", self.examples),
            ("e2e", self.e2e),
        )
        done = 0
        try:
            for name, action in steps:
                action()
                done += 1
                self.result.steps_done.append(name)
            self.result.ok = True
        except StepFailed as error:
            self.result.failed_step = steps[done][0]
            print(f"  {self.cell.name}: FAILED: {error}", flush=True)
        self.result.seconds["total"] = round(time.monotonic() - started, 1)
        self.venv.mkdir(parents=True, exist_ok=True)
        (self.venv / "result.json").write_text(json.dumps(asdict(self.result), indent=2) + "\n", encoding="utf-8")
        return self.result


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def _counts(suite: ET.Element) -> dict[str, int]:
    """A JUnit ``testsuite``'s counts, with ``passed``."""
    counts = {k: int(suite.get(k, "0")) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return counts


def _passed(counts: dict[str, int], seconds: float) -> str:
    """``745 passed, 31 skipped (62 s)`` (failures too, when there were some)."""
    text = f"{counts.get('passed', 0)} passed"
    failed = counts.get("failures", 0) + counts.get("errors", 0)
    text += f", {failed} failed" if failed else ""
    text += f", {counts['skipped']} skipped" if counts.get("skipped") else ""
    return f"{text} ({seconds:.0f} s)"


def _step_text(result: Result, steps: tuple[str, ...], passed: str) -> str:
    """``passed`` when every one of ``steps`` ran and passed; else where it stopped."""
    if result.failed_step in steps:
        return f"FAILED at {result.failed_step}"
    if all(step in result.steps_done for step in steps):
        return passed
    return "not run"


def table(results: list[Result]) -> str:
    """The README's compatibility table rows for these results.

    :param results: one per cell run.
    """
    by_name = {cell.name: cell for cell in CELLS}
    lines = [
        "| Airflow | Google provider | common-compat | API client | Python | packages as of "
        "| unit tests | `dag.test()` runs | real Airflow | cell time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        cell = by_name[result.cell]
        how = " (lowest direct)" if cell.lowest_direct else " (as Airflow documents)" if cell.documented else ""
        unit = _passed(result.unit, result.seconds.get("unit", 0)) if result.unit else "not run"
        dag_seconds = sum(result.seconds.get(step, 0) for step in ("demo", "demo-deferrable", "examples"))
        demos = _step_text(result, ("demo", "examples"), f"3 passed ({dag_seconds:.0f} s)")
        e2e = _step_text(result, ("e2e",), _passed(result.e2e, result.seconds.get("e2e", 0))) if cell.e2e else "-"
        lines.append(
            f"| {result.airflow or cell.airflow} | {result.google or cell.google} | {result.common_compat or '?'} "
            f"| {result.api_client or '?'} | {result.python or cell.python} | {cell.as_of}{how} | {unit} | {demos} "
            f"| {e2e} | {result.seconds.get('total', 0):.0f} s |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Check ``dist/``, then run the chosen cells; exit 1 if anything failed.

    :param argv: command-line arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cells", nargs="*", default=["all"], help="all (default), ci, or cell names")
    parser.add_argument("--uv", default="uv", help="the uv command (default: uv)")
    args = parser.parse_args(argv)
    names = {cell.name: cell for cell in CELLS}
    chosen: list[Cell] = []
    for wanted in args.cells:
        if wanted == "all":
            chosen += CELLS
        elif wanted == "ci":
            chosen += [cell for cell in CELLS if cell.ci]
        elif wanted in names:
            chosen.append(names[wanted])
        else:
            parser.error(f"unknown cell {wanted!r}; cells: {', '.join(names)}")
    chosen = list(dict.fromkeys(chosen))

    problems = check_dist()
    if problems:
        print("dist/ check FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    wheel = built_wheel()
    print(f"dist/ check ok: {wheel.name} (py.typed, emulator, no tests; classifiers = tested Pythons)", flush=True)

    COMPAT_DIR.mkdir(exist_ok=True)
    results = [CellRun(cell, shlex.split(args.uv), wheel).run() for cell in chosen]
    print()
    print(table(results))
    failed = [r.cell for r in results if not r.ok]
    if failed:
        print(f"\ncompat: FAILED cells: {', '.join(failed)}")
        return 1
    total_unit = sum(r.unit.get("passed", 0) for r in results)
    total_e2e = sum(r.e2e.get("passed", 0) for r in results)
    print(f"\ncompat: {len(results)} cells passed ({total_unit} unit tests, {total_e2e} real-Airflow cases in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
