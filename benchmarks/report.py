"""Render the collected benchmark results as ``docs/benchmarks.md``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from benchmarks.stats import fmt_ratio, fmt_seconds

STRATEGY_NAMES = {
    "worker": "ours: worker path (insert + `wait` long-poll + get)",
    "trigger_lone": "ours: deferrable, lone trigger (long-poll)",
    "trigger_few": "ours: deferrable, {few} triggers in one loop (a long-poll each)",
    "trigger_coalesced": "ours: deferrable, {group} triggers in one loop (coalesced: list every 10 s)",
    "poll_1s": "1-s `get` loop (Google provider's strategy)",
    "poll_10s": "10-s `get` loop",
}
SHORT_ACTIONS = {
    "machineImages.insert": "insert",
    "machineImages.get": "get image",
    "globalOperations.wait": "wait",
    "globalOperations.get": "get op",
    "globalOperations.list": "list ops",
}


@dataclass
class Goal:
    """One goal of issue 6 and how the run did against it."""

    name: str
    target: str
    measured: str
    met: bool | None


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value * 100:.2f} %"


def _mib(value: float) -> str:
    return f"{value:.0f} MB"


def _num(value: float, digits: int = 1) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if float(value).is_integer():
        return f"{int(value)}"
    return f"{value:.{digits}f}"


def _met(flag: bool | None) -> str:
    return {True: "**met**", False: "**missed**", None: "n/a"}[flag]


def _load(meta: dict[str, Any], when: str) -> str:
    load = meta.get("load_average", {}).get(when)
    return "n/a" if not load else f"{load[0]:.2f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


# ---------------------------------------------------------------------- goals


def goals(results: dict[str, Any]) -> list[Goal]:
    """Evaluate every goal of issue 6 against the results.

    :param results: what :mod:`benchmarks.run_all` collected.
    """
    steps = results["steps"]
    out: list[Goal] = []
    if "import" in steps:
        variants = steps["import"]["variants"]
        share = variants["ours"]["increment_median"] / variants["google"]["increment_median"]
        out.append(
            Goal(
                "Parse-time import increment, ours / Google's",
                "<= 3 %",
                f"{_pct(share)} ({fmt_seconds(variants['ours']['increment_median'])} vs "
                f"{fmt_seconds(variants['google']['increment_median'])})",
                share <= 0.03,
            )
        )
    if "calls" in steps:
        calls = steps["calls"]
        rows = calls["rows"]
        for strategy in ("worker", "trigger_lone", "trigger_few", "trigger_coalesced"):
            mine = [r for r in rows if r["strategy"] == strategy]
            if not mine:
                continue
            measured = ", ".join(
                f"{_num(r['calls_per_image'])} of <= {r['call_bound']} at {_num(r['duration'])} s" for r in mine
            )
            label = _label(strategy, calls["settings"])
            out.append(
                Goal(
                    f"Calls per image, {label}",
                    "<= 2 + ceil(duration / wait deadline) + 1",
                    measured,
                    all(r["calls_per_image"] <= r["call_bound"] for r in mine),
                )
            )
        interval = calls["real_trigger_poll_interval"]
        for strategy, limit, text in (
            ("worker", 0.050, "<= 50 ms after DONE"),
            ("trigger_lone", 0.050, "<= 50 ms after DONE"),
            ("trigger_few", interval, f"<= one poll interval ({_num(interval)} s)"),
            ("trigger_coalesced", interval, f"<= one poll interval ({_num(interval)} s)"),
        ):
            mine = [r for r in rows if r["strategy"] == strategy]
            if not mine:
                continue
            worst = max(r["latency_real_p50"] for r in mine)
            label = _label(strategy, calls["settings"])
            out.append(
                Goal(
                    f"Detection p50, {label}",
                    text,
                    "worst over durations: " + fmt_seconds(worst),
                    worst <= limit,
                )
            )
    big = _largest_scale(steps)
    if big is not None:
        count = big["count"]
        out += [
            Goal(
                f"Operation reads per minute per project, {count:,} waits",
                "<= 60",
                _busiest(big),
                big["reads_busiest_minute"] <= 60,
            ),
            Goal(
                f"Detection p99, {count:,} waits",
                f"<= 2 poll intervals ({_num(2 * big['poll_interval'])} s)",
                fmt_seconds(big["detection_latency"]["p99"]),
                big["detection_latency"]["p99"] <= 2 * big["poll_interval"],
            ),
            Goal(
                f"RSS growth, {count:,} waits",
                "<= 200 MB",
                _mib(big["rss_growth_mib"]),
                big["rss_growth_mib"] <= 200,
            ),
            Goal(
                f"Event-loop lag p99, {count:,} waits",
                "<= 100 ms",
                fmt_seconds(big["loop_lag"]["p99"]),
                big["loop_lag"]["p99"] <= 0.100,
            ),
        ]
    for shared in _shared_scales(steps):
        out += shared_goals(shared)
    total = results.get("total_seconds", math.nan)
    out.append(Goal("`make bench` run time on this machine", "< 15 min", fmt_seconds(total), total < 900))
    return out


def _label(strategy: str, settings: dict[str, Any]) -> str:
    """A strategy's display name (without its parenthesis), group sizes filled in."""
    return _name(strategy, settings).split(" (")[0]


