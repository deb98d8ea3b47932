"""Destructive-operations campaign (issue 22): drills, foreign cleanups and retention against a faulty server.

The emulator (a separate process) answers a random share of every API request with 429/500/503, a dropped
connection, an answer carried out but never delivered, an answer slower than the client's timeout, a
``wait`` that returns at once, or an operation that fails (``RESOURCE_OPERATION_RATE_EXCEEDED``). On top
come the issue's faults, as the real service produces them:

- **protected images and surviving disks**: drills restore images of a protected source and of sources
  whose data disks do not auto-delete; every drill's cleanup must leave no instance and no disk;
- **taken disks**: some drills' boot-disk names are taken by a disk an earlier instance left; their restore
  must fail once (no Airflow retry) naming the disk, and that disk must survive;
- **foreign instances**: production VMs restored by a disaster-recovery DAG, carrying the restore labels;
  cleanups aimed at them (a name from ``dag_run.conf``) must be refused, never retried;
- **re-made names**: while retention prunes, another pipeline re-makes every pruned name at once (a new id,
  outside the selector); no re-made image may be deleted.

Tasks are retried as Airflow retries them (same task instance, next try); deferrable and blocking modes are
mixed. The audit reads the server's books: 0 duplicates (one successful insert per drill at most), 0 lost
(nothing of a drill left billing), 0 wrong deletions (every delete operation's ``targetId`` is something the
tasks own).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest

from airflow_machine_images.bodies.instance import restore_labels
from airflow_machine_images.operators import (
    ComputeEngineDeleteRestoredInstanceOperator,
    ComputeEngineMachineImageRetentionOperator,
    ComputeEngineRestoreMachineImageOperator,
)
from tests.reliability.conftest import PROJECT, connection_json
from tests.reliability.harness import SUMMARIES, EmulatorProcess, TaskSpec, run_campaign

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow.sdk import BaseOperator

    from tests.reliability.harness import ClientSettings, TaskOutcome

pytestmark = pytest.mark.reliability

DRILLS = int(os.environ.get("RELIABILITY_DRILLS", "40"))
FAULT_RATE = float(os.environ.get("RELIABILITY_DESTRUCTIVE_FAULT_RATE", "0.3"))
SEED = int(os.environ.get("RELIABILITY_SEED", "20260"))
WORKERS = 12
RETRIES = 4
ZONE = "us-central1-a"
OPERATION_SECONDS = 0.3
SLOW_SECONDS = 3.0
DAG_ID = "drill_dag"
KINDS = ["status", "drop", "accept_then_drop", "slow", "early_wait", "operation_error"]
#: Sources: one plain, one whose data disk survives its instance, one protected with a surviving disk.
SOURCES = {
    "plain": {"disks": [{"autoDelete": True}]},
    "disks": {"disks": [{"autoDelete": True}, {"autoDelete": False, "sizeGb": 20}]},
    "protected": {"disks": [{"autoDelete": True}, {"autoDelete": False}], "deletion_protection": True},
}
FOREIGN = 4
RETAINED_SOURCES = 3
OLD_PER_SOURCE = 4


@dataclass(frozen=True)
class DrillSpec(TaskSpec):
    """A campaign task: a restore, a cleanup (delete-restored) or a retention run."""

    kind: str = "restore"


@pytest.fixture
def faulty_emulator(fast_clients: ClientSettings, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorProcess]:
    emulator = EmulatorProcess(
        project=PROJECT, instances=(), operation_seconds=OPERATION_SECONDS, wait_deadline=1.0, seed=SEED
    )
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", connection_json(emulator.url))
    try:
        yield emulator
    finally:
        emulator.stop()


def make_operator(spec: TaskSpec) -> BaseOperator:
    waits: dict[str, Any] = {"poll_interval": 0.2, "timeout": 120, "retries": RETRIES, "retry_delay": timedelta(0)}
    kind = spec.kind if isinstance(spec, DrillSpec) else "restore"
    if kind == "restore":
        return ComputeEngineRestoreMachineImageOperator(
            task_id=spec.task_id,
            name=spec.name,
            zone=ZONE,
            source_machine_image=spec.source_instance,  # the image, in this campaign
            deferrable=spec.deferrable,
            deletion_protection=None if spec.map_index % 4 < 2 else False,  # half keep the image's protection
            **waits,
        )
    if kind == "retention":
        return ComputeEngineMachineImageRetentionOperator(
            task_id=spec.task_id, label_selector={"managed-by": "airflow"}, keep_last=1, timeout=60, retries=0
        )
    return ComputeEngineDeleteRestoredInstanceOperator(
        task_id=spec.task_id, name=spec.name, zone=ZONE, deferrable=spec.deferrable, **waits
    )


def seed(emulator: EmulatorProcess) -> dict[str, Any]:
    """Sources and their images, left-over disks in the way of some drills, foreign restored VMs."""
    for source, settings in SOURCES.items():
        emulator.control("POST", "instances", {"instance": f"{ZONE}/src-{source}", **settings})
        emulator.control("POST", "machineImages", {"name": f"img-{source}", "source_instance": f"{ZONE}/src-{source}"})
    leftovers = {
        f"drill-{i:03d}": emulator.control("POST", "disks", {"name": f"drill-{i:03d}", "zone": ZONE})["id"]
        for i in range(DRILLS)
        if i % 6 == 5
    }
    foreign = {}
    for k in range(FOREIGN):
        labels = {**restore_labels("img-plain", dag_id="disaster-recovery", restore_id=f"{k:032x}")}
        made = emulator.control(
            "POST",
            "instances",
            {"instance": f"{ZONE}/prod-{k}", "labels": labels, **SOURCES["protected" if k % 2 else "disks"]},
        )
        foreign[made["id"]] = f"prod-{k}"
    return {"leftovers": leftovers, "foreign": foreign}


def drill_specs(kind: str) -> list[DrillSpec]:
    images = list(SOURCES)
    return [
        DrillSpec(
            dag_id=DAG_ID,
            task_id=kind,
            run_id=f"campaign__{SEED}",
            map_index=i,
            name=f"drill-{i:03d}",
            source_instance=f"img-{images[i % len(images)]}",
            deferrable=bool(i % 2),
            kind=kind,
        )
        for i in range(DRILLS)
    ]


def foreign_cleanup_specs() -> list[DrillSpec]:
    return [
        DrillSpec(DAG_ID, "cleanup_conf", f"campaign__{SEED}", k, f"prod-{k}", "", bool(k % 2), kind="delete")
        for k in range(FOREIGN)
    ]


class Remaker:
    """Another pipeline: the moment a planned image is gone, it makes a new image of that name (another
    source, outside the selector), once per name."""

    def __init__(self, emulator: EmulatorProcess, names: set[str]) -> None:
        self.emulator, self.pending, self.made = emulator, set(names), {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="remaker", daemon=True)

    def _run(self) -> None:
        while self.pending and not self._stop.wait(0.02):
            present = {image["name"] for image in self.emulator.machine_images()}
            for name in sorted(self.pending - present):
                body = {"name": name, "source_instance": f"{ZONE}/src-plain", "labels": {"team": "other"}}
                self.made[name] = self.emulator.control("POST", "machineImages", body)["id"]
                self.pending.discard(name)

    def __enter__(self) -> Remaker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def seed_retention(emulator: EmulatorProcess) -> tuple[dict[str, str], set[str]]:
    """Old managed images per source (all but the newest planned for deletion); return id -> name, the planned."""
    old = datetime.now(timezone.utc) - timedelta(days=3)
    ids, planned = {}, set()
    for s in range(RETAINED_SOURCES):
        emulator.control("POST", "instances", {"instance": f"{ZONE}/ret-src-{s}"})
        for n in range(OLD_PER_SOURCE):
            name = f"ret-{s}-{n}"
            made = emulator.control(
                "POST",
                "machineImages",
                {
                    "name": name,
                    "source_instance": f"{ZONE}/ret-src-{s}",
                    "labels": {"managed-by": "airflow"},
                    "creation_timestamp": (old + timedelta(hours=n)).isoformat(),
                },
            )
            ids[made["id"]] = name
            if n < OLD_PER_SOURCE - 1:
                planned.add(name)
    return ids, planned


def zonal_operations(emulator: EmulatorProcess) -> list[dict[str, Any]]:
    return list(emulator.control("GET", f"operations?project={PROJECT}&zone={ZONE}"))


def settled(emulator: EmulatorProcess) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    deadline = time.monotonic() + 60
    while True:
        zonal, global_ = zonal_operations(emulator), emulator.operations()
        if all(op.get("status") == "DONE" for op in zonal + global_) or time.monotonic() > deadline:
            return zonal, global_
        time.sleep(0.2)


def final_error(outcome: TaskOutcome) -> str:
    return str(outcome.final_error or "")


@dataclass
class Campaign:
    """What the campaign's tasks reported."""

    restores: list[TaskOutcome]
    cleanups: list[TaskOutcome]
    refusals: list[TaskOutcome]
    retention: list[TaskOutcome]
    remade: dict[str, str]
    pending: set[str]
    seconds: float


