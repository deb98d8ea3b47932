"""Profile the hot paths with py-spy: the triggerer at scale, and the worker path.

py-spy (a sampling profiler, installed in the project's venv as a dependency of a dependency; no
install needed) launches each target and samples it 100 times a second, keeping only the thread
that holds the GIL (``--gil``), so the profile shows where CPU goes, not waiting. The collapsed
stacks are aggregated here into the functions with the most self time and the share of CPU per
library; stacks under an ``import`` (one-time start-up) are counted apart.

* ``scale``: ``benchmarks.bench_scale`` with ``--count`` waits (shorter operations than the scale run).
* ``worker``: :func:`worker_driver`, ``images`` inserts one after another, each ``insert`` +
  ``wait_for_operation`` + ``get`` through a new sync hook (as each task does), 0.1 s operations.

Reproduce by hand: ``.venv/bin/py-spy record -r 100 -f raw -o scale.txt -- .venv/bin/python -m
benchmarks.bench_scale --count 2000 --dmin 15 --dmax 30`` (and ``speedscope`` format for a viewer).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.environment import REPO_ROOT
from benchmarks.output import emit_json

#: Frames that mark a stack as module loading (start-up), not steady-state work.
IMPORT_FRAMES = frozenset({"_find_and_load", "_load_unlocked", "_call_with_frames_removed"})
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
AREAS = (
    ("ours", ("airflow_machine_images/",)),
    ("benchmark harness", ("benchmarks/",)),
    ("aiohttp / yarl / multidict", ("aiohttp/", "yarl/", "multidict/")),
    ("requests / urllib3 / http.client", ("requests/", "urllib3/", "http/client", "http/cookiejar")),
    ("google-auth", ("google/auth/",)),
    ("json", ("json/",)),
    ("asyncio / selectors / ssl", ("asyncio/", "selectors", "ssl.py", "socket.py")),
    ("logging / structlog", ("logging/", "structlog/")),
    ("airflow", ("airflow/",)),
)


def py_spy() -> str | None:
    """The py-spy executable next to this Python, or on PATH; None if absent."""
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def short_path(path: str) -> str:
    """A path relative to site-packages, the repository or the standard library.

    :param path: a file path from a stack frame.
    """
    for marker in ("site-packages/", f"{REPO_ROOT}/", "/lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def parse_frame(frame: str) -> tuple[str, str]:
    """(function, short file) of a py-spy frame ``function (file:line)``.

    :param frame: the frame text.
    """
    match = FRAME.match(frame.strip())
    if match is None:
        return frame.strip(), ""
    return match.group("function"), short_path(match.group("file"))


def area_of(file: str) -> str:
    """Which library a file belongs to (see :data:`AREAS`).

    :param file: a short file path.
    """
    for name, markers in AREAS:
        if any(marker in file for marker in markers):
            return name
    return "other (stdlib, interpreter)"


def aggregate(raw: str, top: int = 12) -> dict[str, Any]:
    """Self time per function, CPU share per library, and how much CPU runs under our package.

    :param raw: py-spy's ``raw`` (collapsed stacks) output.
    :param top: how many functions to keep.
    """
    self_time: Counter[tuple[str, str]] = Counter()
    areas: Counter[str] = Counter()
    under_ours = 0
    total = 0
    imports = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [parse_frame(f) for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        if any(function in IMPORT_FRAMES for function, _ in frames):
            imports += count
            continue
        total += count
        leaf = frames[-1]
        self_time[leaf] += count
        areas[area_of(leaf[1])] += count
        if any("airflow_machine_images/" in file for _, file in frames):
            under_ours += count
    return {
        "samples": total,
        "import_samples": imports,
        "top_self": [
            {"function": function, "file": file, "share": n / total if total else 0.0}
            for (function, file), n in self_time.most_common(top)
        ],
        "areas": {name: n / total if total else 0.0 for name, n in areas.most_common()},
        "under_ours_share": under_ours / total if total else 0.0,
    }


def record(target: list[str], out: Path, *, rate: int = 100) -> dict[str, Any]:
    """Run ``target`` under ``py-spy record`` (raw format) and aggregate the profile.

    :param target: the command to profile.
    :param out: where py-spy writes the collapsed stacks.
    :param rate: samples per second.
    """
    spy = py_spy()
    if spy is None:
        return {"available": False}
    started = time.monotonic()
    completed = subprocess.run(
        [spy, "record", "--gil", "-r", str(rate), "-f", "raw", "-o", str(out), "--", *target],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    if completed.returncode != 0 or not out.exists():
        return {"available": False, "error": (completed.stderr or completed.stdout)[-2000:]}
    result = aggregate(out.read_text(encoding="utf-8"))
    result.update(
        {"available": True, "rate": rate, "seconds": time.monotonic() - started, "command": " ".join(target[1:])}
    )
    return result


def worker_driver(images: int, operation_seconds: float = 0.1) -> None:
    """The profiled worker path: ``images`` times insert + wait_for_operation + get, each with a new hook.

    :param images: how many images, one after another.
    :param operation_seconds: insert duration in the emulator.
    """
    from benchmarks.emulator_process import EmulatorProcess
    from benchmarks.environment import prepare_airflow, use_emulator

    prepare_airflow()
    project = "bench-profile"
    with EmulatorProcess(operation_seconds=operation_seconds, project=project) as emulator:
        use_emulator(emulator.url, project)
        emulator.add_instance("us-central1-a/src", project)
        from airflow_machine_images.hooks import ComputeEngineMachineImageHook

        for index in range(images):
            hook = ComputeEngineMachineImageHook()
            operation = hook.insert_machine_image(
                body={"name": f"img-{index}"},
                source_instance=f"projects/{project}/zones/us-central1-a/instances/src",
                request_id=str(uuid.uuid4()),
            )
            hook.wait_for_operation(operation_name=operation["name"])
            hook.get_machine_image(name=f"img-{index}")


def run(scale_count: int = 2000, worker_images: int = 40, out_dir: Path | None = None) -> dict[str, Any]:
    """Profile both hot paths.

    :param scale_count: waits in the profiled scale run.
    :param worker_images: images in the profiled worker run.
    :param out_dir: where the collapsed stacks are kept (a temporary folder if None).
    """
    out_dir = out_dir or Path(tempfile.mkdtemp(prefix="ami-bench-profile-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    tiny = scale_count <= 50
    dmin, dmax, poll = (2, 4, 0.5) if tiny else (15, 30, 10.0)
    scale = record(
        [
            python,
            "-m",
            "benchmarks.bench_scale",
            "--count",
            str(scale_count),
            "--dmin",
            str(dmin),
            "--dmax",
            str(dmax),
            "--poll-interval",
            str(poll),
            "--out",
            str(out_dir / "scale-profiled.json"),
        ],
        out_dir / "scale.txt",
    )
    worker = record(
        [python, "-m", "benchmarks.bench_profile", "--worker-driver", str(worker_images)],
        out_dir / "worker.txt",
        rate=250,
    )
    return {
        "scale": {**scale, "count": scale_count, "dmin": dmin, "dmax": dmax, "poll_interval": poll},
        "worker": {**worker, "images": worker_images},
        "out_dir": str(out_dir),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: profile both paths and print the summary as JSON (or write it with ``--out``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale-count", type=int, default=2000, help="waits in the profiled scale run")
    parser.add_argument("--worker-images", type=int, default=40, help="images in the profiled worker run")
    parser.add_argument("--worker-driver", type=int, metavar="IMAGES", help="internal: be the profiled worker")
    parser.add_argument("--out-dir", help="keep the collapsed stacks here")
    parser.add_argument("--out", help="write JSON here instead of stdout")
    args = parser.parse_args(argv)
    if args.worker_driver is not None:
        worker_driver(args.worker_driver)
        return 0
    results = run(args.scale_count, args.worker_images, Path(args.out_dir) if args.out_dir else None)
    emit_json(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