def _name(strategy: str, settings: dict[str, Any]) -> str:
    return STRATEGY_NAMES[strategy].format(group=settings.get("group", "?"), few=settings.get("few", "?"))


def _one_loop_scales(steps: dict[str, Any]) -> list[dict[str, Any]]:
    """The triggerer-scale runs with every wait in one event loop (one triggerer), smallest first."""
    runs = [v for k, v in steps.items() if k.startswith("scale_") and v.get("triggerers", 1) == 1]
    return sorted(runs, key=lambda r: r["count"])


def _shared_scales(steps: dict[str, Any]) -> list[dict[str, Any]]:
    """The triggerer-scale runs whose waits were spread over several triggerer processes."""
    return [v for k, v in steps.items() if k.startswith("scale_") and v.get("triggerers", 1) > 1]


def _largest_scale(steps: dict[str, Any]) -> dict[str, Any] | None:
    scale = _one_loop_scales(steps)
    return scale[-1] if scale else None


def _poller_totals(run: dict[str, Any]) -> dict[str, int]:
    """The run's poller counters summed over its pollers (0 for counters an older run lacks)."""
    keys = ("cycles", "calls", "finished_listings", "reconciliations", "finished_list_misses")
    return {key: sum(int(stats.get(key, 0)) for stats in run.get("poller_stats", [])) for key in keys}


def _busiest(run: dict[str, Any]) -> str:
    """``busiest 60 s: N (mean M/min)``, the mean left out when the wait was under a minute."""
    mean = run["reads_per_minute_mean"]
    return f"busiest 60 s: {run['reads_busiest_minute']}" + ("" if math.isnan(mean) else f" (mean {_num(mean)}/min)")


# ---------------------------------------------------------------------- sections


def header(results: dict[str, Any]) -> list[str]:
    """Title, provenance, machine and bytecode notes."""
    meta = results["meta"]
    packages = meta["packages"]
    bytecode = meta["site_packages_bytecode"]
    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated by `make bench` (benchmarks/run_all.py); do not edit by hand. -->",
        "",
    ]
    if results["preset"] != "full":
        lines += [f"> **Preset `{results['preset']}`: toy sizes for a smoke test; the figures mean nothing.**", ""]
    lines += [
        f"Run on {meta['started']} (UTC) in {fmt_seconds(results['total_seconds'])} "
        f"(commit {meta['commit'] or 'unknown'}). Every comparison below ran side by side in this one invocation; "
        "figures are medians unless marked otherwise.",
        "",
        "## Machine and software",
        "",
        f"- {meta['cores']} cores ({meta['cpu']}), {meta['memory_gib']:.0f} GiB RAM, {meta['platform']}; "
        f"1-minute load average {_load(meta, 'before')} before the run and {_load(meta, 'after')} after it "
        "(the machine is shared; other work running meanwhile shows up here)",
        f"- Python {meta['python']}, Apache Airflow {packages['apache-airflow']}, "
        f"apache-airflow-providers-google {packages['apache-airflow-providers-google']}, "
        f"aiohttp {packages['aiohttp']}, requests {packages['requests']}, google-auth {packages['google-auth']}, "
        f"airflow-machine-images {meta['ours']}",
        f"- Bytecode: `PYTHONDONTWRITEBYTECODE={meta['pythondontwritebytecode'] or '(unset)'}` in this environment, "
        "so nothing writes `.pyc` files at run time. The venv was installed with `uv sync --compile-bytecode` "
        f"(the Makefile exports `UV_COMPILE_BYTECODE=1`): {bytecode['compiled']:,} of {bytecode['sources']:,} "
        "`.py` files of `airflow` and `google` in site-packages have a current `.pyc`. Our package is an editable "
        "install (source in the repository, no `.pyc`), so the import benchmark compiles a temporary copy with "
        "`compileall` and puts it first on `PYTHONPATH`; both sides then load bytecode (each probe checks which "
        "share of the modules it loaded came from a `.pyc`); the no-bytecode row imports a copy without any "
        "`__pycache__`, as an editable install under that setting does. The other benchmarks import our package "
        "from source, "
        "which costs only start-up time there.",
        "",
    ]
    return lines


