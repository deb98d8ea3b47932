"""Google's discovery-based client drives the emulator's routes and faults of issue 25: the label-filter
fault of ``instances.aggregatedList`` and ``instances.getSerialPortOutput``."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_machine_images.emulator import ComputeEngineEmulator, Fault

pytestmark = pytest.mark.integration

PROJECT = "fidelity-project"

google_auth_credentials = pytest.importorskip("google.auth.credentials")
discovery = pytest.importorskip("googleapiclient.discovery")
googleapiclient_errors = pytest.importorskip("googleapiclient.errors")


@pytest.fixture
def emu() -> Any:
    with ComputeEngineEmulator(default_project=PROJECT, operation_seconds=0.3, seed=9) as emulator:
        emulator.add_instance("us-central1-a/web-1", labels={"backup": "nightly"})
        emulator.add_instance("us-east1-b/db-1", labels={"backup": "nightly"})
        yield emulator


def compute(emu: ComputeEngineEmulator, version: str) -> Any:
    return discovery.build(
        "compute",
        version,
        static_discovery=True,
        credentials=google_auth_credentials.AnonymousCredentials(),
        client_options={"api_endpoint": f"{emu.url}/compute/{version}/"},
        cache_discovery=False,
    )


def listed(answer: dict[str, Any]) -> set[str]:
    return {i["name"] for scope in answer["items"].values() for i in scope.get("instances", [])}


@pytest.mark.parametrize("version", ["beta", "v1"])
def test_label_filter_drop_thins_only_label_filtered_answers(emu: ComputeEngineEmulator, version: str) -> None:
    instances = compute(emu, version).instances()
    emu.inject(Fault(kind="label_filter_drop", action="instances.aggregatedList", times=2, instance_names=["db-1"]))
    assert listed(instances.aggregatedList(project=PROJECT).execute()) == {"web-1", "db-1"}  # given back
    assert listed(instances.aggregatedList(project=PROJECT, filter="status = RUNNING").execute()) == {"web-1", "db-1"}
    dropped = instances.aggregatedList(project=PROJECT, filter="labels.backup = nightly").execute()
    assert listed(dropped) == {"web-1"}  # silently: no warning, no unreachables
    assert "warning" not in dropped and "unreachables" not in dropped
    assert dropped["items"]["zones/us-east1-b"]["warning"]["code"] == "NO_RESULTS_ON_PAGE"
    assert listed(instances.aggregatedList(project=PROJECT, filter="(labels.backup = nightly)").execute()) == {"web-1"}
    assert listed(instances.aggregatedList(project=PROJECT, filter="labels.backup = nightly").execute()) == {
        "web-1",
        "db-1",
    }  # used up


def test_label_filter_drop_without_names_drops_a_share(emu: ComputeEngineEmulator) -> None:
    instances = compute(emu, "v1").instances()
    emu.inject(Fault(kind="label_filter_drop", times=1, omit_fraction=0.5))
    assert listed(instances.aggregatedList(project=PROJECT, filter="labels.backup = nightly").execute()) == {"web-1"}
    with pytest.raises(ValueError, match="cannot apply"):
        Fault(kind="label_filter_drop", action="machineImages.list")
