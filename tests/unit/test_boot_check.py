"""The boot check's parts without HTTP: the console reader, the patterns, the trigger (a fake async hook),
the operator's parse-time checks and the emulator's console buffer."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest

from airflow_machine_images.api.serial_console import (
    DEFAULT_BOOT_PATTERN,
    DEFAULT_FAILURE_PATTERN,
    TAIL_CHARS,
    TAIL_LINES,
    ConsoleChunk,
    ConsoleReader,
)
from airflow_machine_images.emulator.serial_console import SerialConsoles
from airflow_machine_images.exceptions import MachineImageValidationError, MalformedResponseError
from airflow_machine_images.operators import (
    ComputeEngineRestoreMachineImageOperator,
    ComputeEngineVerifyBootOperator,
)
from airflow_machine_images.triggers import InstanceBootTrigger
from airflow_machine_images.validation.console import validate_console_pattern

BOOT = re.compile(DEFAULT_BOOT_PATTERN, re.MULTILINE)
FAILURE = re.compile(DEFAULT_FAILURE_PATTERN, re.MULTILINE)


def reader(position: int = 0) -> ConsoleReader:
    return ConsoleReader(BOOT, FAILURE, position=position)


def chunk(contents: str, start: int, next_: int | str) -> ConsoleChunk:
    return ConsoleChunk.from_answer({"contents": contents, "start": str(start), "next": next_}, start)


# -------------------------------------------------------------------------------- the reader


def test_the_position_is_the_answers_next_never_the_length_of_the_text() -> None:
    console = reader()
    console.take(chunk("café\r\n", 0, "7"))  # "é" is two bytes: 7 bytes, 6 characters
    assert console.position == 7 and console.verdict is None
    console.take(chunk("", 7, "7"))
    assert console.position == 7 and console.reads == 2


def test_a_start_later_than_asked_counts_the_bytes_the_buffer_discarded() -> None:
    console = reader(position=100)
    console.take(ConsoleChunk.from_answer({"contents": "x\n", "start": "5000", "next": "5002"}, 100))
    assert (console.skipped, console.position) == (4900, 5002)
    assert "4900 byte(s) discarded" in console.failure_message("instance i", "no boot line")


def test_a_boot_line_split_across_answers_matches_once_whole() -> None:
    console = reader()
    assert console.take(chunk("[  OK  ] Reached target multi-us", 0, 32)) is None
    verdict = console.take(chunk("er.target - Multi-User System.\r\n", 32, 64))
    assert verdict is not None and verdict.booted
    assert verdict.line == "[  OK  ] Reached target multi-user.target - Multi-User System."


@pytest.mark.parametrize(
    "line",
    [
        "[\x1b[0;32m  OK  \x1b[0m] Reached target Multi-User System.",
        "[  OK  ] Reached target multi-user.target - Multi-User System.",
        "web-1 login: ",
        "Cloud-init v. 23.1.2 finished at Sun, 06 Dec 2026 02:00:00 +0000. Datasource DataSourceGCE.  Up 9.1 seconds",
        "GCEInstanceSetup: Instance setup finished. web-1 is ready to use.",
        "Windows is ready to use",
    ],
)
def test_the_default_pattern_knows_the_usual_boot_lines(line: str) -> None:
    verdict = reader().take(chunk(line, 0, len(line.encode())))  # the last one unfinished: a prompt
    assert verdict is not None and verdict.booted


@pytest.mark.parametrize(
    "line",
    ["[  OK  ] Reached target Basic System.", "Started google-guest-agent.service", "Last login: yesterday", ""],
)
def test_the_default_pattern_ignores_lines_before_the_boot(line: str) -> None:
    assert reader().take(chunk(line + "\n", 0, len(line) + 1)) is None


def test_the_first_deciding_line_wins_a_panic_before_a_prompt_fails() -> None:
    text = "Kernel panic - not syncing: VFS\nweb-1 login: "
    verdict = reader().take(chunk(text, 0, len(text)))
    assert verdict is not None and not verdict.booted and verdict.line.startswith("Kernel panic")
    later = reader()
    text = "web-1 login: \nKernel panic - not syncing: VFS\n"
    assert later.take(chunk(text, 0, len(text))).booted  # type: ignore[union-attr]


def test_the_tail_is_bounded_cleaned_and_scrubbed() -> None:
    console = reader()
    noisy = "".join(f"line {i} \x1b[31mred\x1b[0m \x07bell \u202eevil {'x' * 500}\r\n" for i in range(1000))
    console.take(chunk(noisy, 0, len(noisy)))
    key = "iGoFxsC3/j6Gj2nqhBQ+Zb1DJrJxXSmU+9cQkLk8lD0="  # shaped like a raw 256-bit key
    console.take(chunk(f"secret {key}\n", len(noisy), len(noisy) + 52))
    tail = console.tail()
    assert len(tail) <= TAIL_CHARS and len(tail.splitlines()) <= TAIL_LINES
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f\u202e]", tail)
    assert "line 999 red bell evil" in tail and key not in tail


def test_a_console_with_no_output_says_so() -> None:
    assert reader().tail() == "(no console output)"


@pytest.mark.parametrize(
    "answer",
    [{"contents": "x"}, {"start": "10", "next": "5"}, {"start": "0", "next": "ten"}, {"next": True}],
)
def test_an_answer_without_a_usable_next_is_malformed(answer: dict[str, Any]) -> None:
    with pytest.raises(MalformedResponseError):
        ConsoleChunk.from_answer(answer, 0)


# -------------------------------------------------------------------------------- patterns


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("Reached (target", "does not compile"),
        ("login:|", "must not match an empty line"),
        (".*", "must not match an empty line"),
        ("", "1 to 1000 characters"),
        ("x" * 1001, "1 to 1000 characters"),
        (42, "regular expression"),
    ],
)
def test_a_bad_pattern_is_refused_naming_the_parameter(value: object, rule: str) -> None:
    with pytest.raises(MachineImageValidationError, match=rf"^Invalid boot_pattern: .*{re.escape(rule)}"):
        validate_console_pattern(value, "boot_pattern")


def test_the_operator_refuses_a_bad_literal_pattern_when_the_dag_is_parsed() -> None:
    with pytest.raises(MachineImageValidationError, match="Invalid failure_pattern"):
        ComputeEngineVerifyBootOperator(task_id="t", instance_name="web-1", zone="z-a", failure_pattern="(")
    with pytest.raises(MachineImageValidationError, match="Invalid port"):
        ComputeEngineVerifyBootOperator(task_id="t", instance_name="web-1", zone="z-a", port=5)
    with pytest.raises(MachineImageValidationError, match="Invalid boot_pattern"):
        ComputeEngineRestoreMachineImageOperator(
            task_id="t", name="r", zone="z-a", source_machine_image="i", verify_boot=True, boot_pattern="("
        )
    templated = ComputeEngineVerifyBootOperator(task_id="t", instance_name="x", zone="z", boot_pattern="{{ p }}")
    assert templated.boot_pattern == "{{ p }}"  # checked once rendered


# -------------------------------------------------------------------------------- the trigger


class FakeHook:
    """Serves ``log`` growing by ``step`` bytes per read (after ``empty_first`` empty reads), cut at ``cut``."""

    def __init__(self, log: str, step: int, cut: int = 10_000, empty_first: int = 0) -> None:
        self.log, self.step, self.cut, self.empty_first = log.encode(), step, cut, empty_first
        self.starts: list[int] = []
        self.nexts: list[int] = []

    async def get_serial_port_output(self, *, zone: str, name: str, start: int, port: int, project_id: str) -> Any:
        self.starts.append(start)
        written = self.log[: max(0, len(self.starts) - self.empty_first) * self.step]
        part = written[start : start + self.cut]
        self.nexts.append(start + len(part))
        return {"contents": part.decode("utf-8", "replace"), "start": str(start), "next": str(start + len(part))}


def trigger(**overrides: Any) -> InstanceBootTrigger:
    kwargs: dict[str, Any] = {
        "zone": "us-central1-a",
        "instance": "web-1",
        "boot_pattern": DEFAULT_BOOT_PATTERN,
        "failure_pattern": DEFAULT_FAILURE_PATTERN,
        "project_id": "demo-project",
        "poll_interval": 0.01,
        "deadline": time.time() + 30,
    }
    return InstanceBootTrigger(**{**kwargs, **overrides})


def run_with(made: InstanceBootTrigger, hook: FakeHook, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    async def fake_hook() -> FakeHook:
        return hook

    monkeypatch.setattr(made, "_async_hook", fake_hook)

    async def first_event() -> dict[str, Any]:
        async for event in made.run():
            return dict(event.payload)
        raise AssertionError("no event")

    return asyncio.run(first_event())


LOG = "SeaBIOS\r\n[  OK  ] Reached target Multi-User System.\r\nweb-1 login: "


def test_the_trigger_reads_each_byte_once_from_each_answers_next(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = FakeHook(LOG, step=7, cut=5, empty_first=2)
    event = run_with(trigger(), hook, monkeypatch)
    assert event["status"] == "success" and "Reached target" in event["line"]
    assert hook.starts[:3] == [0, 0, 0]  # nothing written yet: the same start, nothing read twice
    assert hook.starts[1:] == hook.nexts[:-1]  # each read from the last answer's next: no byte served twice
    assert event["position"] == hook.nexts[-1] and event["reads"] == len(hook.starts)


def test_a_trigger_made_again_after_a_restart_reads_from_its_start_kwarg(monkeypatch: pytest.MonkeyPatch) -> None:
    first = trigger(start=9)
    classpath, kwargs = first.serialize()
    assert classpath == "airflow_machine_images.triggers.InstanceBootTrigger"
    assert kwargs["start"] == 9 and "contents" not in kwargs and "line" not in kwargs
    again = InstanceBootTrigger(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    hook = FakeHook(LOG, step=len(LOG))
    event = run_with(again, hook, monkeypatch)
    assert hook.starts[0] == 9 and event["status"] == "success"


def test_a_panic_ends_the_trigger_with_the_console_tail(monkeypatch: pytest.MonkeyPatch) -> None:
    log = "Booting\r\nVFS: Cannot open root device\r\nKernel panic - not syncing: VFS\r\n"
    event = run_with(trigger(), FakeHook(log, step=len(log)), monkeypatch)
    assert event["status"] == "error" and event["reason"] == "boot_not_verified"
    assert "VFS: Cannot open root device" in event["message"]
    assert "the console shows 'Kernel panic - not syncing: VFS'" in event["message"]  # at once, not at the deadline


def test_the_deadline_ends_the_trigger_with_the_console_tail(monkeypatch: pytest.MonkeyPatch) -> None:
    event = run_with(trigger(deadline=time.time() + 0.3), FakeHook("Booting\r\nstill booting", step=3), monkeypatch)
    assert event["reason"] == "boot_not_verified" and "no boot line by the task's deadline" in event["message"]
    assert "still booting" in event["message"]


@pytest.mark.parametrize(
    ("overrides", "parameter"),
    [
        ({"boot_pattern": "("}, "boot_pattern"),
        ({"start": -1}, "start"),
        ({"port": 9}, "port"),
        ({"zone": "A/B"}, "zone"),
    ],
)
def test_tampered_trigger_kwargs_end_in_an_error_event_before_any_read(
    monkeypatch: pytest.MonkeyPatch, overrides: dict[str, Any], parameter: str
) -> None:
    hook = FakeHook(LOG, step=100)
    event = run_with(trigger(**overrides), hook, monkeypatch)
    assert event["reason"] == "invalid_argument" and f"Invalid {parameter}" in event["message"]
    assert hook.starts == []


# -------------------------------------------------------------------------------- the emulator's buffer


class _Instance:
    project, zone, name = "p", "z", "web-1"


def test_the_emulator_keeps_the_last_buffer_bytes_and_moves_an_old_start_forward() -> None:
    consoles = SerialConsoles()
    consoles.set_boot_log("z/web-1", project="p", lines=["a" * 98] * 10, boot_seconds=0)  # 1000 bytes
    consoles.configure(buffer_bytes=300, answer_bytes=0)
    contents, start, next_ = consoles.read(_Instance(), 1.0, 0)  # type: ignore[arg-type]
    assert (start, next_, len(contents)) == (700, 1000, 300)
    assert consoles.read(_Instance(), 1.0, -50)[1:] == (950, 1000)  # type: ignore[arg-type]
    assert consoles.read(_Instance(), 1.0, -5000)[1:] == (700, 1000)  # bounded by the buffer
    assert consoles.read(_Instance(), 1.0, 1500) == (b"", 1500, 1500)  # type: ignore[arg-type]
    assert consoles.read(_Instance(), -1.0, 0) == (b"", 0, 0)  # type: ignore[arg-type]
    consoles.configure(answer_bytes=64)
    assert consoles.read(_Instance(), 1.0, 800)[1:] == (800, 864)  # type: ignore[arg-type]