def goals_section(results: dict[str, Any]) -> list[str]:
    """The goals of issue 6, met or missed, and the time each step took."""
    rows = [[g.name, g.target, g.measured, _met(g.met)] for g in goals(results)]
    steps = [
        [f"`{name}`", fmt_seconds(seconds), _num(results.get("step_load", {}).get(name, math.nan), 2)]
        for name, seconds in results["step_seconds"].items()
    ]
    return [
        "## Goals",
        "",
        *_table(["Goal", "Target", "Measured", "Result"], rows),
        "",
        *_table(["Step", "Wall time", "1-min load average at its end"], steps),
        "",
    ]


def import_section(data: dict[str, Any]) -> list[str]:
    """Section 1: parse-time import cost."""
    v = data["variants"]
    google, ours, raw = v["google"], v["ours"], v["ours_no_bytecode"]
    rows = []
    for label, item, statement in (
        ("ours (bytecode)", ours, "`import airflow_machine_images.operators, airflow_machine_images.sensors`"),
        ("Google provider", google, "`import airflow.providers.google.cloud.operators.compute`"),
        ("ours, no bytecode (editable install)", raw, "same as ours, from source"),
    ):
        rows.append(
            [
                label,
                statement,
                fmt_seconds(item["increment_median"]),
                str(item["modules_added"]),
                _pct(item["bytecode_share"]),
                ", ".join(item["heavy_libraries"]) or "none",
                fmt_seconds(item["process_wall_median"]),
            ]
        )
    share = ours["increment_median"] / google["increment_median"]
    cheaper = fmt_ratio(google["increment_median"] / ours["increment_median"])
    return [
        "## 1. Parse-time import cost",
        "",
        f"{data['runs']} fresh interpreters per variant, interleaved in a shuffled order each round. Each imports "
        "`airflow.sdk` (the baseline every DAG file pays; median "
        f"{fmt_seconds(v['baseline']['baseline_import_median'])}) and then the candidate; the increment is "
        "`time(baseline + X) - time(baseline)` measured inside the process, which keeps interpreter start-up "
        "noise out. Whole-process wall times are shown for reference only: their run-to-run spread "
        "(hundreds of ms) is larger than our increment.",
        "",
        *_table(
            [
                "Variant",
                "Statement",
                "Increment (median)",
                "Modules added",
                "From .pyc",
                "Heavy libraries loaded",
                "Process wall (median)",
            ],
            rows,
        ),
        "",
        f"Our increment is **{_pct(share)}** of Google's ({cheaper} cheaper). Baseline process wall time: "
        f"{fmt_seconds(v['baseline']['process_wall_median'])}. Note that "
        "`import airflow.sdk` already loads `airflow_machine_images/__init__.py` (Airflow reads every provider's "
        "`get_provider_info` entry point when it loads its configuration), so that module is part of every "
        "variant's baseline.",
        "",
    ]


