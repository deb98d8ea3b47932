"""API calls and detection latency per image, for operations of 10 s, 60 s and 300 s.

Five ways of waiting for one machine-image insert, side by side against one emulator process:

* ``worker``: our worker path, what the operator does: ``insert`` + ``wait_for_operation``
  (``globalOperations.wait`` long-polls) + ``get`` of the image (sync hook).
* ``trigger_lone``: the deferrable path with one waiter in the event loop: ``insert`` (worker),
  :class:`MachineImageOperationTrigger` (long-polls alone), ``get`` (``execute_complete``).
* ``trigger_few``: the same with ``few`` (3) triggers of one project in one event loop: up to
  ``polling.MAX_LONG_POLLS`` waiters each long-poll.
* ``trigger_coalesced``: the same with ``group`` (20) triggers of one project in one event loop, polled
  together by list calls every ``poll_interval`` (10 s).

In both groups the inserts are spread at random over one poll interval, each trigger starting right
after its insert (as each task defers), so completions fall at random phases of a shared cycle.
* ``poll_1s``: insert, then ``globalOperations.get`` every second until DONE: the Google provider's
  strategy (``ComputeEngineHook._wait_for_operation_to_complete`` sleeps ``TIME_TO_SLEEP_IN_SECONDS = 1``).
  No image read-back (Google's hook does none), so it is charged one call less than ours.
* ``poll_10s``: the same every 10 seconds.

**Time scaling.** Every schedule quantity is divided by ``scale`` (default 20): operation
durations, the emulator's wait deadline (120 s), poll intervals (1 s, 10 s, the trigger's 10 s) and
the coalesced poller's request budget is multiplied by it (60 per real minute). Call counts are
unitless and reported as measured. Each detection latency ``L`` (client learns DONE minus the
operation's ``endTime``) is split at the moment the detecting request reached the emulator
(its request log, CLOCK_MONOTONIC): the part the operation sat DONE before anyone asked (``W``, a
fraction of a scaled poll interval) is multiplied by ``scale``; the rest (network, server, parsing,
event loop; it does not shrink with the clock) is kept: ``real = scale * W + (L - W)``. Long-polls
have ``W = 0``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from benchmarks.emulator_process import EmulatorProcess, epoch, project_of
from benchmarks.environment import monotonic_to_epoch_offset, prepare_airflow, use_emulator
from benchmarks.output import emit_json
from benchmarks.stats import median, percentile

if TYPE_CHECKING:
    from collections.abc import Callable

STRATEGIES = ("worker", "trigger_lone", "trigger_few", "trigger_coalesced", "poll_1s", "poll_10s")
GROUPS = frozenset({"trigger_few", "trigger_coalesced"})
REAL_WAIT_DEADLINE = 120.0
REAL_TRIGGER_POLL_INTERVAL = 10.0
REAL_BUDGET_PER_MINUTE = 60.0
ZONE_INSTANCE = "us-central1-a/source-vm"
LIST_ACTIONS = frozenset({"globalOperations.list"})


@dataclass
class Settings:
    """What one run measures.

    :param scale: time is divided by this.
    :param durations: real operation durations, seconds.
    :param samples: images per (strategy, duration) for the non-coalesced strategies.
    :param few: triggers in the ``trigger_few`` group (one group per duration).
    :param group: triggers in the ``trigger_coalesced`` group (one group per duration).
    :param strategies: which strategies to run.
    :param seed: seed for the poll loops' random phase.
    """

    scale: float = 20.0
    durations: tuple[float, ...] = (10.0, 60.0, 300.0)
    samples: int = 5
    few: int = 3
    group: int = 20
    strategies: tuple[str, ...] = STRATEGIES
    seed: int = 11

    def scaled(self, seconds: float) -> float:
        """``seconds`` of real time on the scaled clock."""
        return seconds / self.scale


@dataclass
class Sample:
    """One waited image."""

    strategy: str
    duration: float
    project: str
    image: str
    operation: str
    done_epoch: float
    learned_epoch: float
    measured_latency: float = math.nan
    waiting_part: float = math.nan
    real_latency: float = math.nan
    extra: dict[str, Any] = field(default_factory=dict)


def project_for(strategy: str, duration: float) -> str:
    """The project a (strategy, duration) runs in, so its requests can be told apart.

    :param strategy: the strategy.
    :param duration: the real duration.
    """
    return f"b-{strategy.replace('_', '-')}-{int(duration)}"


def source_of(project: str) -> str:
    """The source instance path in ``project``."""
    zone, name = ZONE_INSTANCE.split("/")
    return f"projects/{project}/zones/{zone}/instances/{name}"


def _hook() -> Any:
    from airflow_machine_images.hooks import ComputeEngineMachineImageHook

    return ComputeEngineMachineImageHook()


def _insert(hook: Any, project: str, image: str) -> dict[str, Any]:
    return dict(
        hook.insert_machine_image(
            body={"name": image}, source_instance=source_of(project), request_id=str(uuid.uuid4()), project_id=project
        )
    )


def _trigger(settings: Settings, project: str, operation: str) -> Any:
    from airflow_machine_images.triggers import MachineImageOperationTrigger
    from benchmarks.triggerer import rebuild

    return rebuild(
        MachineImageOperationTrigger(
            operation_name=operation,
            project_id=project,
            poll_interval=settings.scaled(REAL_TRIGGER_POLL_INTERVAL),
        )
    )


# ---------------------------------------------------------------------- the strategies


def worker_sample(settings: Settings, duration: float, index: int) -> list[Sample]:
    """Our worker path: insert, long-poll until DONE, read the image back."""
    project, image = project_for("worker", duration), f"img-{index}"
    hook = _hook()
    operation = _insert(hook, project, image)
    done = hook.wait_for_operation(
        operation_name=operation["name"],
        project_id=project,
        timeout=duration * 3,
        max_early_backoff=settings.scaled(REAL_TRIGGER_POLL_INTERVAL),
    )
    learned = time.time()
    hook.get_machine_image(name=image, project_id=project)
    return [Sample("worker", duration, project, image, operation["name"], epoch(done["endTime"]), learned)]


def lone_trigger_sample(settings: Settings, duration: float, index: int) -> list[Sample]:
    """The deferrable path with one trigger in its event loop (its long-poll needs no scaled budget)."""
    from benchmarks.triggerer import run_trigger

    project, image = project_for("trigger_lone", duration), f"img-{index}"
    hook = _hook()
    operation = _insert(hook, project, image)

    fired = asyncio.run(run_trigger(_trigger(settings, project, operation["name"])))
    hook.get_machine_image(name=image, project_id=project)
    done = fired.payload["operation"]
    return [Sample("trigger_lone", duration, project, image, operation["name"], epoch(done["endTime"]), fired.received)]


def trigger_group(settings: Settings, duration: float, index: int, *, strategy: str, size: int) -> list[Sample]:
    """``size`` deferrable inserts in one project, their triggers sharing one event loop.

    The inserts are spread at random over one poll interval and each trigger starts right after its
    insert (as each task defers), so completions fall at random phases of the shared poll cycle.
    """
    from benchmarks.triggerer import register_scaled_poller, run_trigger

    project = project_for(strategy, duration)
    hook = _hook()
    images = [f"img-{index}-{n}" for n in range(size)]
    rng = random.Random(f"{settings.seed}-{strategy}-{duration}-{index}")
    offsets = sorted(rng.uniform(0, settings.scaled(REAL_TRIGGER_POLL_INTERVAL)) for _ in images)

    async def insert_then_wait(image: str, offset: float, start: float) -> Any:
        await asyncio.sleep(max(0.0, start + offset - time.monotonic()))
        operation = await asyncio.to_thread(lambda: _insert(_hook(), project, image))  # a task's own hook
        return await run_trigger(_trigger(settings, project, operation["name"]))

    async def wait_all() -> list[Any]:
        await register_scaled_poller(project, REAL_BUDGET_PER_MINUTE * settings.scale)
        start = time.monotonic()
        return list(
            await asyncio.gather(*(insert_then_wait(i, o, start) for i, o in zip(images, offsets, strict=True)))
        )

    fired = asyncio.run(wait_all())
    samples = []
    for image, event in zip(images, fired, strict=True):
        hook.get_machine_image(name=image, project_id=project)
        done = event.payload["operation"]
        samples.append(
            Sample(
                strategy,
                duration,
                project,
                image,
                done["name"],
                epoch(done["endTime"]),
                event.received,
            )
        )
    return samples


def poll_sample(settings: Settings, duration: float, index: int, *, strategy: str, interval: float) -> list[Sample]:
    """Insert, then ``get`` the operation every ``interval`` real seconds until DONE (random phase)."""
    project, image = project_for(strategy, duration), f"img-{index}"
    hook = _hook()
    operation = _insert(hook, project, image)
    pause = settings.scaled(interval)
    # The phase of the loop against completion is random in practice (period = interval + round trip).
    time.sleep(random.Random(f"{settings.seed}-{strategy}-{duration}-{index}").uniform(0, pause))
    while True:
        state = hook.get_operation(operation_name=operation["name"], project_id=project)
        if state["status"] == "DONE":
            learned = time.time()
            break
        time.sleep(pause)
    return [Sample(strategy, duration, project, image, operation["name"], epoch(state["endTime"]), learned)]


def _runner(strategy: str) -> Callable[[Settings, float, int], list[Sample]]:
    def poll_1s(settings: Settings, duration: float, index: int) -> list[Sample]:
        return poll_sample(settings, duration, index, strategy="poll_1s", interval=1.0)

    def poll_10s(settings: Settings, duration: float, index: int) -> list[Sample]:
        return poll_sample(settings, duration, index, strategy="poll_10s", interval=10.0)

    def trigger_few(settings: Settings, duration: float, index: int) -> list[Sample]:
        return trigger_group(settings, duration, index, strategy="trigger_few", size=settings.few)

    def trigger_coalesced(settings: Settings, duration: float, index: int) -> list[Sample]:
        return trigger_group(settings, duration, index, strategy="trigger_coalesced", size=settings.group)

    runners: dict[str, Callable[[Settings, float, int], list[Sample]]] = {
        "worker": worker_sample,
        "trigger_lone": lone_trigger_sample,
        "trigger_few": trigger_few,
        "trigger_coalesced": trigger_coalesced,
        "poll_1s": poll_1s,
        "poll_10s": poll_10s,
    }
    return runners[strategy]


# ---------------------------------------------------------------------- analysis


def attribute_latency(samples: list[Sample], records: list[dict[str, Any]], offset: float, scale: float) -> None:
    """Fill each sample's measured, waiting and real-API latency from the emulator's request log.

    The detecting request is the first request of the wait that finished after the operation became
    DONE: ``get``/``wait`` calls naming the operation, or (coalesced) any list call of the project (an
    abandoned long-poll is not an answer there, though the server finishes it when the operation ends),
    else its own ``wait`` (a coalesced group's last few waiters go back to long-polls).

    :param samples: the samples (updated in place).
    :param records: the emulator's request log.
    :param offset: epoch minus CLOCK_MONOTONIC.
    :param scale: the time scale.
    """
    for sample in samples:
        after = [r for r in records if project_of(r) == sample.project and r["finished"] + offset >= sample.done_epoch]
        own = [r for r in after if r["path"].split("/")[7:8] == [sample.operation]]
        lists = [r for r in after if r["action"] in LIST_ACTIONS]
        candidates = (lists or own) if sample.strategy == "trigger_coalesced" else own
        sample.measured_latency = sample.learned_epoch - sample.done_epoch
        if not candidates:
            continue
        detecting = min(candidates, key=lambda r: r["finished"])
        sample.waiting_part = max(0.0, detecting["started"] + offset - sample.done_epoch)
        sample.real_latency = scale * sample.waiting_part + (sample.measured_latency - sample.waiting_part)


def call_counts(records: list[dict[str, Any]], project: str) -> Counter[str]:
    """Requests per action in ``project``.

    :param records: the emulator's request log.
    :param project: the project.
    """
    return Counter(r["action"] for r in records if project_of(r) == project)


def call_bound(duration: float) -> int:
    """The goal: at most 2 + ceil(duration / wait deadline) + 1 calls per image.

    :param duration: real seconds.
    """
    return 2 + math.ceil(duration / REAL_WAIT_DEADLINE) + 1


def summarise(settings: Settings, samples: list[Sample], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (strategy, duration): calls per image, latency percentiles, goal bound.

    :param settings: the run's settings.
    :param samples: every sample.
    :param records: the emulator's request log.
    """
    rows = []
    for strategy in settings.strategies:
        for duration in settings.durations:
            mine = [s for s in samples if s.strategy == strategy and s.duration == duration]
            if not mine:
                continue
            counts = call_counts(records, mine[0].project)
            images = len(mine)
            real = [s.real_latency for s in mine if not math.isnan(s.real_latency)]
            measured = [s.measured_latency for s in mine]
            rows.append(
                {
                    "strategy": strategy,
                    "duration": duration,
                    "images": images,
                    "calls_per_image": sum(counts.values()) / images,
                    "calls_by_action": {action: n / images for action, n in sorted(counts.items())},
                    "call_bound": call_bound(duration),
                    "latency_real_p50": percentile(real, 50),
                    "latency_real_p95": percentile(real, 95),
                    "latency_real_max": max(real) if real else math.nan,
                    "latency_measured_p50": median(measured),
                    "latency_measured_max": max(measured),
                }
            )
    return rows


# ---------------------------------------------------------------------- driver


#: The project of the untimed warm-up image (its requests are never attributed to a strategy).
WARM_UP_PROJECT = "bench-warm-up"


def warm_up(settings: Settings) -> None:
    """Make one image the worker's way, untimed, in a project of its own.

    The first strategy's samples run in threads of a fresh process: without this, they would pay the
    process's one-time start-up (the hook's first connection lookup, the transports' imports) all at
    once, between their insert and their wait, and charge it to detection latency.

    :param settings: what to measure (the warm-up's operation lasts the shortest scaled duration).
    """
    hook = _hook()
    operation = _insert(hook, WARM_UP_PROJECT, "warm-up")
    hook.wait_for_operation(operation_name=operation["name"], project_id=WARM_UP_PROJECT, timeout=60)
    hook.get_machine_image(name="warm-up", project_id=WARM_UP_PROJECT)


def run(settings: Settings) -> dict[str, Any]:
    """Run every strategy (one after another; samples and durations of one strategy concurrently).

    :param settings: what to measure.
    :return: JSON-ready results.
    """
    prepare_airflow()
    started = time.monotonic()
    with EmulatorProcess(wait_deadline=settings.scaled(REAL_WAIT_DEADLINE)) as emulator:
        use_emulator(emulator.url)
        offset = monotonic_to_epoch_offset()
        for strategy in settings.strategies:
            for duration in settings.durations:
                emulator.add_instance(
                    ZONE_INSTANCE, project_for(strategy, duration), operation_seconds=settings.scaled(duration)
                )
        emulator.add_instance(
            ZONE_INSTANCE, WARM_UP_PROJECT, operation_seconds=settings.scaled(min(settings.durations))
        )
        warm_up(settings)
        samples: list[Sample] = []
        for strategy in settings.strategies:
            runner = _runner(strategy)
            jobs = 1 if strategy in GROUPS else settings.samples
            with ThreadPoolExecutor(max_workers=jobs * len(settings.durations)) as pool:
                futures = []
                for index in range(jobs):
                    for duration in settings.durations:
                        futures.append(pool.submit(_staggered, runner, settings, duration, index))
                for future in futures:
                    samples.extend(future.result())
        records = emulator.requests()
    attribute_latency(samples, records, offset, settings.scale)
    return {
        "settings": asdict(settings),
        "real_wait_deadline": REAL_WAIT_DEADLINE,
        "real_trigger_poll_interval": REAL_TRIGGER_POLL_INTERVAL,
        "rows": summarise(settings, samples, records),
        "samples": [asdict(s) for s in samples],
        "elapsed": time.monotonic() - started,
    }


def _staggered(
    runner: Callable[[Settings, float, int], list[Sample]], settings: Settings, duration: float, index: int
) -> list[Sample]:
    # Random start offsets: samples neither finish in the same millisecond nor at the same phase of
    # poll loops that may fall into step with each other (they share one emulator and one GIL).
    time.sleep(random.Random(f"{settings.seed}-start-{duration}-{index}").uniform(0.0, 0.25))
    return runner(settings, duration, index)


def main(argv: list[str] | None = None) -> int:
    """Command line: print the results as JSON (or write them with ``--out``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=20.0, help="time is divided by this (default 20)")
    parser.add_argument("--durations", type=float, nargs="+", default=[10.0, 60.0, 300.0], help="real seconds")
    parser.add_argument("--samples", type=int, default=5, help="images per strategy and duration")
    parser.add_argument("--few", type=int, default=3, help="triggers in the trigger_few group")
    parser.add_argument("--group", type=int, default=20, help="triggers in the trigger_coalesced group")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--out", help="write JSON here instead of stdout")
    args = parser.parse_args(argv)
    settings = Settings(
        scale=args.scale,
        durations=tuple(args.durations),
        samples=args.samples,
        few=args.few,
        group=args.group,
        strategies=tuple(args.strategies),
    )
    results = run(settings)
    emit_json(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
