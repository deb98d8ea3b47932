"""The analysis of the several-triggerers benchmark: the split of the waits and the pooled figures."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from benchmarks.bench_scale import PROJECT, Workload
from benchmarks.bench_triggerers import analyse_shared, combine, split
from benchmarks.report import shared_goals
from benchmarks.request_trace import request_record

OFFSET = 1_000_000.0  # epoch = monotonic + OFFSET in these made-up runs
BUDGET = {"total": 60, "triggerers": 2, "share": 30}
WORKLOAD = Workload(7, dmin=30.0, dmax=90.0)
OPERATIONS = f"/compute/beta/projects/{PROJECT}/global/operations"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds")


def _measured(start: float, seconds: float, *, events: int, lag: float, rss_kib: int) -> dict[str, Any]:
    """One process's ``wait_all`` results: ``events`` operations each detected 2 s after its end."""
    ends = [start + seconds * (i + 1) / (events + 1) for i in range(events)]
    return {
        "started": start,
        "finished": start + seconds,
        "events": [("success", _iso(end), end + 2.0) for end in ends],
        "loop_lag": [0.001, lag],
        "loop_lag_max_at": lag * 100,
        "rss_baseline_kib": rss_kib,
        "rss_peak_kib": rss_kib + 1024,
        "rss_end_kib": rss_kib + 512,
        "hwm_reset": True,
        "poller_stats": [{"calls": 1, "long_polls": 0, "cycles": 1, "gets": 0, "warned_cycles": 0}],
    }


def _lists(times: list[float]) -> list[dict[str, Any]]:
    """``globalOperations.list`` requests sent at these epoch times, as records (monotonic clock)."""
    return [request_record("GET", OPERATIONS, t - OFFSET) for t in times]


def _share(measured: dict[str, Any], sent: list[float]) -> dict[str, Any]:
    waits = len(measured["events"])
    return {"pid": 1, "waits": waits, "budget": BUDGET, "measured": measured, "requests": _lists(sent)}


def _run(first: list[float], second: list[float]) -> dict[str, Any]:
    """Two triggerers, each waiting 200 s and sending lists at the given epoch times; the emulator saw both."""
    start = OFFSET + 100.0
    shares = [
        _share(_measured(start, 200.0, events=4, lag=0.02, rss_kib=100 * 1024), first),
        _share(_measured(start + 1.0, 200.0, events=3, lag=0.05, rss_kib=110 * 1024), second),
    ]
    received = _lists(sorted(first + second))
    return analyse_shared(WORKLOAD, 1.0, shares, received, OFFSET, 0.0)


def test_split_alternates_every_wait_to_exactly_one_triggerer() -> None:
    operations = [f"op-{i}" for i in range(7)]
    assert split(operations, 2) == [["op-0", "op-2", "op-4", "op-6"], ["op-1", "op-3", "op-5"]]
    assert split(operations, 3) == [["op-0", "op-3", "op-6"], ["op-1", "op-4"], ["op-2", "op-5"]]
    assert split(operations, 1) == [operations]
    assert sorted(name for share in split(operations, 4) for name in share) == operations


def test_split_refuses_no_triggerers() -> None:
    with pytest.raises(ValueError, match="triggerers must be >= 1"):
        split(["op-0"], 0)


def test_combine_pools_events_and_sums_memory() -> None:
    one = _measured(10.0, 50.0, events=2, lag=0.02, rss_kib=1000)
    two = _measured(12.0, 60.0, events=3, lag=0.07, rss_kib=2000)
    whole = combine([one, two])
    assert (whole["started"], whole["finished"]) == (10.0, 72.0)
    assert whole["events"] == one["events"] + two["events"]
    assert sorted(whole["loop_lag"]) == sorted(one["loop_lag"] + two["loop_lag"])
    assert whole["loop_lag_max_at"] == two["loop_lag_max_at"]  # the process with the worst lag
    assert whole["rss_baseline_kib"] == 3000 and whole["rss_peak_kib"] == 3000 + 2048
    assert len(whole["poller_stats"]) == 2


