"""Metrics (issue 25, item 5): Airflow's StatsD configuration pointed at a UDP listener on 127.0.0.1 receives
the package's metrics from a real dag.test() run against the emulator.

dag.test() runs tasks and triggers in this process, where nothing initialises Airflow's ``Stats`` (a task
runner, a triggerer and a scheduler each do it at start, from ``[metrics]``); the fixture does what they do,
from the same configuration, and puts the backend back afterwards.

Airflow's StatsD backend needs the ``statsd`` client library (the ``apache-airflow[statsd]`` extra), which
this project does not depend on and may not add. So the fixture provides a module of that name with the
smallest ``StatsClient`` that speaks the StatsD line protocol (``prefix.name:value|type`` over UDP, as the
statsd package and the StatsD spec write it); everything between our code and that client is Airflow's
own (its ``Stats``, its StatsD logger with its name validation, prefix and allow lists).
"""

from __future__ import annotations

import socket
import sys
import types
from typing import TYPE_CHECKING, Any

import pytest

from airflow_machine_images.emulator import Fault
from tests.integration.conftest import load_dag, task_states

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_machine_images.emulator import ComputeEngineEmulator

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]


class LineProtocolClient:
    """The StatsD line protocol over UDP: the subset of ``statsd.StatsClient`` Airflow's logger calls."""

    def __init__(self, host: str, port: int, prefix: str | None = None, ipv6: bool = False) -> None:
        self._address, self._prefix = (host, port), f"{prefix}." if prefix else ""
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def _send(self, stat: str, value: Any, kind: str) -> None:
        self._socket.sendto(f"{self._prefix}{stat}:{value}|{kind}".encode(), self._address)

    def incr(self, stat: str, count: int = 1, rate: float = 1) -> None:
        self._send(stat, count, "c")

    def decr(self, stat: str, count: int = 1, rate: float = 1) -> None:
        self._send(stat, -count, "c")

    def gauge(self, stat: str, value: float, rate: float = 1, delta: bool = False) -> None:
        self._send(stat, value, "g")

    def timing(self, stat: str, delta: Any, rate: float = 1) -> None:
        milliseconds = delta.total_seconds() * 1000 if hasattr(delta, "total_seconds") else delta
        self._send(stat, f"{milliseconds:.3f}", "ms")


@pytest.fixture
def statsd(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A UDP socket on 127.0.0.1, and Airflow's StatsD settings naming it, with ``Stats`` built from them."""
    from airflow.providers.common.compat.sdk import Stats
    from airflow.sdk.observability.metrics.stats_utils import get_stats_factory

    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(0.2)
    client_library = types.ModuleType("statsd")
    client_library.StatsClient = LineProtocolClient  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "statsd", client_library)
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_ON", "True")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_HOST", "127.0.0.1")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PORT", str(listener.getsockname()[1]))
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PREFIX", "airflow")
    stats: Any = sys.modules[Stats.__module__]
    before = stats._factory, stats._backend, stats._export_legacy_names
    Stats.initialize(factory=get_stats_factory(), export_legacy_names=False)
    try:
        yield listener
    finally:
        stats._factory, stats._backend, stats._export_legacy_names = before
        listener.close()


def received(listener: socket.socket) -> list[str]:
    """Every StatsD line that reached the listener (``name:value|type``)."""
    lines: list[str] = []
    while True:
        try:
            packet = listener.recv(65536)
        except TimeoutError:
            return lines
        lines.extend(packet.decode().splitlines())


def test_a_run_sends_requests_retries_latency_images_and_coverage_to_statsd(
    gcp_connection: ComputeEngineEmulator, statsd: socket.socket
) -> None:
    gcp_connection.add_instance("us-central1-a/web-2", labels={"backup": "nightly"})
    gcp_connection.add_instance("us-central1-a/web-3", labels={"backup": "nightly"})  # never imaged: a gap
    gcp_connection.inject(Fault(kind="status", action="machineImages.insert", times=1, status=503))
    dag_run = load_dag("ami_test_metrics").test()
    assert task_states(dag_run) == {
        "make_kept": "success",
        "make_dropped": "success",
        "delete": "success",
        "coverage": "failed",  # web-3 has no image
    }
    lines = received(statsd)
    names = {line.split(":", 1)[0] for line in lines}
    values = {line.split(":", 1)[0]: line.split(":", 1)[1] for line in lines}
    assert "airflow.machine_images.api.requests.machineImages.insert.ok" in names
    assert "airflow.machine_images.api.requests.machineImages.insert.transient_api" in names
    assert "airflow.machine_images.api.retries.transient_api" in names
    assert "airflow.machine_images.api.requests.machineImages.delete.ok" in names
    assert "airflow.machine_images.detection_latency.triggerer" in names  # the deferred insert
    assert "airflow.machine_images.detection_latency.worker" in names
    assert values["airflow.machine_images.detection_latency.worker"].endswith("|ms")
    assert sum(1 for line in lines if line.startswith("airflow.machine_images.images.created:")) == 2
    assert values["airflow.machine_images.images.deleted"] == "1|c"
    assert values["airflow.machine_images.coverage.gaps"] == "1|g"
    age = values["airflow.machine_images.coverage.newest_image_age.test-project.us-central1-a.web-2"]
    assert age.endswith("|g") and 0 <= float(age.split("|")[0]) < 600
    assert not any("web-3" in name for name in names if "newest_image_age" in name)  # no image: no age
