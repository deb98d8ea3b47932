"""The real-stack section of ``docs/benchmarks.md``: the fleet backup operator beside mapped inserts.

Rendered from the results of :mod:`benchmarks.bench_stack` (``python -m benchmarks.run_all --preset
stack``), which are kept in ``docs/benchmarks_stack.json`` (committed: a run of some sizes adds to the
runs of the others) and spliced into ``docs/benchmarks.md`` between two markers, so that ``make bench``
(which rewrites the rest of the document) keeps it, and the stack preset rewrites only it.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from benchmarks.stats import fmt_seconds

if TYPE_CHECKING:
    from pathlib import Path

BEGIN = "<!-- BEGIN real-stack fleet backups (benchmarks/run_all.py --preset stack) -->"
END = "<!-- END real-stack fleet backups -->"
#: The order of the columns: each pattern at each size.
STEP_ORDER = ("fleet_200", "mapped_200", "fleet_1000", "mapped_1000", "fleet_5000", "mapped_5000")
#: Goals of issue 27.
CALLS_PER_IMAGE_GOAL = 2.2
FIVE_THOUSAND_GOAL_SECONDS = 600.0


def load(path: Path) -> dict[str, Any]:
    """The kept stack results (``{"steps": {name: result}}``), or none yet.

    :param path: ``docs/benchmarks_stack.json``.
    """
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"steps": {}}


def _mb(value: Any) -> str:
    return "n/a" if value is None else f"{value:,.0f} MB"


def _lag(run: dict[str, Any], key: str) -> str:
    lag = run.get("loop_lag") or {}
    value = lag.get(key)
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else fmt_seconds(value)


def _rows(run: dict[str, Any]) -> str:
    rows = run.get("trigger_rows") or {}
    ours = {name: row for name, row in rows.items() if name != "LoopLagProbeTrigger"}
    if not ours:
        return "none"
    return "; ".join(f"{name}: {row['rows']:,} x {row['max_bytes']:,} B" for name, row in sorted(ours.items()))


def _timeline(run: dict[str, Any]) -> str:
    t = run.get("timeline") or {}
    if t.get("first_insert") is None:
        return "no insert"
    return (
        f"inserts {fmt_seconds(t['first_insert'])}-{fmt_seconds(t['last_insert'])}, last image made "
        f"{fmt_seconds(t['last_operation_done'] or math.nan)}, run ended {fmt_seconds(t['run_end'])}"
    )


MEASURES: list[tuple[str, Any]] = [
    ("Run", lambda r: f"{r['run_state']}" + (f" ({r['failure']})" if r.get("failure") else "")),
    ("Wall time, trigger to end", lambda r: fmt_seconds(r["wall_seconds"])),
    ("Task instances / task starts", lambda r: f"{r['task_instances']:,} / {r['task_starts']:,}"),
    ("Images READY (instances with two)", lambda r: f"{r['images_ready']:,} ({r['instances_with_two_images']})"),
    (
        f"API calls per image (goal <= {CALLS_PER_IMAGE_GOAL})",
        lambda r: f"{r['requests_per_image']:.2f}" if r["requests_per_image"] else "-",
    ),
    ("Reads, busiest 60 s (budget 60)", lambda r: f"{r['reads_busiest_minute']} ({r['reads']:,} in all)"),
    (
        "Triggerer RSS before / peak",
        lambda r: f"{_mb(r['triggerer_rss_before_mb'])} / {_mb(r['triggerer_rss_peak_mb'])}",
    ),
    ("Loop lag p50 / p99 / max", lambda r: f"{_lag(r, 'p50')} / {_lag(r, 'p99')} / {_lag(r, 'max')}"),
    ("Trigger rows stored (rows x largest kwargs)", _rows),
    ("Finished-since lists turned off", lambda r: str(r["finished_lists_turned_off"])),
    ("Where the time went (from the trigger)", _timeline),
    (
        "Started (UTC), 1-min load before / after",
        lambda r: f"{r['started']}, {r['load_average']['before']:.2f} / {r['load_average']['after']:.2f}",
    ),
]


def render_stack(results: dict[str, Any]) -> str:
    """The section, between its markers.

    :param results: ``{"steps": {name: bench_stack result}}``.
    """
    steps = results.get("steps") or {}
    names = [name for name in STEP_ORDER if name in steps]
    lines = [BEGIN, "", "## 7. Fleet backups on a real Airflow stack: the fleet operator and mapped inserts", ""]
    lines += [
        "`benchmarks/bench_stack.py`, one fresh e2e stack per column (`tests/e2e/stack.py`: PostgreSQL, api-server, "
        "scheduler, dag-processor, one triggerer, LocalExecutor with `[core] parallelism` 4, every other option at "
        "Airflow's default: `max_map_length` 1,024, `[triggerer] capacity` 1,000, `max_active_tasks_per_dag` 16). "
        "The emulator's image inserts take 60-120 s (evenly spread). `fleet`: `ComputeEngineFleetBackupOperator` "
        "with its defaults (`e2e_fleet_backup_operator`); `mapped`: the list operator, then the deferrable insert "
        "operator mapped over it (`bench_stack_mapped`). Task starts are the api-server's `Task started` lines of "
        "the run's task instances (a resume after a deferral is a start); reads are every `get`/`list`/`wait` of any "
        "process (the budget, `[machine_images] requests_per_minute_per_project`, binds the triggerer's pollers; "
        "a resumed task's own reads come on top); the loop lag is a probe trigger sleeping 50 ms in the same "
        "triggerer.",
        "",
    ]
    if not names:
        return "\n".join([*lines, "No run yet.", "", END])
    lines += ["| Measure | " + " | ".join(f"`{name}`" for name in names) + " |"]
    lines += ["|---|" + "---|" * len(names)]
    for label, cell in MEASURES:
        lines.append(f"| {label} | " + " | ".join(str(cell(steps[name])).replace("|", "/") for name in names) + " |")
    lines += ["", *(f"- `{name}`: {steps[name]['note']}" for name in names if steps[name].get("note"))]
    lines += ["", *goals(steps), ""]
    lines += [
        "Rerun (each column merges into `docs/benchmarks_stack.json` and rewrites only this section): "
        "`make bench-stack` (all six, about an hour and a half on 2 cores), or some of them with "
        "`.venv/bin/python -m benchmarks.run_all --preset stack --only fleet_1000 mapped_1000 fleet_5000 mapped_5000`.",
        "",
        END,
    ]
    return "\n".join(lines)


def goals(steps: dict[str, Any]) -> list[str]:
    """The goals of issue 27 against what was measured (those not yet run say so)."""
    fleet = [steps[n] for n in STEP_ORDER if n.startswith("fleet") and n in steps]
    calls = max((run["requests_per_image"] or math.inf for run in fleet), default=None)
    big = steps.get("fleet_5000")
    misses = sum(run["finished_lists_turned_off"] for run in steps.values())
    rows = [["Fleet operator: API calls per image <= 2.2"], ["5,000 instances within 10 minutes"]]
    rows[0] += ["not run", ""] if calls is None else [f"at most {calls:.2f}", _met(calls <= CALLS_PER_IMAGE_GOAL)]
    if big is None:
        rows[1] += ["not run yet", ""]
    else:
        met = big["run_state"] == "success" and big["wall_seconds"] <= FIVE_THOUSAND_GOAL_SECONDS
        rows[1] += [fmt_seconds(big["wall_seconds"]), _met(met)]
    rows.append(["The triggerer logs no finished-since miss", str(misses), _met(misses == 0)])
    return ["| Goal | Measured | Result |", "|---|---|---|", *(f"| {' | '.join(row)} |" for row in rows)]


def _met(flag: bool) -> str:
    return "**met**" if flag else "**missed**"


#: The markers of the pattern table in ``docs/fleet-backups.md`` ("Mapped inserts or the fleet operator?").
CHOICE_BEGIN = "<!-- BEGIN pattern table (benchmarks/report_stack.py, from docs/benchmarks_stack.json) -->"
CHOICE_END = "<!-- END pattern table -->"


def _choice_cell(run: dict[str, Any] | None) -> str:
    """One pattern at one size: wall time, task starts, API calls per image (or how it ended)."""
    if run is None:
        return "not run"
    if run["run_state"] != "success":
        return f"{run['run_state']}: {run.get('failure') or 'see docs/benchmarks.md'}"
    calls = f"{run['requests_per_image']:.2f}" if run.get("requests_per_image") else "-"
    return f"{fmt_seconds(run['wall_seconds'])}, {run['task_starts']:,} task starts, {calls} API calls per image"


def render_choice(results: dict[str, Any]) -> str:
    """The two patterns side by side per fleet size, between :data:`CHOICE_BEGIN` and :data:`CHOICE_END`.

    :param results: ``{"steps": {name: bench_stack result}}``.
    """
    steps = results.get("steps") or {}
    sizes = sorted({int(name.split("_")[1]) for name in steps})
    lines = [CHOICE_BEGIN, "", "| instances | mapped inserts | fleet operator |", "|---|---|---|"]
    for size in sizes:
        lines.append(
            f"| {size:,} | {_choice_cell(steps.get(f'mapped_{size}'))} | {_choice_cell(steps.get(f'fleet_{size}'))} |"
        )
    return "\n".join([*lines, "", CHOICE_END])


def splice_choice(document: str, table: str) -> str:
    """``document`` with its pattern table replaced by ``table`` (unchanged if it has no markers).

    :param document: ``docs/fleet-backups.md``.
    :param table: :func:`render_choice`'s output.
    """
    if CHOICE_BEGIN not in document or CHOICE_END not in document:
        return document
    head, rest = document.split(CHOICE_BEGIN, 1)
    return head + table + rest.split(CHOICE_END, 1)[1]


def splice(document: str, section: str) -> str:
    """``document`` with its stack section replaced by ``section`` (appended before "How to rerun" if none).

    :param document: the current Markdown.
    :param section: :func:`render_stack`'s output.
    """
    if BEGIN in document and END in document:
        head, rest = document.split(BEGIN, 1)
        return head + section + rest.split(END, 1)[1]
    marker = "## How to rerun"
    if marker in document:
        head, tail = document.split(marker, 1)
        return f"{head}{section}\n\n{marker}{tail}"
    return document.rstrip() + "\n\n" + section + "\n"


def existing_section(document: str) -> str | None:
    """The stack section already in ``document``, if any (``make bench`` keeps it).

    :param document: the current Markdown.
    """
    if BEGIN in document and END in document:
        return BEGIN + document.split(BEGIN, 1)[1].split(END, 1)[0] + END
    return None