def run_phases(emu: EmulatorProcess, planned: set[str]) -> Campaign:
    """Drills (restores, then their cleanups), foreign cleanups, then retention against another pipeline."""
    started = time.monotonic()
    restores, _ = run_campaign(drill_specs("restore"), make_operator, retries=RETRIES, workers=WORKERS)
    cleanups, _ = run_campaign(drill_specs("delete"), make_operator, retries=RETRIES, workers=WORKERS)
    refusals, _ = run_campaign(foreign_cleanup_specs(), make_operator, retries=RETRIES, workers=WORKERS)
    with Remaker(emu, planned) as remaker:
        retention: list[TaskOutcome] = []
        for attempt in range(8):  # runs (new task instances) until each planned name is pruned, each re-planning
            if attempt == 7:
                emu.clear_faults()  # a run that fails on a fault deletes the rest: the last one runs clean
            spec = DrillSpec(DAG_ID, "prune", f"retention__{attempt}", -1, "prune", "", False, kind="retention")
            retention += run_campaign([spec], make_operator, retries=0, workers=1)[0]
            time.sleep(0.3)  # the remaker sees the last deletions
            if not remaker.pending:
                break
    return Campaign(
        restores, cleanups, refusals, retention, dict(remaker.made), set(remaker.pending), time.monotonic() - started
    )


