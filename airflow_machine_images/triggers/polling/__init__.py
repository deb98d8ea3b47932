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

Budgets. Every call of every poller of one project in the process (operations, global and per zone;
machine images) takes a slot of the project's request window (:mod:`.windows`: one per event loop and
project), which the first poller makes with the triggerer's share of the configured per-project total
(:mod:`airflow_machine_images.triggers.budget`): no sliding minute sees more than that share from the
process, whatever the kinds and zones. A waiter whose task set a total of its own brings its share of
it (never more than the project's), which applies to that waiter only: the reads made for it alone (its
long-polls and read-backs) keep to it, while a read it shares with other waiters (a list, another
waiter's long-poll of the same operation) costs it nothing extra and keeps to the most generous budget
among the waiters it serves. A cycle follows the soonest check any waiter wants (its ``poll_interval``,
no sooner than its budget allows), so a smaller budget never slows the other waiters.

The modules, by job: :mod:`.coalescing` (the generic poller: waiters, the cycle loop, budget pacing,
long-polls), :mod:`.operations`, :mod:`.machine_images` and :mod:`.run_images` (the pollers per
resource), :mod:`.windows` (the request windows: per project, per waiter) and :mod:`.registry` (the
process-wide pollers: :func:`poller_for`, :func:`active_pollers`). Everything is
importable from here. All of them log to this package's logger.
"""

from __future__ import annotations

from airflow_machine_images.triggers.polling import (
    coalescing,
    machine_images,
    operations,
    registry,
    run_images,
    windows,
)
from airflow_machine_images.triggers.polling.coalescing import (
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
from airflow_machine_images.triggers.polling.windows import BUDGET_WINDOW_SECONDS, RequestWindow, project_window

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
    "RequestWindow",
    "Resource",
    "RunImagesPoller",
    "active_pollers",
    "chunks",
    "coalescing",
    "machine_images",
    "name_filter",
    "operations",
    "poller_for",
    "project_window",
    "registry",
    "run_images",
    "windows",
]