def calls_section(data: dict[str, Any]) -> list[str]:
    """Section 2: calls and detection latency per image."""
    settings = data["settings"]
    scale = settings["scale"]
    group = settings["group"]
    deadline = data["real_wait_deadline"]
    lines = [
        "## 2. API calls and detection latency per image",
        "",
        f"Time is scaled by **{_num(scale)}**: operations of 10 s, 60 s and 300 s last "
        + ", ".join(f"{_num(d / scale, 2)} s" for d in settings["durations"])
        + f" in the emulator; its `globalOperations.wait` deadline ({_num(deadline)} s, like Google's ~2 minutes) "
        f"is {_num(deadline / scale, 2)} s; the 1-s and 10-s loops sleep {_num(1 / scale, 3)} s and "
        f"{_num(10 / scale, 2)} s; the triggers' 10-s poll interval is {_num(10 / scale, 2)} s and the coalesced "
        f"poller's budget of 60 calls per minute becomes {_num(60 * scale)} per real minute. Call counts are "
        "unitless and shown as measured. Figures are in real-API seconds: each detection latency (the client "
        "learns DONE minus the operation's `endTime`) is split at the moment the detecting request reached the "
        "emulator (its request log; CLOCK_MONOTONIC is shared by all processes): the time the operation sat DONE "
        f"before anybody asked is a fraction of a scaled poll interval and is multiplied by {_num(scale)}; the rest "
        "(network, server, parsing, event loop) does not shrink with the clock and is kept as measured. "
        "Long-polls never wait, so their latency is exactly what was measured (last column).",
        "",
        f"{settings['samples']} images per strategy and duration, run concurrently per strategy, strategies one "
        "after another, against one emulator process, after one untimed warm-up image made the worker's way "
        "in a project of its own (so the first strategy's threads do not pay the process's start-up between "
        "their insert and their wait). The two trigger groups ("
        f"{settings.get('few', '?')} and {group} triggers of one project in one event loop) spread their inserts "
        "at random over one poll interval, each trigger starting right after its insert as each task defers; "
        "up to 12 waiters per project long-poll one each (`polling.MAX_LONG_POLLS`), more are coalesced "
        "into list calls. Each `get` "
        "loop starts at a random phase (in practice its period is interval + round trip, so completion falls "
        "anywhere in it). The `get` loops read no image back (Google's hook does not), so they are charged one "
        "call less than our paths. The goal allows 2 + ceil(duration / wait deadline) + 1 calls.",
        "",
    ]
    rows = data["rows"]
    for duration in settings["durations"]:
        mine = [r for r in rows if r["duration"] == duration]
        base = next((r for r in mine if r["strategy"] == "poll_1s"), None)
        table_rows = []
        for r in mine:
            breakdown = ", ".join(
                f"{_num(n)} {SHORT_ACTIONS.get(action, action)}" for action, n in r["calls_by_action"].items()
            )
            ratio = fmt_ratio(base["calls_per_image"] / r["calls_per_image"]) if base else "n/a"
            table_rows.append(
                [
                    _name(r["strategy"], settings),
                    _num(r["calls_per_image"]),
                    breakdown,
                    ratio,
                    fmt_seconds(r["latency_real_p50"]),
                    fmt_seconds(r["latency_real_p95"]),
                    fmt_seconds(r["latency_measured_p50"]),
                ]
            )
        bound = mine[0]["call_bound"] if mine else 0
        lines += [
            f"### Operations of {_num(duration)} s (goal: <= {bound} calls per image)",
            "",
            *_table(
                [
                    "Strategy",
                    "Calls / image",
                    "Of which",
                    "1-s loop sends",
                    "Detection p50",
                    "Detection p95",
                    "Measured p50 (scaled run)",
                ],
                table_rows,
            ),
            "",
        ]
    return lines


def scale_section(steps: dict[str, Any]) -> list[str]:
    """Section 3: triggerer scale."""
    runs = _one_loop_scales(steps)
    if not runs:
        return []
    header_row = ["Measure", *(f"{r['count']:,} waits" for r in runs)]

    def row(label: str, fn: Any) -> list[str]:
        return [label, *(fn(r) for r in runs)]

    rows = [
        row("Operation durations", lambda r: f"{_num(r['dmin'])}-{_num(r['dmax'])} s, evenly spread"),
        row("Trigger poll interval", lambda r: f"{_num(r['poll_interval'])} s"),
        row("Creating the operations (async hook, 32 in flight)", lambda r: fmt_seconds(r["insert_seconds"])),
        row("Wait phase (first trigger created to last event)", lambda r: fmt_seconds(r["wait_seconds"])),
        row("Events", lambda r: ", ".join(r["statuses"])),
        row(
            "Operation reads (total)",
            lambda r: (
                f"{r['operation_reads']} ("
                + ", ".join(f"{n} {SHORT_ACTIONS.get(a, a)}" for a, n in r["reads_by_action"].items() if n)
                + ")"
            ),
        ),
        row("Reads, busiest 60 s (goal <= 60)", lambda r: str(r["reads_busiest_minute"])),
        row("Reads per minute, mean over the wait (n/a under a minute)", lambda r: _num(r["reads_per_minute_mean"])),
        row("Reads per image", lambda r: f"{r['operation_reads'] / r['count']:.3f}"),
        row(
            "Poller cycles: finished-since lists / reconciliations / misses",
            lambda r: "{cycles}: {finished_listings} / {reconciliations} / {finished_list_misses}".format(
                **_poller_totals(r)
            ),
        ),
        row("RSS before the triggers", lambda r: _mib(r["rss_baseline_mib"])),
        row("Peak RSS", lambda r: _mib(r["rss_peak_mib"])),
        row("RSS growth (goal <= 200 MB at 5,000)", lambda r: _mib(r["rss_growth_mib"])),
        row("RSS after all events", lambda r: _mib(r["rss_end_mib"])),
        row("Event-loop lag p50", lambda r: fmt_seconds(r["loop_lag"]["p50"])),
        row("Event-loop lag p99 (goal <= 100 ms)", lambda r: fmt_seconds(r["loop_lag"]["p99"])),
        row("Event-loop lag max", lambda r: fmt_seconds(r["loop_lag"]["max"])),
        row("Detection latency p50", lambda r: fmt_seconds(r["detection_latency"]["p50"])),
        row("Detection latency p99", lambda r: fmt_seconds(r["detection_latency"]["p99"])),
        row("Detection latency max", lambda r: fmt_seconds(r["detection_latency"]["max"])),
    ]
    return [
        "## 3. Triggerer scale",
        "",
        "One event loop, real time (no scaling), one project. The operations are created first with "
        "concurrent inserts through the async hook; then one `MachineImageOperationTrigger` per operation is "
        "re-created from its serialized form and run as the triggerer runs it (a task per trigger with a "
        "greenback portal, iterating `trigger.run()`, `cleanup()` at the end). The emulator runs in its own "
        "process (`python -m airflow_machine_images.emulator`) so its CPU does not distort the loop. Reads are "
        "counted from the emulator's request log while the triggers wait; the busiest 60 s is the most reads "
        "that began within any 60-second window. Loop lag is the oversleep of a task that sleeps 50 ms in a "
        "loop; RSS is sampled every 0.25 s and `VmHWM` is reset just before the triggers are created.",
        "",
        *_table(header_row, rows),
        "",
        "Operations here finish far faster than a real fleet's (the run must fit in minutes), so at 5,000 the "
        "request budget is what detection latency rests on (see Findings). A real triggerer runs at most "
        "`[triggerer] capacity` triggers (default 1,000): 5,000 waits in one triggerer need it raised.",
        "",
    ]


