"""Parse-time import cost: what a DAG file pays to import our operators and sensors, against Google's.

Every run is a fresh interpreter (``python -c``) that imports ``airflow.sdk`` (the baseline any DAG
file pays) and then the candidate, timing both with ``time.perf_counter()``; the increment is
``time(baseline + X) - time(baseline)`` taken inside the process (free of start-up noise), and the
whole-process wall time is recorded too. Variants run interleaved, in a shuffled order per round.

Bytecode: the venv's site-packages were compiled by ``uv sync --compile-bytecode``; our package is
imported from a temporary copy compiled with ``compileall`` (PYTHONPATH first), so both sides load
``.pyc`` files even though ``PYTHONDONTWRITEBYTECODE=1`` is set. A third variant imports our package
from source without bytecode (an editable install under ``PYTHONDONTWRITEBYTECODE=1``). Each probe
reports which share of the modules it loaded came from bytecode.

The source variant imports a copy without ``__pycache__`` folders: the repository's own may hold
``.pyc`` files that an earlier run wrote (``make`` compiles bytecode), which would make it a bytecode
run in all but name.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.environment import REPO_ROOT, prepare_airflow
from benchmarks.output import emit_json
from benchmarks.stats import median

OURS = "import airflow_machine_images.operators, airflow_machine_images.sensors"
GOOGLE = "import airflow.providers.google.cloud.operators.compute"
HEAVY_PREFIXES = ("google", "googleapiclient", "requests", "aiohttp", "httplib2", "grpc")

PROBE = """
import importlib.util, json, os, sys, time
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
before = set(sys.modules)
{statement}
t2 = time.perf_counter()
added = [sys.modules[n] for n in set(sys.modules) - before if sys.modules.get(n) is not None]
with_source = [m for m in added if str(getattr(m, "__file__", "") or "").endswith(".py")]
cached = [m for m in with_source if getattr(m, "__cached__", None) and os.path.exists(m.__cached__)]
heavy = sorted({{m.__name__.split(".")[0] for m in with_source if m.__name__.split(".")[0] in {heavy!r}}})
ours = sys.modules.get("airflow_machine_images")
print(json.dumps({{
    "baseline": t1 - t0,
    "increment": t2 - t1,
    "modules_added": len(added),
    "source_modules_added": len(with_source),
    "bytecode_modules_added": len(cached),
    "heavy_libraries": heavy,
    "ours_from": getattr(ours, "__file__", None),
}}))
"""


def source_copy() -> Path:
    """Copy ``airflow_machine_images`` to a temporary folder, without any ``__pycache__`` (the tree is untouched)."""
    root = Path(tempfile.mkdtemp(prefix="ami-bench-import-"))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO_ROOT / "airflow_machine_images", root / "airflow_machine_images", ignore=ignore)
    return root


def compiled_copy() -> Path:
    """A :func:`source_copy` compiled with ``compileall``."""
    root = source_copy()
    if not compileall.compile_dir(str(root / "airflow_machine_images"), quiet=1, force=True):
        raise RuntimeError("compileall failed")
    return root


def variants(compiled: Path, source: Path) -> dict[str, tuple[str, dict[str, str]]]:
    """Name -> (statement, extra environment) of each variant.

    :param compiled: the compiled copy of our package.
    :param source: the copy without bytecode.
    """
    with_copy = {"PYTHONPATH": str(compiled)}
    return {
        "baseline": ("pass", with_copy),
        "ours": (OURS, with_copy),
        "google": (GOOGLE, with_copy),
        "ours_no_bytecode": (OURS, {"PYTHONPATH": str(source)}),
    }


def probe(statement: str, extra_env: dict[str, str]) -> dict[str, Any]:
    """Run one fresh interpreter; return its timings and the whole-process wall time.

    :param statement: what to import after ``airflow.sdk``.
    :param extra_env: environment additions.
    """
    code = PROBE.format(statement=statement, heavy=set(HEAVY_PREFIXES))
    env = {**os.environ, **extra_env, "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, cwd=tempfile.gettempdir()
    )
    wall = time.perf_counter() - started
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_wall"] = wall
    return result


def run(runs: int = 7, seed: int = 5) -> dict[str, Any]:
    """Measure every variant ``runs`` times, interleaved.

    :param runs: fresh interpreters per variant.
    :param seed: seed of the per-round shuffle.
    :return: JSON-ready results.
    """
    prepare_airflow()
    started = time.monotonic()
    compiled, source = compiled_copy(), source_copy()
    try:
        plan = variants(compiled, source)
        order = list(plan)
        rng = random.Random(seed)
        probe(*plan["google"])  # warm the page cache once; not recorded
        raw: dict[str, list[dict[str, Any]]] = {name: [] for name in plan}
        for _ in range(runs):
            rng.shuffle(order)
            for name in order:
                raw[name].append(probe(*plan[name]))
    finally:
        shutil.rmtree(compiled, ignore_errors=True)
        shutil.rmtree(source, ignore_errors=True)
    return {"runs": runs, "variants": summarise(raw), "raw": raw, "elapsed": time.monotonic() - started}


def summarise(raw: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Medians per variant, and process-level increments over the baseline's median wall time.

    :param raw: probe results per variant.
    """
    base_wall = median([r["process_wall"] for r in raw["baseline"]])
    out = {}
    for name, results in raw.items():
        wall = median([r["process_wall"] for r in results])
        out[name] = {
            "increment_median": median([r["increment"] for r in results]),
            "baseline_import_median": median([r["baseline"] for r in results]),
            "process_wall_median": wall,
            "process_increment": wall - base_wall,
            "modules_added": results[0]["modules_added"],
            "bytecode_share": _share(results[0]),
            "heavy_libraries": results[0]["heavy_libraries"],
            "ours_from": results[0]["ours_from"],
        }
    return out


def _share(result: dict[str, Any]) -> float:
    total = result["source_modules_added"]
    return 1.0 if total == 0 else result["bytecode_modules_added"] / total


def main(argv: list[str] | None = None) -> int:
    """Command line: print the results as JSON (or write them with ``--out``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per variant (default 7)")
    parser.add_argument("--out", help="write JSON here instead of stdout")
    args = parser.parse_args(argv)
    emit_json(run(args.runs), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