@pytest.mark.parametrize(
    ("lag", "whole"),
    [
        pytest.param(1.0, 60, id="same-minute: each within its share, the project sees both"),
        pytest.param(100.0, 30, id="minutes-apart: the whole is not the sum of each busiest minute"),
    ],
)
def test_busiest_minute_of_the_whole_counts_both_triggerers_together(lag: float, whole: int) -> None:
    # Each triggerer sends 30 lists within one minute; the second's come ``lag`` seconds after the first's.
    first = [OFFSET + 110.0 + 2 * i for i in range(30)]
    result = _run(first, [t + lag for t in first])
    assert result["reads_busiest_minute"] == whole
    assert [p["reads_busiest_minute"] for p in result["processes"]] == [30, 30]
    assert result["operation_reads"] == 60 and [p["operation_reads"] for p in result["processes"]] == [30, 30]


def test_shared_result_reports_waits_latency_and_budget_per_triggerer() -> None:
    result = _run([OFFSET + 150.0], [OFFSET + 160.0])
    assert result["count"] == 7 and [p["count"] for p in result["processes"]] == [4, 3]
    assert result["triggerers"] == 2 and result["split"] == "alternate" and result["budget"] == BUDGET
    assert result["detection_latency"]["n"] == 7
    assert result["detection_latency"]["p99"] == pytest.approx(2.0, abs=0.01)
    assert result["rss_baseline_mib"] == 210 and [p["rss_baseline_mib"] for p in result["processes"]] == [100, 110]
    assert result["loop_lag"]["max"] == 0.05


def test_shared_result_refuses_triggerers_with_different_budgets() -> None:
    start = OFFSET + 100.0
    shares = [_share(_measured(start, 200.0, events=1, lag=0.01, rss_kib=1024), []) for _ in range(2)]
    shares[1]["budget"] = {"total": 60, "triggerers": 1, "share": 60}
    with pytest.raises(RuntimeError, match="different budgets"):
        analyse_shared(WORKLOAD, 1.0, shares, [], OFFSET, 0.0)


def test_client_records_are_classified_as_the_emulator_classifies_requests() -> None:
    assert request_record("GET", OPERATIONS, 1.0)["action"] == "globalOperations.list"
    assert request_record("GET", f"{OPERATIONS}/op-1", 1.0)["action"] == "globalOperations.get"
    assert request_record("POST", f"{OPERATIONS}/op-1/wait", 1.0)["action"] == "globalOperations.wait"
    insert = request_record("POST", f"/compute/beta/projects/{PROJECT}/global/machineImages", 2.0)
    assert insert == {
        "action": "machineImages.insert",
        "method": "POST",
        "path": f"/compute/beta/projects/{PROJECT}/global/machineImages",
        "started": 2.0,
    }


@pytest.mark.parametrize(
    ("whole", "each", "met"),
    [
        pytest.param(60, [30, 30], [True, True], id="at-the-limits"),
        pytest.param(61, [30, 31], [False, False], id="one-over-each"),
        pytest.param(55, [31, 24], [True, False], id="one-triggerer-over-its-share"),
    ],
)
def test_report_goals_hold_the_whole_to_the_total_and_each_triggerer_to_its_share(
    whole: int, each: list[int], met: list[bool]
) -> None:
    run = {
        "count": 1000,
        "triggerers": 2,
        "budget": BUDGET,
        "reads_busiest_minute": whole,
        "reads_per_minute_mean": 40.0,
        "processes": [{"reads_busiest_minute": n} for n in each],
    }
    goals = shared_goals(run)
    assert [goal.met for goal in goals] == met
    assert [goal.target for goal in goals] == ["<= 60 (the configured total)", "<= 30 (total // 2)"]
    assert goals[1].measured == f"busiest 60 s: {each[0]}, {each[1]}"
