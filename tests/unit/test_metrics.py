"""Metrics: the names and tags sent, budget waits in the request window, and a backend that fails."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from airflow_machine_images import metrics
from airflow_machine_images.exceptions import RateLimitedError
from airflow_machine_images.triggers.polling import windows


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, tuple[Any, ...], dict[str, Any] | None]] = []

    def __getattr__(self, kind: str) -> Any:
        return lambda name, *args, tags=None: self.sent.append((kind, name, args, tags))


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, tuple[Any, ...], dict[str, Any] | None]]:
    recorder = Recorder()
    monkeypatch.setattr(metrics, "Stats", recorder)
    return recorder.sent


def test_names_carry_their_dimensions_and_only_statsd_safe_characters(sent: list[Any]) -> None:
    metrics.api_request("machineImages.insert", metrics.error_kind(RateLimitedError("slow down")))
    metrics.newest_image_age("p", "us-central1-a", "web 1/x", 12.5)
    assert sent[0] == (
        "incr",
        "machine_images.api.requests.machineImages.insert.rate_limited",
        (),
        {"method": "machineImages.insert", "outcome": "rate_limited"},
    )
    assert sent[1][1] == "machine_images.coverage.newest_image_age.p.us-central1-a.web_1_x"


def test_a_wait_for_the_request_budget_is_counted_and_timed(sent: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(windows, "BUDGET_WINDOW_SECONDS", 0.2)

    async def two_calls_in_a_window_of_one() -> None:
        window = windows.RequestWindow(1)
        await window.take()
        await window.take()

    asyncio.run(two_calls_in_a_window_of_one())
    assert [(kind, name) for kind, name, _, _ in sent] == [
        ("incr", "machine_images.budget.waits"),
        ("timing", "machine_images.budget.wait"),
    ]
    assert 150 <= sent[1][2][0] < 5000  # milliseconds


def test_a_failing_backend_never_fails_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def __getattr__(self, kind: str) -> Any:
            raise OSError("no route to statsd")

    monkeypatch.setattr(metrics, "Stats", Broken())
    metrics.images_created()
    metrics.coverage_gaps("p", 3)
