"""Coalesced polling: many waits in one project, few API calls.

Quota, not CPU, is what breaks fleet backups at scale: a thousand triggers that each poll their
own operation every ten seconds spend six thousand requests a minute. Here every trigger in a
triggerer process that waits on the same project (through the same connection, endpoint and API
version) registers with one :class:`CoalescingPoller`, which reads the state of all of them with a
handful of list calls per cycle and wakes each waiter when its resource reaches a final state.

* Operations (:class:`OperationPoller`): one paged ``globalOperations.list`` of the operations that
  finished since the last cycle (:mod:`airflow_machine_images.triggers.finished_operations`) gives both the
  completions and their outcome; operations not yet seen unfinished are read first, and every few
  cycles all of them (the unfinished list, or name filters, whichever takes fewer calls), which
  finds anything the filtered lists missed. While at most :data:`MAX_LONG_POLLS` waiters wait,
  each long-polls ``globalOperations.wait`` instead, so it learns of completion at once (that many
  waits of up to two minutes cost no more calls than one list every 10 s); beyond that the polls are
  coalesced (the long-polls are abandoned), and long-polling resumes when at most half as many remain.
* Machine images (:class:`MachineImagePoller`): ``machineImages.list`` with chunked name filters.
* The images of a fleet backup run (:class:`RunImagesPoller`): ``machineImages.list`` filtered by the
  run's ``airflow-ti`` label, one wait per run whatever its number of images.

A list is not a snapshot and not evidence of absence: a list answer may carry a ``warning``
(``UNREACHABLE``, ``PARTIAL_SUCCESS``, ``LIST_OVERHEAD_QUOTA_EXCEED``: discovery documents,
``OperationList``/``MachineImageList``) and leave items out. So a waited-for resource that the lists
do not show is read on its own (``globalOperations.get`` / ``machineImages.get``) before its absence
ends any wait; only a 404 there says it does not exist. The warnings are logged once per cycle.

A cycle's calls are spread so that one project never sees more than ``max_requests_per_minute``
from one process; the cycle interval is the smallest ``poll_interval`` any waiter asked for. The
triggers make a poller with their triggerer's share of the configured per-project total as its
default budget (:mod:`airflow_machine_images.triggers.budget`), and a waiter whose task set a total of its own
brings its share of that; a poller keeps to the smallest budget among its waiters still waiting (the
default for those that brought none), the reading that never exceeds the budget of any of them.

The modules, by job: :mod:`.coalescing` (the generic poller: waiters, the cycle loop, budget pacing,
long-polls), :mod:`.operations`, :mod:`.machine_images` and :mod:`.run_images` (the pollers per resource) and
:mod:`.registry` (the process-wide pollers: :func:`poller_for`, :func:`active_pollers`). Everything is
importable from here. All of them log to this package's logger.
"""

from __future__ import annotations

from airflow_machine_images.triggers.polling import coalescing, machine_images, operations, registry, run_images
from airflow_machine_images.triggers.polling.coalescing import (
    BUDGET_WINDOW_SECONDS,
    CHUNK_SIZE,
    MAX_FAILED_CYCLES,
    MAX_LONG_POLLS,
    CoalescingPoller,
    IsFinal,
    PollerStats,
    Resource,
    chunks,
    name_filter,
)
from airflow_machine_images.triggers.polling.machine_images import MachineImagePoller
from airflow_machine_images.triggers.polling.operations import LIST_PAGE_SIZE, RECONCILE_EVERY_CYCLES, OperationPoller
from airflow_machine_images.triggers.polling.registry import active_pollers, poller_for
from airflow_machine_images.triggers.polling.run_images import RunImagesPoller

__all__ = [
    "BUDGET_WINDOW_SECONDS",
    "CHUNK_SIZE",
    "LIST_PAGE_SIZE",
    "MAX_FAILED_CYCLES",
    "MAX_LONG_POLLS",
    "RECONCILE_EVERY_CYCLES",
    "CoalescingPoller",
    "IsFinal",
    "MachineImagePoller",
    "OperationPoller",
    "PollerStats",
    "Resource",
    "RunImagesPoller",
    "active_pollers",
    "chunks",
    "coalescing",
    "machine_images",
    "name_filter",
    "operations",
    "poller_for",
    "registry",
    "run_images",
]
