"""Verifying that a restored instance booted: its serial console read on until a boot line (or a failure
line) appears, or the task's deadline passes.

Compute Engine reports RUNNING as soon as the VM is scheduled; a broken boot disk or a kernel panic still
reads RUNNING. What the guest writes to serial port 1 is the evidence. The reads go through
:meth:`~airflow_machine_images.hooks.instances.InstanceHookMethods.get_serial_port_output` (the hook's
retries and answer mapping), each from the previous answer's ``next``
(:class:`~airflow_machine_images.api.serial_console.ConsoleReader`); the trigger
(:class:`~airflow_machine_images.triggers.boot.InstanceBootTrigger`) runs the same reader in the triggerer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_machine_images.api.serial_console import ConsoleChunk, ConsoleReader
from airflow_machine_images.exceptions import BootNotVerifiedError
from airflow_machine_images.results import boot_check_summary
from airflow_machine_images.validation import validate_instance_name, validate_project_id, validate_zone
from airflow_machine_images.validation.console import validate_console_pattern, validate_serial_port

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_machine_images.api.serial_console import BootVerdict
    from airflow_machine_images.flows.deadlines import Deadline
    from airflow_machine_images.hooks.sync import ComputeEngineMachineImageHook
    from airflow_machine_images.logs import TaskLogger


@dataclass(frozen=True)
class BootCheck:
    """Which console to read and what to look for; checked when made (:meth:`checked`).

    :param project_id: the instance's project.
    :param zone: its zone.
    :param instance: its name, or its numeric id (then only that very instance is read).
    :param boot_pattern: the "booted" pattern, searched in each console line.
    :param failure_pattern: the "will not boot" pattern, or None.
    :param port: the serial port, 1 to 4.
    """

    project_id: str
    zone: str
    instance: str
    boot_pattern: str
    failure_pattern: str | None
    port: int = 1

    @classmethod
    def checked(cls, **arguments: Any) -> BootCheck:
        """A check whose every field was validated (before any request).

        :param arguments: the fields, as given.
        :raises MachineImageValidationError: a field breaks its rule (the message names it).
        """
        check = cls(**arguments)
        validate_project_id(check.project_id)
        validate_zone(check.zone)
        validate_instance_name(check.instance, "instance")
        validate_console_pattern(check.boot_pattern, "boot_pattern")
        if check.failure_pattern is not None:
            validate_console_pattern(check.failure_pattern, "failure_pattern")
        validate_serial_port(check.port)
        return check

    def reader(self, position: int = 0) -> ConsoleReader:
        """A reader of this console from ``position``.

        :param position: the first byte to ask for.
        """
        failure = self.failure_pattern
        failing = None if failure is None else validate_console_pattern(failure, "failure_pattern")
        return ConsoleReader(validate_console_pattern(self.boot_pattern, "boot_pattern"), failing, position=position)

    def where(self) -> str:
        """The instance, for messages."""
        return f"instance {self.instance} in {self.zone} (project {self.project_id}, serial port {self.port})"

    def summary(self, verdict_line: str, *, position: int, skipped: int, reads: int) -> dict[str, Any]:
        """The XCom of a check that saw its boot line.

        :param verdict_line: the line that matched.
        :param position: how far the console was read.
        :param skipped: bytes the service had discarded before they could be read.
        :param reads: answers taken.
        """
        return boot_check_summary(
            project_id=self.project_id,
            zone=self.zone,
            instance=self.instance,
            port=self.port,
            line=verdict_line,
            position=position,
            skipped=skipped,
            reads=reads,
        )


def read_once(hook: ComputeEngineMachineImageHook, check: BootCheck, reader: ConsoleReader) -> ConsoleChunk:
    """Read the console once, from where the reader stands; the answer (already taken by the reader).

    :param hook: the sync hook.
    :param check: the check.
    :param reader: the reader (its position moves to the answer's ``next``).
    """
    asked = reader.position
    answer = hook.get_serial_port_output(
        zone=check.zone, name=check.instance, start=asked, port=check.port, project_id=check.project_id
    )
    chunk = ConsoleChunk.from_answer(answer, asked)
    reader.take(chunk)
    return chunk


def outcome(check: BootCheck, reader: ConsoleReader, verdict: BootVerdict) -> dict[str, Any]:
    """The summary of a boot line, or the error of a failure line.

    :param check: the check.
    :param reader: the reader that reached the verdict.
    :param verdict: its verdict.
    :raises BootNotVerifiedError: the failure pattern matched.
    """
    if not verdict.booted:
        raise BootNotVerifiedError(reader.failure_message(check.where(), f"the console shows {verdict.line!r}"))
    return check.summary(verdict.line, position=reader.position, skipped=reader.skipped, reads=reader.reads)


def wait_for_boot(
    hook: ComputeEngineMachineImageHook,
    check: BootCheck,
    *,
    deadline: Deadline,
    poll_interval: float,
    log: TaskLogger,
) -> dict[str, Any]:
    """Read the console from its first byte until the boot or the failure line, or the deadline.

    :param hook: the sync hook.
    :param check: the check.
    :param deadline: the task's deadline.
    :param poll_interval: seconds between reads that brought nothing new.
    :param log: the task's logger.
    :raises BootNotVerifiedError: the failure line, or no boot line by the deadline (the last lines quoted).
    """
    reader = check.reader()
    log.info("Reading the serial console of %s until a boot line appears", check.where())
    while True:
        chunk = read_once(hook, check, reader)
        if reader.verdict is not None:
            return outcome(check, reader, reader.verdict)
        pause = reader.pause(chunk, poll_interval)
        if deadline.remaining() <= pause:
            raise BootNotVerifiedError(reader.failure_message(check.where(), "no boot line by the task's deadline"))
        time.sleep(pause)


def summary_from_event(check: BootCheck, event: Mapping[str, Any]) -> dict[str, Any]:
    """The summary a successful trigger event reports.

    :param check: the check.
    :param event: the event (``line``, ``position``, ``skipped``, ``reads``).
    """
    return check.summary(
        str(event.get("line", "")),
        position=int(event.get("position") or 0),
        skipped=int(event.get("skipped") or 0),
        reads=int(event.get("reads") or 0),
    )