def e2e_section(data: dict[str, Any]) -> list[str]:
    """Section 4: end to end."""
    rows = []
    for mode, item in data["modes"].items():
        states = ", ".join(f"{n} {state}" for state, n in item["task_states"].items())
        breakdown = ", ".join(f"{n} {SHORT_ACTIONS.get(a, a)}" for a, n in item["requests_by_action"].items())
        rows.append(
            [
                mode,
                fmt_seconds(item["wall_seconds"]),
                str(item["requests"]),
                _num(item["requests_per_image"], 2),
                breakdown,
                f"{item['run_state']} ({states}); {item['images_ready']} images READY",
            ]
        )
    blocking = data["modes"].get("blocking")
    deferrable = data["modes"].get("deferrable")
    note = ""
    if blocking and deferrable:
        note = f"Deferrable / blocking wall time: {fmt_ratio(deferrable['wall_seconds'] / blocking['wall_seconds'])}. "
    return [
        "## 4. End to end: `dag.test()` of a mapped backup",
        "",
        f"`benchmarks/dags/bench_mapped_backup.py`: `ComputeEngineInsertMachineImageOperator.partial(...)"
        f".expand(source_instance=[{data['instances']} instances])`, once blocking and once deferrable, in one "
        f"process after an untimed one-image warm-up run (Airflow's first `dag.test()` pays its start-up). Each "
        f"insert takes {_num(data['operation_seconds'])} s in the emulator (another process). `dag.test()` runs "
        "mapped task instances one after another and runs a deferred task's trigger in line, so neither mode "
        "overlaps waits here; the wall time is mostly Airflow's per-task overhead plus the operation time.",
        "",
        *_table(["Mode", "Wall time", "API requests", "Per image", "Of which", "Outcome"], rows),
        "",
        note + "Both modes send the same calls per image: insert, one `wait` (the operation ends before the 2-minute "
        "deadline), one image read-back.",
        "",
    ]


def profile_section(data: dict[str, Any]) -> list[str]:
    """Section 5: profiles."""
    lines = ["## 5. Profiles", ""]
    for key, title in (("scale", "Triggerer at scale"), ("worker", "Worker path")):
        item = data[key]
        if not item.get("available"):
            lines += [f"### {title}", "", f"py-spy was not available: {item.get('error', 'not installed')}", ""]
            continue
        rate = item.get("rate", 100)
        if key == "scale":
            what = (
                f"`bench_scale` with {item['count']:,} waits on {_num(item['dmin'])}-{_num(item['dmax'])} s "
                f"operations, poll interval {_num(item['poll_interval'])} s"
            )
        else:
            what = (
                f"{item['images']} images one after another through a new sync hook each "
                "(insert + `wait_for_operation` + get), 0.1 s operations"
            )
        cpu = item["samples"] / rate
        lines += [
            f"### {title}",
            "",
            f"{what}: {item['samples']} samples of CPU-active, GIL-holding stacks at {rate} Hz "
            f"(about {fmt_seconds(cpu)} of CPU in {fmt_seconds(item['seconds'])} of wall time, start-up imports "
            f"excluded: {item['import_samples']} more samples). "
            f"{_pct(item['under_ours_share'])} of the samples have a frame of our package on the stack.",
            "",
            *_table(
                ["Library (leaf frame)", "CPU share"],
                [[name, _pct(share)] for name, share in item["areas"].items()],
            ),
            "",
            *_table(
                ["Function (most self time)", "File", "CPU share"],
                [[f"`{t['function']}`", f"`{t['file']}`", _pct(t["share"])] for t in item["top_self"]],
            ),
            "",
        ]
    return lines


