"""Describe the machine and software a benchmark run used (for the report's header)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from benchmarks.environment import REPO_ROOT

PACKAGES = ("apache-airflow", "apache-airflow-providers-google", "aiohttp", "requests", "google-auth", "py-spy")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return float("nan")


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _site_packages_bytecode() -> dict[str, int]:
    """How many ``.py`` files of site-packages have a current ``.pyc`` (sampled: Airflow and Google)."""
    import importlib.util

    roots: list[Path] = []
    for name in ("airflow", "google"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            roots.extend(Path(p) for p in spec.submodule_search_locations)
    sources = compiled = 0
    for root in roots:
        for source in root.rglob("*.py"):
            sources += 1
            if Path(importlib.util.cache_from_source(str(source))).exists():
                compiled += 1
    return {"sources": sources, "compiled": compiled}


def describe() -> dict[str, Any]:
    """Machine, OS, Python, package versions, git commit and bytecode state."""
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "packages": {name: _version(name) for name in PACKAGES},
        "ours": _version("airflow-machine-images"),
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "pythondontwritebytecode": os.environ.get("PYTHONDONTWRITEBYTECODE", ""),
        "site_packages_bytecode": _site_packages_bytecode(),
    }
