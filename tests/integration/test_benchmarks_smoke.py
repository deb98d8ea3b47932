"""Smoke run of every benchmark at toy sizes: the results are well formed (timings are never checked)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration

STEPS = {"import", "calls", "scale_1000", "scale_5000", "scale_1000_two_triggerers", "e2e", "profile"}


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    work = tmp_path_factory.mktemp("bench")
    doc = work / "benchmarks.md"
    command = [sys.executable, "-m", "benchmarks.run_all", "--preset", "tiny", "--jobs", "2"]
    completed = subprocess.run(
        [*command, "--doc", str(doc), "--work", str(work)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    results = json.loads((work / "results.json").read_text(encoding="utf-8"))
    return results, doc.read_text(encoding="utf-8")


def test_every_step_ran(tiny_run: tuple[dict, str]) -> None:
    results, _ = tiny_run
    assert results["preset"] == "tiny"
    assert set(results["steps"]) == STEPS
    assert all(_finite(seconds) for seconds in results["step_seconds"].values())
    assert results["meta"]["python"] and results["meta"]["packages"]["apache-airflow"]


def test_import_results(tiny_run: tuple[dict, str]) -> None:
    variants = tiny_run[0]["steps"]["import"]["variants"]
    assert set(variants) == {"baseline", "ours", "google", "ours_no_bytecode"}
    for item in variants.values():
        assert _finite(item["increment_median"]) and _finite(item["process_wall_median"])
        assert 0.0 <= item["bytecode_share"] <= 1.0
    assert variants["ours"]["ours_from"] != variants["ours_no_bytecode"]["ours_from"]


def test_calls_results(tiny_run: tuple[dict, str]) -> None:
    calls = tiny_run[0]["steps"]["calls"]
    strategies = {row["strategy"] for row in calls["rows"]}
    assert strategies == {"worker", "trigger_lone", "trigger_few", "trigger_coalesced", "poll_1s", "poll_10s"}
    for row in calls["rows"]:
        assert row["calls_per_image"] >= 2  # at least the insert and one read of the operation
        assert row["calls_by_action"].get("machineImages.insert") == 1
        assert isinstance(row["call_bound"], int)
        assert _finite(row["latency_real_p50"]) and _finite(row["latency_measured_p50"])
    assert all(sample["operation"].startswith("operation-") for sample in calls["samples"])


def test_scale_results(tiny_run: tuple[dict, str]) -> None:
    for step in ("scale_1000", "scale_5000"):
        scale = tiny_run[0]["steps"][step]
        assert scale["statuses"] == ["success"]
        assert scale["detection_latency"]["n"] == scale["count"]
        assert scale["operation_reads"] > 0 and scale["reads_busiest_minute"] > 0
        assert scale["loop_lag"]["n"] > 0 and _finite(scale["loop_lag"]["p99"])
        assert scale["rss_peak_mib"] >= scale["rss_baseline_mib"] > 0


def test_two_triggerer_results(tiny_run: tuple[dict, str]) -> None:
    shared = tiny_run[0]["steps"]["scale_1000_two_triggerers"]
    assert shared["triggerers"] == 2 and shared["split"] == "alternate"
    assert shared["budget"] == {"total": 60, "triggerers": 2, "share": 30}  # read inside each triggerer process
    assert shared["statuses"] == ["success"]
    assert shared["detection_latency"]["n"] == shared["count"]
    processes = shared["processes"]
    assert [p["count"] for p in processes] == [shared["count"] // 2] * 2
    assert len({p["pid"] for p in processes}) == 2
    for process in processes:
        assert process["statuses"] == ["success"] and process["detection_latency"]["n"] == process["count"]
        assert process["operation_reads"] > 0 and process["reads_busiest_minute"] > 0
        assert process["loop_lag"]["n"] > 0 and process["rss_peak_mib"] > 0
    # The processes' own records of what they sent add up to what the emulator received.
    for action, received in shared["reads_by_action"].items():
        assert sum(p["reads_by_action"][action] for p in processes) == received


def test_e2e_results(tiny_run: tuple[dict, str]) -> None:
    e2e = tiny_run[0]["steps"]["e2e"]
    assert set(e2e["modes"]) == {"blocking", "deferrable"}
    for mode in e2e["modes"].values():
        assert mode["run_state"] == "success"
        assert mode["images_ready"] == e2e["instances"]
        assert mode["requests_by_action"]["machineImages.insert"] == e2e["instances"]


def test_profile_results(tiny_run: tuple[dict, str]) -> None:
    profile = tiny_run[0]["steps"]["profile"]
    for key in ("scale", "worker"):
        item = profile[key]
        assert item["available"], f"py-spy (locked in uv.lock) could not profile here: {item.get('error')}"
        assert item["samples"] >= 0 and isinstance(item["top_self"], list)
        assert all(0.0 <= share <= 1.0 for share in item["areas"].values())


def test_document_is_rendered(tiny_run: tuple[dict, str]) -> None:
    _, doc = tiny_run
    for heading in (
        "# Benchmarks",
        "## Goals",
        "## 1. Parse-time import cost",
        "## 2. API calls and detection latency per image",
        "## 3. Triggerer scale",
        "## 4. End to end",
        "## 5. Profiles",
        "## 6. 10 waits across 2 triggerers sharing one project's budget",
        "## How to rerun",
    ):
        assert heading in doc
    assert "Preset `tiny`" in doc
    assert "Each triggerer's operation reads per minute, 10 waits across 2 triggerers" in doc
    assert re.search(r"\bnan\b", doc, re.IGNORECASE) is None
    assert Path(REPO_ROOT / "benchmarks" / "dags" / "bench_mapped_backup.py").exists()
