"""The fleet backup's one wait: until nothing of the run is on the way, whatever the fleet's size.

The trigger's kwargs identify the run, never its instances: the project holding the images, the run's
``airflow-ti`` label value, how many images the run expects, when a refill round hands back, the
deadline and the connection settings. Its serialized row is the same size for 10 instances as for
5,000. The per-instance table stays with the task (an XCom of its own task instance), which reads the
exact outcomes when it resumes.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Final

from airflow_machine_images.events import EVENT_INVALID_ARGUMENT, EVENT_TIMEOUT
from airflow_machine_images.exceptions import ComputeEngineError, MachineImageValidationError
from airflow_machine_images.planning.fleet_backup import RunProgress
from airflow_machine_images.triggers.polling.run_images import RunImagesPoller
from airflow_machine_images.triggers.waits import _ComputeEngineTrigger
from airflow_machine_images.validation.primitives import full_match, show_value

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

    from airflow_machine_images.compat import TriggerEvent

__all__ = ["FleetBackupTrigger"]

#: A run's label value: a task-instance key (``flows.request_ids.task_instance_key``), 32 hex digits.
_RUN_LABEL_PATTERN: Final = r"[0-9a-f]{32}"


def _count(value: object, parameter: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MachineImageValidationError(parameter, "must be a whole number >= 0", show_value(value))
    return value


class FleetBackupTrigger(_ComputeEngineTrigger):
    """Wait until no image of a fleet backup run is on the way to READY; yield one event.

    Every cycle of the shared :class:`~airflow_machine_images.triggers.polling.RunImagesPoller` lists
    the images carrying the run's label (one call per 500 images, within the project's request
    budget); :class:`~airflow_machine_images.planning.fleet_backup.RunProgress` decides when to hand
    back. The event carries ``run_label``, ``progress`` (``images``: how many the lists showed,
    ``pending``: how many were on the way) and ``extra`` (``event_extra`` unchanged).

    :param run_label: the ``airflow-ti`` label value every image of the run carries.
    :param expected: images the run expects (READY ones included).
    :param pending_at_most: hand back once at most this many are on the way (a refill round); 0: none.
    :param project_id: the project holding the images.
    :param gcp_conn_id: the Airflow connection to Google Cloud.
    :param impersonation_chain: service account(s) to impersonate.
    :param api_version: ``beta`` or ``v1``.
    :param api_endpoint: another API root (e.g. the emulator).
    :param poll_interval: seconds between lists.
    :param deadline: the task's deadline (seconds since the epoch).
    :param event_extra: JSON-serialisable data returned unchanged in the event.
    :param requests_per_minute_per_project: this wait's total budget for the project across all
        triggerers, instead of ``[machine_images] requests_per_minute_per_project`` (None: that).
    """

    def __init__(self, *, run_label: str, expected: int, pending_at_most: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run_label = run_label
        self.expected = expected
        self.pending_at_most = pending_at_most

    def _own_kwargs(self) -> dict[str, Any]:
        return {"run_label": self.run_label, "expected": self.expected, "pending_at_most": self.pending_at_most}

    def _check_own_kwargs(self) -> None:
        full_match(_RUN_LABEL_PATTERN, self.run_label, "run_label", "must be a task-instance key (32 hex digits)")
        _count(self.expected, "expected")
        _count(self.pending_at_most, "pending_at_most")

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait (one label-filtered list per cycle, shared per project) and yield the run's progress."""
        run = self.run_label
        problem = self._problem(self._check_own_kwargs) or await self._read_budget()
        if problem:
            yield self._event("error", problem, EVENT_INVALID_ARGUMENT, run_label=run)
            return
        progress = RunProgress(expected=self.expected, pending_at_most=self.pending_at_most)

        def handed_back(resource: Mapping[str, Any] | None) -> bool:
            return resource is not None and progress.take(resource.get("images") or {}, bool(resource.get("complete")))

        self.log.info(
            "Waiting for %d image(s) of run %s in project %s (handing back at %d on the way)",
            self.expected,
            run,
            self.project_id,
            self.pending_at_most,
        )
        try:
            poller = self._poller(RunImagesPoller, await self._async_hook(), self.project_id)
            await self._wait(poller.wait_for(run, handed_back, self.poll_interval, self.max_requests_per_minute))
        except asyncio.TimeoutError:
            message = f"Images of run {run} in project {self.project_id} were still being made at the task's deadline"
            yield self._event("error", message, EVENT_TIMEOUT, run_label=run, progress=self._counts(progress))
            return
        except ComputeEngineError as error:
            yield self._api_error_event(
                error,
                run_label=run,
                progress=self._counts(progress),
            )
            return
        message = f"Run {run}: {len(progress.seen)} image(s) seen, {progress.pending} on the way"
        yield self._event("success", message, run_label=run, progress=self._counts(progress))

    @staticmethod
    def _counts(progress: RunProgress) -> dict[str, int]:
        return {"images": len(progress.seen), "pending": progress.pending}
