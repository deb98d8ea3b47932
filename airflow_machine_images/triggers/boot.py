"""The boot check's wait: a restored instance's serial console read in the triggerer until it shows a boot
line (or a failure line), or the task's deadline passes.

The kwargs are identifiers and settings: the instance (name or numeric id), zone, port, the two patterns,
the byte to read from, the deadline and the connection. No console text travels in them. The reading
position cannot be written back into a trigger row, so a trigger re-created after a triggerer restart
reads again from the ``start`` it was made with: the bytes since then are read once more and judged
again (the first deciding line is the same line), nothing is skipped.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from airflow_machine_images.api.serial_console import ConsoleChunk, ConsoleReader
from airflow_machine_images.events import (
    EVENT_BOOT_NOT_VERIFIED,
    EVENT_INVALID_ARGUMENT,
)
from airflow_machine_images.exceptions import ComputeEngineError, MachineImageValidationError
from airflow_machine_images.triggers.waits import _ComputeEngineTrigger
from airflow_machine_images.validation import validate_instance_name, validate_zone
from airflow_machine_images.validation.console import validate_console_pattern, validate_serial_port
from airflow_machine_images.validation.primitives import show_value

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow_machine_images.compat import TriggerEvent
    from airflow_machine_images.hooks.asynchronous import ComputeEngineMachineImageAsyncHook

__all__ = ["InstanceBootTrigger"]


class InstanceBootTrigger(_ComputeEngineTrigger):
    """Read an instance's serial console until a line matches ``boot_pattern``; yield one event.

    Each read asks from the previous answer's ``next``
    (:class:`~airflow_machine_images.api.serial_console.ConsoleReader`): no byte is asked for twice. The
    pause between reads is ``poll_interval`` after an answer with nothing new and at most a second after
    new output, never shorter than this wait's share of ``requests_per_minute_per_project`` allows.

    The ``success`` event carries ``line`` (the matching line), ``position``, ``skipped`` and ``reads``;
    an ``error`` event with reason ``boot_not_verified`` carries a message quoting the console's last
    lines (cleaned of control characters, bounded).

    :param zone: the instance's zone.
    :param instance: its name or numeric id.
    :param boot_pattern: the "booted" regular expression, searched in each console line.
    :param failure_pattern: the "will not boot" regular expression, or None.
    :param port: the serial port, 1 to 4.
    :param start: the first byte to read.
    :param project_id: the instance's project.
    :param gcp_conn_id: the Airflow connection to Google Cloud.
    :param impersonation_chain: service account(s) to impersonate.
    :param api_version: ``beta`` or ``v1``.
    :param api_endpoint: another API root (e.g. the emulator), one ``[machine_images] allowed_endpoints`` lists.
    :param poll_interval: seconds between reads that brought nothing new.
    :param deadline: the task's deadline (seconds since the epoch).
    :param event_extra: JSON-serialisable data returned unchanged in the event.
    :param requests_per_minute_per_project: this wait's total budget for the project across all
        triggerers, instead of ``[machine_images] requests_per_minute_per_project`` (None: that).
    """

    def __init__(
        self,
        *,
        zone: str,
        instance: str,
        boot_pattern: str,
        failure_pattern: str | None = None,
        port: int = 1,
        start: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.zone = zone
        self.instance = instance
        self.boot_pattern = boot_pattern
        self.failure_pattern = failure_pattern
        self.port = port
        self.start = start

    def _own_kwargs(self) -> dict[str, Any]:
        return {
            "zone": self.zone,
            "instance": self.instance,
            "boot_pattern": self.boot_pattern,
            "failure_pattern": self.failure_pattern,
            "port": self.port,
            "start": self.start,
        }

    def _check_own_kwargs(self) -> None:
        validate_zone(self.zone)
        validate_instance_name(self.instance, "instance")
        validate_console_pattern(self.boot_pattern, "boot_pattern")
        if self.failure_pattern is not None:
            validate_console_pattern(self.failure_pattern, "failure_pattern")
        validate_serial_port(self.port)
        if isinstance(self.start, bool) or not isinstance(self.start, int) or self.start < 0:
            raise MachineImageValidationError("start", "must be a whole number >= 0", show_value(self.start))

    def _where(self) -> str:
        return f"instance {self.instance} in {self.zone} (project {self.project_id}, serial port {self.port})"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Read the console until a deciding line or the deadline; yield the outcome."""
        problem = self._problem(self._check_own_kwargs) or await self._read_budget() or await self._check_endpoint()
        if problem:
            yield self._event("error", problem, EVENT_INVALID_ARGUMENT, instance=self.instance)
            return
        failure = None if self.failure_pattern is None else validate_console_pattern(self.failure_pattern, "")
        reader = ConsoleReader(validate_console_pattern(self.boot_pattern, ""), failure, position=self.start)
        self.log.info("Reading the serial console of %s from byte %d", self._where(), self.start)
        try:
            await self._wait(self._read_until_verdict(await self._async_hook(), reader))
        except asyncio.TimeoutError:
            message = reader.failure_message(self._where(), "no boot line by the task's deadline")
            yield self._event("error", message, EVENT_BOOT_NOT_VERIFIED, instance=self.instance)
            return
        except ComputeEngineError as error:
            yield self._api_error_event(error, instance=self.instance)
            return
        verdict = reader.verdict
        if verdict is None or not verdict.booted:
            shown = verdict.line if verdict is not None else ""
            message = reader.failure_message(self._where(), f"the console shows {shown!r}")
            yield self._event("error", message, EVENT_BOOT_NOT_VERIFIED, instance=self.instance)
            return
        yield self._event(
            "success",
            f"Boot of {self._where()} verified: {verdict.line!r}",
            instance=self.instance,
            line=verdict.line,
            position=reader.position,
            skipped=reader.skipped,
            reads=reader.reads,
        )

    async def _read_until_verdict(self, hook: ComputeEngineMachineImageAsyncHook, reader: ConsoleReader) -> None:
        """Read from the reader's position, each time from the last ``next``, until a deciding line.

        :param hook: the async hook.
        :param reader: the reader (its verdict is the outcome).
        """
        least = 0.0 if self.max_requests_per_minute is None else 60.0 / self.max_requests_per_minute
        while True:
            asked = reader.position
            answer = await hook.get_serial_port_output(
                zone=self.zone, name=self.instance, start=asked, port=self.port, project_id=self.project_id
            )
            chunk = ConsoleChunk.from_answer(answer, asked)
            if reader.take(chunk) is not None:
                return
            await asyncio.sleep(max(least, reader.pause(chunk, float(self.poll_interval))))