def check_outcomes(campaign: Campaign, taken: dict[str, str]) -> None:
    """Every task ended as it must: restores succeed but where a disk is in the way (one try, naming it),
    cleanups succeed, foreign cleanups are refused on their first try."""
    for outcome in campaign.restores:
        if outcome.spec.name in taken:
            assert not outcome.succeeded and len(outcome.tries) == 1, (outcome.spec.name, outcome.tries)
            assert f"disks/{outcome.spec.name}" in final_error(outcome), final_error(outcome)
        else:
            assert outcome.succeeded, (outcome.spec.name, final_error(outcome))
    failed = [(o.spec.name, final_error(o)) for o in campaign.cleanups if not o.succeeded]
    assert failed == []
    for outcome in campaign.refusals:
        assert not outcome.succeeded and len(outcome.tries) == 1, outcome.tries
        assert "restored by another DAG" in final_error(outcome), final_error(outcome)


def audit_books(
    emu: EmulatorProcess, seeded: dict[str, Any], before: set[str], retained: dict[str, str], remade: dict[str, str]
) -> dict[str, Any]:
    """The server's books against the tasks: duplicates, lost, wrong deletions (see the module docstring).

    :param before: ids of every instance and disk that existed before the campaign.
    :param retained: id -> name of the images retention was seeded with.
    :param remade: name -> id of the images the other pipeline re-made.
    """
    zonal, global_ = settled(emu)
    taken, planned = seeded["leftovers"], set(seeded["planned"])
    good = Counter(
        str(op["targetLink"]).rsplit("/", 1)[-1]
        for op in zonal
        if op["operationType"] == "insert" and not op.get("error")
    )
    instances = emu.control("GET", f"instances?project={PROJECT}")
    disks = emu.control("GET", f"disks?project={PROJECT}")
    lost = [i["name"] for i in instances if i["name"].startswith("drill-")]
    lost += [d["name"] for d in disks if d["name"].startswith("drill-") and d["id"] != taken.get(d["name"])]
    made_by_drills = {str(op["targetId"]) for op in zonal if op["operationType"] == "insert"}
    untouchable = before | set(remade.values())
    wrong = [op for op in zonal if op["operationType"] == "delete" and str(op["targetId"]) in untouchable]
    wrong += [op for op in zonal if op["operationType"] == "delete" and "/instances/" in op["targetLink"]
              and str(op["targetId"]) not in made_by_drills]  # fmt: skip
    wrong += [
        op for op in global_ if op["operationType"] == "delete" and retained.get(str(op["targetId"])) not in planned
    ]
    images = {i["name"]: i["id"] for i in emu.machine_images()}
    return {
        "duplicates": [name for name, count in good.items() if count > 1],
        "lost": lost,
        "wrong": wrong,
        "survivors": {i["id"] for i in instances} | {d["id"] for d in disks},
        "images": images,
        "pruned": sorted(name for image_id, name in retained.items() if images.get(name) != image_id),
    }


