"""Run every benchmark and regenerate ``docs/benchmarks.md`` (``make bench``).

Each benchmark runs in its own fresh process (``python -m benchmarks.bench_*``), one after another
so they do not disturb each other's timings; their JSON results are collected into
``.artifacts/benchmarks/results.json`` and rendered by :mod:`benchmarks.report`. ``--preset tiny``
runs everything at toy sizes (the smoke test uses it; its figures mean nothing).

``--preset stack`` runs the real-stack fleet backups instead (:mod:`benchmarks.bench_stack`: the fleet
backup operator and mapped inserts at 200, 1,000 and 5,000 instances, a fresh Airflow stack each; about
an hour and a half on 2 cores). Their results are merged into ``docs/benchmarks_stack.json`` (committed,
so a run of some sizes keeps the others') and only the stack section of ``docs/benchmarks.md`` is
rewritten (:mod:`benchmarks.report_stack`); the other presets rewrite the rest and keep that section.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as ``python benchmarks/run_all.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.environment import ARTIFACTS, REPO_ROOT, write_json
from benchmarks.machine import describe
from benchmarks.report import render
from benchmarks.report_stack import existing_section, load, render_choice, render_stack, splice, splice_choice

#: The kept results of the real-stack runs (committed; see the module docstring).
STACK_RESULTS = REPO_ROOT / "docs" / "benchmarks_stack.json"
#: The page whose pattern table the stack results also rewrite ("Mapped inserts or the fleet operator?").
FLEET_BACKUPS_DOC = REPO_ROOT / "docs" / "fleet-backups.md"
#: Seconds a real-stack run may take before it is called a timeout (the mapped 1,000: about 25 minutes).
_STACK_TIMEOUT = ["--timeout", "5400"]

#: step name -> (module, arguments) per preset.
PRESETS: dict[str, dict[str, tuple[str, list[str]]]] = {
    "full": {
        "import": ("benchmarks.bench_import", ["--runs", "7"]),
        "calls": ("benchmarks.bench_calls", ["--scale", "20", "--samples", "7", "--few", "3", "--group", "20"]),
        "scale_1000": ("benchmarks.bench_scale", ["--count", "1000", "--dmin", "30", "--dmax", "90"]),
        "scale_5000": ("benchmarks.bench_scale", ["--count", "5000", "--dmin", "60", "--dmax", "150"]),
        "scale_1000_two_triggerers": (
            "benchmarks.bench_triggerers",
            ["--count", "1000", "--dmin", "30", "--dmax", "90", "--triggerers", "2"],
        ),
        "e2e": ("benchmarks.bench_e2e", ["--instances", "50", "--operation-seconds", "0.5"]),
        "profile": ("benchmarks.bench_profile", ["--scale-count", "2000", "--worker-images", "100"]),
    },
    "tiny": {
        "import": ("benchmarks.bench_import", ["--runs", "1"]),
        "calls": (
            "benchmarks.bench_calls",
            ["--scale", "50", "--durations", "10", "--samples", "2", "--few", "2", "--group", "14"],
        ),
        "scale_1000": (
            "benchmarks.bench_scale",
            ["--count", "10", "--dmin", "1", "--dmax", "2", "--poll-interval", "0.5"],
        ),
        "scale_5000": (
            "benchmarks.bench_scale",
            ["--count", "20", "--dmin", "1", "--dmax", "2", "--poll-interval", "0.5"],
        ),
        "scale_1000_two_triggerers": (
            "benchmarks.bench_triggerers",
            ["--count", "10", "--dmin", "1", "--dmax", "2", "--poll-interval", "0.5", "--triggerers", "2"],
        ),
        "e2e": ("benchmarks.bench_e2e", ["--instances", "2", "--operation-seconds", "0.2"]),
        "profile": ("benchmarks.bench_profile", ["--scale-count", "20", "--worker-images", "3"]),
    },
    "stack": {
        f"{pattern}_{size}": (
            "benchmarks.bench_stack",
            ["--pattern", pattern, "--instances", str(size), *_STACK_TIMEOUT],
        )
        for size in (200, 1000, 5000)
        for pattern in ("fleet", "mapped")
    },
}


def run_step(name: str, module: str, arguments: list[str], work: Path) -> tuple[dict[str, Any], float]:
    """Run one benchmark in a fresh process; return its JSON results and wall time.

    :param name: the step's name.
    :param module: the benchmark module.
    :param arguments: its command-line arguments.
    :param work: where its output and log go.
    """
    out, log = work / f"{name}.json", work / f"{name}.log"
    extra = ["--out-dir", str(work / "profiles")] if module == "benchmarks.bench_profile" else []
    command = [sys.executable, "-m", module, *arguments, *extra, "--out", str(out)]
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as handle:
        completed = subprocess.run(command, cwd=REPO_ROOT, stdout=handle, stderr=subprocess.STDOUT, env=os.environ)
    seconds = time.monotonic() - started
    if completed.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"benchmark {name} failed (exit {completed.returncode}); log {log}:\n{tail}")
    return json.loads(out.read_text(encoding="utf-8")), seconds


def run(preset: str, doc: Path, work: Path, jobs: int = 1, only: list[str] | None = None) -> dict[str, Any]:
    """Run the preset's steps, write the results JSON and the Markdown document.

    :param preset: ``full`` or ``tiny``.
    :param doc: the Markdown file to write.
    :param work: where results, logs and profiles go.
    :param jobs: steps run at once (1 for real measurements).
    :param only: run only these steps.
    :return: the collected results.
    """
    work.mkdir(parents=True, exist_ok=True)
    steps = {name: spec for name, spec in PRESETS[preset].items() if not only or name in only}
    started = time.monotonic()
    began = datetime.now(timezone.utc)
    load_before = os.getloadavg()
    results: dict[str, Any] = {"preset": preset, "steps": {}, "step_seconds": {}}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {name: pool.submit(run_step, name, module, args, work) for name, (module, args) in steps.items()}
        for name, future in futures.items():
            step_results, seconds = future.result()
            results["steps"][name] = step_results
            results["step_seconds"][name] = seconds
            results.setdefault("step_load", {})[name] = os.getloadavg()[0]
            print(f"[bench] {name}: {seconds:.0f} s", flush=True)
    results["total_seconds"] = time.monotonic() - started
    results["meta"] = {
        **describe(),
        "started": began.isoformat(timespec="seconds"),
        "load_average": {"before": load_before, "after": os.getloadavg()},
    }
    if preset == "stack":
        kept = load(STACK_RESULTS)
        kept["steps"].update(results["steps"])
        write_json(STACK_RESULTS, kept)
        write_json(work / "stack-results.json", results)
        previous = doc.read_text(encoding="utf-8") if doc.exists() else ""
        doc.write_text(splice(previous, render_stack(kept)), encoding="utf-8")
        choice = FLEET_BACKUPS_DOC.read_text(encoding="utf-8")
        FLEET_BACKUPS_DOC.write_text(splice_choice(choice, render_choice(kept)), encoding="utf-8")
        return results
    write_json(work / "results.json", results)
    doc.parent.mkdir(parents=True, exist_ok=True)
    kept_section = existing_section(doc.read_text(encoding="utf-8")) if doc.exists() else None
    rendered = render(results)
    doc.write_text(splice(rendered, kept_section) if kept_section else rendered, encoding="utf-8")
    return results


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="full")
    parser.add_argument("--doc", type=Path, default=REPO_ROOT / "docs" / "benchmarks.md", help="Markdown output")
    parser.add_argument("--work", type=Path, default=ARTIFACTS, help="results, logs and profiles")
    parser.add_argument("--jobs", type=int, default=1, help="steps at once (keep 1 for real figures)")
    parser.add_argument(
        "--only", nargs="+", choices=sorted({*PRESETS["full"], *PRESETS["stack"]}), help="run only these steps"
    )
    args = parser.parse_args(argv)
    results = run(args.preset, args.doc, args.work, args.jobs, args.only)
    print(f"[bench] wrote {args.doc} in {results['total_seconds'] / 60:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
