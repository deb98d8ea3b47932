"""The real-stack section of docs/benchmarks.md: rendered from bench_stack results, spliced between its
markers (the stack preset rewrites only it; the other presets keep it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.report_stack import (
    BEGIN,
    CHOICE_BEGIN,
    CHOICE_END,
    END,
    existing_section,
    load,
    render_choice,
    render_stack,
    splice,
)


def result(pattern: str, count: int, *, wall: float, per_image: float, state: str = "success") -> dict[str, Any]:
    """A ``bench_stack`` result of the shape it writes (figures made up)."""
    return {
        "pattern": pattern,
        "instances": count,
        "run_state": state,
        "wall_seconds": wall,
        "task_instances": 1 if pattern == "fleet" else count + 2,
        "task_starts": 2 if pattern == "fleet" else 2 * count + 2,
        "images_ready": count if state == "success" else 0,
        "instances_with_two_images": 0,
        "requests_per_image": per_image,
        "reads": 16,
        "reads_busiest_minute": 8,
        "triggerer_rss_before_mb": 440.0,
        "triggerer_rss_peak_mb": 486.2,
        "loop_lag": {"samples": 10, "p50": 0.0004, "p99": 0.015, "max": 0.47},
        "trigger_rows": {"FleetBackupTrigger": {"rows": 1, "max_bytes": 359, "total_bytes": 359}},
        "finished_lists_turned_off": 0,
        "failure": None if state == "success" else "plan[-1] failed: UnmappableXComLengthPushed ... max_map_length",
        "timeline": {"first_insert": 2.2, "last_insert": 2.7, "last_operation_done": 122.4, "run_end": wall},
        "started": "2026-12-06T01:07:02+00:00",
        "load_average": {"before": 2.5, "after": 5.0},
    }


def test_the_section_has_a_column_per_run_and_the_goals_of_issue_27() -> None:
    steps = {
        "fleet_200": result("fleet", 200, wall=128.1, per_image=1.08),
        "mapped_5000": result("mapped", 5000, wall=40.0, per_image=0.0, state="failed"),
        "fleet_5000": result("fleet", 5000, wall=540.0, per_image=1.05),
    }
    section = render_stack({"steps": steps})
    assert section.startswith(BEGIN) and section.endswith(END)
    header = next(line for line in section.splitlines() if line.startswith("| Measure |"))
    assert header == "| Measure | `fleet_200` | `fleet_5000` | `mapped_5000` |"  # in the order of the sizes
    assert "max_map_length" in section and "2.1 min" in section
    assert "| 5,000 instances within 10 minutes | 9.0 min | **met** |" in section
    assert "| Fleet operator: API calls per image <= 2.2 | at most 1.08 | **met** |" in section
    assert "not run yet" in render_stack({"steps": {"fleet_200": steps["fleet_200"]}})
    json.dumps(steps)  # what docs/benchmarks_stack.json keeps


def test_the_section_is_spliced_between_its_markers_and_kept_by_a_full_render() -> None:
    first = render_stack({"steps": {"fleet_200": result("fleet", 200, wall=128.1, per_image=1.08)}})
    doc = "# Benchmarks\n\n## 6. Other\n\ntext\n\n## How to rerun\n\nmake bench\n"
    spliced = splice(doc, first)
    assert spliced.index(BEGIN) < spliced.index("## How to rerun") and spliced.count(BEGIN) == 1
    second = render_stack({"steps": {"fleet_200": result("fleet", 200, wall=130.0, per_image=1.1)}})
    again = splice(spliced, second)
    assert again.count(BEGIN) == 1 and "2.2 min" in again and "2.1 min" not in again
    assert existing_section(again) == second
    assert splice("# Benchmarks\n", second).endswith(END + "\n")


def test_the_pattern_table_of_the_fleet_backups_page_is_rendered_from_the_kept_results() -> None:
    """docs/fleet-backups.md quotes the real-stack figures only through the generated table."""
    docs = Path(__file__).resolve().parents[2] / "docs"
    page = (docs / "fleet-backups.md").read_text(encoding="utf-8")
    table = render_choice(load(docs / "benchmarks_stack.json"))
    assert CHOICE_BEGIN in page and CHOICE_END in page
    assert table in page, "stale: rerun the stack benchmarks or splice render_choice() into docs/fleet-backups.md"