def shared_goals(run: dict[str, Any]) -> list[Goal]:
    """The budget goals of a run spread over several triggerers: the whole within the total, each within its share.

    :param run: a :mod:`benchmarks.bench_triggerers` result.
    """
    budget, processes = run["budget"], run["processes"]
    where = f"{run['count']:,} waits across {run['triggerers']} triggerers"
    return [
        Goal(
            f"Operation reads per minute per project, {where}",
            f"<= {budget['total']} (the configured total)",
            _busiest(run),
            run["reads_busiest_minute"] <= budget["total"],
        ),
        Goal(
            f"Each triggerer's operation reads per minute, {where}",
            f"<= {budget['share']} (total // {budget['triggerers']})",
            "busiest 60 s: " + ", ".join(str(p["reads_busiest_minute"]) for p in processes),
            all(p["reads_busiest_minute"] <= budget["share"] for p in processes),
        ),
    ]


def shared_section(run: dict[str, Any], steps: dict[str, Any]) -> list[str]:
    """Section 6: the waits spread over several triggerer processes sharing one project's budget.

    :param run: a :mod:`benchmarks.bench_triggerers` result.
    :param steps: every step's results (a one-loop run of the same waits is compared with it).
    """
    budget, processes = run["budget"], run["processes"]
    header_row = ["Measure", "All triggerers", *(f"Triggerer {i + 1}" for i in range(len(processes)))]

    def row(label: str, fn: Any) -> list[str]:
        return [label, *(fn(r) for r in (run, *processes))]

    def reads(r: dict[str, Any]) -> str:
        by_action = ", ".join(f"{n} {SHORT_ACTIONS.get(a, a)}" for a, n in r["reads_by_action"].items() if n)
        return f"{r['operation_reads']} ({by_action})"

    def calls(r: dict[str, Any]) -> str:
        stats = r["poller_stats"]
        return ", ".join(
            f"{sum(s[key] for s in stats)} {label}"
            for key, label in (("calls", "calls"), ("long_polls", "long-polls"), ("cycles", "cycles"))
        )

    rows = [
        row("Waits", lambda r: f"{r['count']:,}"),
        row("Wait phase (first trigger created to last event)", lambda r: fmt_seconds(r["wait_seconds"])),
        row("Events", lambda r: ", ".join(r["statuses"])),
        row("Operation reads (total)", reads),
        row(
            f"Reads, busiest 60 s (goal: all <= {budget['total']}, each <= {budget['share']})",
            lambda r: str(r["reads_busiest_minute"]),
        ),
        row("Reads per minute, mean over the wait", lambda r: _num(r["reads_per_minute_mean"])),
        row("Poller counters", calls),
        row("Detection latency p50", lambda r: fmt_seconds(r["detection_latency"]["p50"])),
        row("Detection latency p99", lambda r: fmt_seconds(r["detection_latency"]["p99"])),
        row("Detection latency max", lambda r: fmt_seconds(r["detection_latency"]["max"])),
        row("Event-loop lag p99", lambda r: fmt_seconds(r["loop_lag"]["p99"])),
        row("Event-loop lag max", lambda r: fmt_seconds(r["loop_lag"]["max"])),
        row("RSS before the triggers (all: sum)", lambda r: _mib(r["rss_baseline_mib"])),
        row("Peak RSS (all: sum of the peaks)", lambda r: _mib(r["rss_peak_mib"])),
    ]
    client_reads = sum(p["operation_reads"] for p in processes)
    same = [
        r
        for r in _one_loop_scales(steps)
        if (r["count"], r["dmin"], r["dmax"]) == (run["count"], run["dmin"], run["dmax"])
    ]
    compared = ""
    if same:
        one = same[0]
        compared = (
            f" The same {one['count']:,} waits in one triggerer (section 3) took {one['operation_reads']} operation "
            f"reads, {one['reads_busiest_minute']} in the busiest 60 s, against {run['operation_reads']} and "
            f"{run['reads_busiest_minute']} here"
        )
        if run["operation_reads"] > one["operation_reads"]:
            compared += (
                ": each triggerer's poller reads the project's operations for its own waits, so the calls do not "
                "coalesce across triggerers; the shares bound the sum, not the duplication"
            )
        compared += "."
    return [
        f"## 6. {run['count']:,} waits across {run['triggerers']} triggerers sharing one project's budget",
        "",
        f"As section 3 ({_num(run['dmin'])}-{_num(run['dmax'])} s operations, evenly spread; a "
        f"{_num(run['poll_interval'])}-s poll interval; the same inserts), but the waits are then split between "
        f"{run['triggerers']} triggerer processes, each running its share of the triggers in its own event loop "
        "as section 3 does, all released at the same moment. The split alternates (operation i, in insert "
        f"order, goes to triggerer i mod {run['triggerers']}): Airflow assigns triggers first come, first served "
        "(each triggerer's loop claims unassigned triggers up to its `[triggerer] capacity`), so the real split "
        "depends on timing; alternating is the even spread of tasks deferring over time, and each triggerer "
        "keeps to its share whatever it holds. Each process read "
        f"`[machine_images] requests_per_minute_per_project` = {budget['total']} and "
        f"`triggerers` = {budget['triggerers']} (`AIRFLOW__MACHINE_IMAGES__TRIGGERERS`), so its poller's budget was "
        f"{budget['share']} requests per minute. The whole's reads come from the emulator's request log; each "
        "triggerer's from its own client-side record of the requests it sent (an aiohttp trace: the server "
        "cannot tell one process's `status != \"DONE\"` list from the other's); they counted "
        f"{client_reads} operation reads between them, the emulator {run['operation_reads']}. The busiest 60 s "
        "is the most reads that began within any 60-second window." + compared,
        "",
        *_table(header_row, rows),
        "",
    ]


