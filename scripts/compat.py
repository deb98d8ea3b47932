"""``make compat``: prove docs/compatibility.md's table, one cell (Airflow x Google provider x Python) at a time.

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
   ``dag.test()``), the integration tests of the waits (:data:`INTEGRATION`) and, in a cell that asks
   for it, the real-Airflow case of its major (``tests/e2e/test_e2e_airflow2.py``: scheduler and
   triggerer on PostgreSQL; needs ``scripts/e2e_setup.sh`` once),
5. writes ``.venv-compat/<cell>/result.json`` (versions, test counts, times) and prints a table.

Before the cells it checks the wheel and sdist in ``dist/`` (``make dist`` builds them and runs twine):
``py.typed``, every module of the package (the emulator included), nothing from ``tests/``, the
version, and Python classifiers equal to the cells' Pythons.

Usage: ``python scripts/compat.py [--uv UV] [all | ci | CELL ...]`` (``ci``: the lowest cell only).
Standard library only: it runs before any venv exists.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

from compat_dist import PACKAGE, REPO, built_wheel, check_dist, package_version

COMPAT_DIR = REPO / ".venv-compat"

#: Test tools installed in every cell (the dev group's floors; the lowest cell tests these floors too).
TEST_TOOLS = ("pytest>=8", "pytest-timeout>=2.3", "hypothesis>=6.100")

#: The integration tests every cell runs besides the unit tests: the waits (the deferrable operator; the
#: sensors poking, rescheduling and deferring, by ``dag.test()``) and the sensors' failure policy.
#: The integration tests a cell runs: the waits by ``dag.test()``, the sensors' failure policy, and the
#: README's testing recipe (the pytest plugin from the installed wheel, in a fresh pytest process).
INTEGRATION = (
    "tests/integration/test_waiting_dags.py",
    "tests/integration/test_sensor_policy.py",
    "tests/integration/test_readme_recipe.py",
)
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
    :param held: packages taken as of an earlier day than ``as_of`` ((name, day) pairs): an older Airflow's own
        web stack, as its constraint file pins it (newer releases break it inside Airflow).
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
    held: tuple[tuple[str, str], ...] = ()


CELLS: tuple[Cell, ...] = (
    # The floors: Airflow 2.11.0 with the Google provider 22.1.0 (2026-06-07) and Python 3.11, as Cloud
    # Composer's Airflow 2.11 images carry them, installed as Airflow documents; CI's cell.
    Cell("airflow2.11-py3.11", "3.11", "2.11.0", "22.1.0", as_of="2026-06-08", documented=True, e2e=True, ci=True),
    # Airflow 3.0.2 (the first 3.x whose task-SDK DAG has test()) with the floor provider, Python 3.10, and
    # every other direct dependency at its floor. Its execution API (cadwyn, FastAPI, Starlette, pydantic)
    # as of its own release, as constraints-3.0.2 pins it: later releases break dag.test() inside Airflow.
    Cell(
        "airflow3.0-py3.10",
        "3.10",
        "3.0.2",
        "22.1.0",
        as_of="2026-06-08",
        lowest_direct=True,
        held=tuple((name, "2025-06-19") for name in ("cadwyn", "fastapi", "starlette", "pydantic", "pydantic-core")),
    ),
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
    integration: dict[str, int] = field(default_factory=dict)
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
        flags = ["--exclude-newer", f"{self.cell.as_of}T00:00:00Z"]
        for package, day in self.cell.held:
            flags += ["--exclude-newer-package", f"{package}={day}T00:00:00Z"]
        return flags

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
        """The unit tests, from a copy of ``tests/`` outside the work tree (with ``scripts/``, ``docs/``, the README
        and the CHANGELOG, which the layer, schema, docs and figures tests read; the package itself is the
        installed wheel)."""
        for tree in ("tests", "scripts", "docs", "example_dags"):
            shutil.copytree(REPO / tree, self.workdir / tree, ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("pyproject.toml", "README.md", "CHANGELOG.md"):  # pyproject.toml: pytest's configuration
            shutil.copy2(REPO / name, self.workdir / name)
        self.result.unit = self._pytest("unit", ["tests/unit"])

    def _pytest(self, step: str, paths: list[str], env: dict[str, str] | None = None) -> dict[str, int]:
        """Run pytest on ``paths`` in the cell's venv; return its counts (also when it failed).

        :raises StepFailed: pytest failed.
        """
        report = self.logs / f"{step}.xml"
        command = [str(self.python), "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *paths]
        counts: dict[str, int] = {}
        try:
            self._run(step, command, env=env)
        finally:
            if report.is_file():
                root = ET.parse(report).getroot()
                suite = root if root.tag == "testsuite" else root.find("testsuite")
                counts = _counts(suite) if suite is not None else {}
                setattr(self.result, step, counts)
        return counts

    def integration(self) -> None:
        """The waits by ``dag.test()`` and the sensors' failure policy, against the emulator."""
        self.result.integration = self._pytest("integration", list(INTEGRATION))

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
        env = {"AMI_E2E_ARTIFACTS": str(self.logs / "e2e")}
        self.result.e2e = self._pytest("e2e", ["-m", "e2e", case], env=env)
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
            ("integration", self.integration),
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
    """The compatibility table rows (docs/compatibility.md) for these results.

    :param results: one per cell run.
    """
    by_name = {cell.name: cell for cell in CELLS}
    lines = [
        "| Airflow | Google provider | common-compat | API client | Python | packages as of "
        "| unit tests | `dag.test()` runs | waits (integration) | real Airflow | cell time |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        cell = by_name[result.cell]
        how = " (lowest direct)" if cell.lowest_direct else " (as Airflow documents)" if cell.documented else ""
        unit = _passed(result.unit, result.seconds.get("unit", 0)) if result.unit else "not run"
        dag_seconds = sum(result.seconds.get(step, 0) for step in ("demo", "demo-deferrable", "examples"))
        demos = _step_text(result, ("demo", "examples"), f"3 passed ({dag_seconds:.0f} s)")
        waits = _step_text(result, ("integration",), _passed(result.integration, result.seconds.get("integration", 0)))
        e2e = _step_text(result, ("e2e",), _passed(result.e2e, result.seconds.get("e2e", 0))) if cell.e2e else "-"
        lines.append(
            f"| {result.airflow or cell.airflow} | {result.google or cell.google} | {result.common_compat or '?'} "
            f"| {result.api_client or '?'} | {result.python or cell.python} | {cell.as_of}{how} | {unit} | {demos} "
            f"| {waits} | {e2e} | {result.seconds.get('total', 0):.0f} s |"
        )
    return "\n".join(lines)


#: The page whose table ``make compat`` rewrites, and the markers around the table.
COMPAT_DOC = REPO / "docs" / "compatibility.md"
TABLE_BEGIN = "<!-- BEGIN compatibility table (make compat: scripts/compat.py) -->"
TABLE_END = "<!-- END compatibility table -->"


def write_doc_table(results: list[Result]) -> None:
    """Replace the table between the markers of docs/compatibility.md with these results' table.

    :param results: one per cell, in the order of :data:`CELLS`.
    """
    page = COMPAT_DOC.read_text(encoding="utf-8")
    head, rest = page.split(TABLE_BEGIN, 1)
    COMPAT_DOC.write_text(
        f"{head}{TABLE_BEGIN}\n{table(results)}\n{TABLE_END}{rest.split(TABLE_END, 1)[1]}", encoding="utf-8"
    )


def kept_results() -> list[Result]:
    """The results every cell's last run kept (``.venv-compat/<cell>/result.json``), in the order of :data:`CELLS`."""
    kept = []
    for cell in CELLS:
        path = COMPAT_DIR / cell.name / "result.json"
        if path.exists():
            kept.append(Result(**json.loads(path.read_text(encoding="utf-8"))))
    return kept


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

    problems = check_dist(CELLS)
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
    if set(chosen) == set(CELLS):  # a whole matrix that passed: its table is the documented one
        write_doc_table(results)
    total_unit = sum(r.unit.get("passed", 0) for r in results)
    total_e2e = sum(r.e2e.get("passed", 0) for r in results)
    print(f"\ncompat: {len(results)} cells passed ({total_unit} unit tests, {total_e2e} real-Airflow cases in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