@pytest.mark.timeout(600)
def test_destructive_campaign(faulty_emulator: EmulatorProcess) -> None:
    emu = faulty_emulator
    seeded = seed(emu)
    retained, planned = seed_retention(emu)
    seeded["planned"] = sorted(planned)
    before = {i["id"] for i in emu.control("GET", f"instances?project={PROJECT}")}
    before |= {d["id"] for d in emu.control("GET", f"disks?project={PROJECT}")}
    emu.random_faults(rate=FAULT_RATE, kinds=KINDS, retry_after_seconds=1, slow_seconds=SLOW_SECONDS, seed=SEED)
    campaign = run_phases(emu, planned)
    emu.clear_faults()
    books = audit_books(emu, seeded, before, retained, campaign.remade)
    requests = emu.requests()
    faults = Counter(str(r["fault"]) for r in requests if r.get("fault"))
    sent = Counter(str(r["action"]) for r in requests)
    SUMMARIES.append(
        f"[destructive] {DRILLS} drills ({len(seeded['leftovers'])} with a taken boot disk), {FOREIGN} foreign "
        f"cleanups, retention of {len(planned)} planned images with re-made names, in {campaign.seconds:.1f} s: "
        f"duplicates {len(books['duplicates'])}, lost {len(books['lost'])}, wrong deletions {len(books['wrong'])}\n"
        f"  API requests {len(requests)}, faulted {sum(faults.values())} "
        f"({sum(faults.values()) / max(1, len(requests)):.1%}): {dict(sorted(faults.items()))}\n"
        f"  instances.insert {sent['instances.insert']}, "
        f"setDeletionProtection {sent['instances.setDeletionProtection']}, "
        f"disks.delete {sent['disks.delete']}; retention pruned {len(books['pruned'])}, re-made {len(campaign.remade)} "
        f"in {len(campaign.retention)} runs; tries per cleanup {dict(Counter(len(o.tries) for o in campaign.cleanups))}"
    )
    check_outcomes(campaign, seeded["leftovers"])
    assert books["duplicates"] == []
    assert books["lost"] == []
    assert books["wrong"] == []
    assert before <= books["survivors"]  # every foreign instance and disk survives
    assert all(books["images"].get(name) == made for name, made in campaign.remade.items())  # re-made ones survive
    assert sorted(campaign.remade) == sorted(planned) == books["pruned"]
    assert {"status", "drop", "accept_then_drop", "operation_error"} <= set(faults), faults
    assert sent["instances.setDeletionProtection"] >= 1 and sent["disks.delete"] >= 1