def findings_section(results: dict[str, Any]) -> list[str]:
    """What the tables and profiles say, and the package change they led to."""
    steps = results["steps"]
    big = _largest_scale(steps)
    lines = ["## Findings and changes", ""]
    lines += [
        "- **The request budget was an average, not a cap (fixed).** The coalescing poller "
        "(`airflow_machine_images/triggers/polling/`) made each cycle's calls in one burst (every list page, then "
        "every 50-name read-back) and only afterwards paused `calls x 60 / budget` seconds. The mean stayed "
        "near 60 per minute, but bursts piled into the same minute: a first 5,000-wait run (operations of "
        "60-180 s) had 84 reads in its busiest 60 s, for a detection p50 of 13 s and p99 of 27 s. "
        "`CoalescingPoller._within_budget` now holds each list or `wait` call until fewer than "
        "`max_requests_per_minute` calls began in the last 60.5 s (half a second of margin, since the server "
        "timestamps requests a little later), as the module's docstring promised; the same run then had 61 "
        "reads in its busiest minute (a 60-s client window, hence the margin) and detection p50 33 s, p99 52 s.",
    ]
    lines += [
        "- **A few waiters in one project cost more calls than long-polling them (fixed).** The poller "
        "long-polled only a lone waiter; from two waiters on it listed the project's operations every poll "
        "interval, and every join or leave abandoned the long-poll. With three 300-s operations waiting together "
        "that was 13.7 calls per image (goal: 6), 5.3 for 60-s ones (goal: 4). Since one `wait` of up to two "
        "minutes per waiter costs no more than one list every 10 s for all of them as long as at most 12 wait, "
        "the poller now keeps a long-poll per waiter up to `MAX_LONG_POLLS = 12`, coalesces beyond that, and "
        "goes back to long-polls once at most 6 remain (hysteresis, so joins around the threshold do not flap). "
        "Each waiter then learns of completion at once, as a lone one did (the 3-trigger rows of section 2). "
        "Setting `MAX_LONG_POLLS = 1` restores the previous policy.",
    ]
    if big is not None:
        lat = big["detection_latency"]
        spread = max(1e-9, big["dmax"] - big["dmin"])
        per_minute = big["count"] / spread * 60.0
        stats = _poller_totals(big)
        lines += [
            f"- **Fewer calls per finished operation (issue 16).** Here {big['count']:,} operations finish at about "
            f"{per_minute:,.0f} a minute. The poller used to learn that an operation finished when it dropped out "
            "of the list of unfinished ones (re-listed every cycle, 500 per page), then read it back by name, at "
            "most 50 per call, to learn whether it failed: at 60 calls a minute the read-backs queued (the last "
            "run before the change: 187 reads, 60 in the busiest minute, detection p50 43.8 s, p99 71.1 s for a "
            "10-s poll interval). Now each cycle lists the operations that finished since the last one, "
            '`(status = "DONE") (endTime > W)` with W the newest server time seen minus 10 s: about one call per '
            "500 completions, each with its outcome (`airflow_machine_images/triggers/finished_operations.py`; "
            "sources and "
            "fallbacks in docs/reliability.md). Every sixth cycle reconciles (reads every waited-for operation "
            f"again). This run: {big['operation_reads']} reads, {big['reads_busiest_minute']} in the busiest "
            f"minute, detection p50 {fmt_seconds(lat['p50'])}, p99 {fmt_seconds(lat['p99'])} for a "
            f"{_num(big['poll_interval'])}-s poll interval; {stats['finished_listings']} finished-since lists, "
            f"{stats['reconciliations']} reconciliations, {stats['finished_list_misses']} misses.",
        ]
    profile = steps.get("profile", {})
    scale_profile = profile.get("scale", {})
    worker_profile = profile.get("worker", {})
    if big is not None:
        lag = big["loop_lag"]
        text = (
            f"- **CPU is not the limit.** At {big['count']:,} waits the loop lag p99 is {fmt_seconds(lag['p99'])}; "
            f"the worst wake-up ({fmt_seconds(lag['max'])}) came {_num(big['loop_lag_max_at'])} s after the "
            "trigger tasks were created"
        )
        if big["loop_lag_max_at"] < 1.0:
            text += " (the triggerer also creates a batch of new triggers in one go)"
        text += "."
        if scale_profile.get("available"):
            rate = scale_profile.get("rate", 100)
            areas = ", ".join(f"{name} {_pct(share)}" for name, share in list(scale_profile["areas"].items())[:4])
            text += (
                f" The triggerer profile ({scale_profile['count']:,} waits) used about "
                f"{fmt_seconds(scale_profile['samples'] / rate)} of CPU after start-up, "
                f"{fmt_seconds(scale_profile['samples'] / rate / scale_profile['count'])} per wait; by leaf "
                f"frame: {areas}; {_pct(scale_profile['under_ours_share'])} of samples run under our package."
            )
        if worker_profile.get("available"):
            rate = worker_profile.get("rate", 100)
            per_image = worker_profile["samples"] / rate / worker_profile["images"]
            text += f" The worker path used about {fmt_seconds(per_image)} of CPU per image after start-up "
            text += "(three HTTP calls and a new hook); its wall time is the long-poll."
        lines.append(text)
    lines.append("")
    return lines


def rerun_section(results: dict[str, Any]) -> list[str]:
    """How to reproduce."""
    took = fmt_seconds(results.get("total_seconds", math.nan))
    return [
        "## How to rerun",
        "",
        "```sh",
        f"make bench                                  # everything ({took} here); rewrites this file",
        ".venv/bin/python -m benchmarks.run_all --only calls scale_1000   # some steps (the doc shows only those)",
        "make bench-stack                            # section 7 only: real-stack fleet backups (about 1.5 h)",
        ".venv/bin/python -m benchmarks.bench_calls --help                # any benchmark alone, JSON on stdout",
        ".venv/bin/py-spy record --gil -r 100 -f speedscope -o scale.json -- \\",
        "    .venv/bin/python -m benchmarks.bench_scale --count 2000 --dmin 15 --dmax 30   # a profile to browse",
        "```",
        "",
        "Raw results, per-step logs and the collapsed py-spy stacks are kept in `.artifacts/benchmarks/` "
        "(git-ignored). py-spy comes with the locked dev environment (a dependency of a dependency); nothing is "
        "installed by the benchmarks. `make test` runs only a smoke run of every benchmark at toy sizes "
        "(`tests/integration/test_benchmarks_smoke.py`), which checks that the results are well formed and "
        "never checks a timing.",
        "",
    ]


def render(results: dict[str, Any]) -> str:
    """The whole Markdown document.

    :param results: what :mod:`benchmarks.run_all` collected.
    """
    steps = results["steps"]
    lines = header(results) + goals_section(results)
    if "import" in steps:
        lines += import_section(steps["import"])
    if "calls" in steps:
        lines += calls_section(steps["calls"])
    lines += scale_section(steps)
    if "e2e" in steps:
        lines += e2e_section(steps["e2e"])
    if "profile" in steps:
        lines += profile_section(steps["profile"])
    for shared in _shared_scales(steps):
        lines += shared_section(shared, steps)
    lines += findings_section(results) + rerun_section(results)
    return "\n".join(lines).rstrip() + "\n"
