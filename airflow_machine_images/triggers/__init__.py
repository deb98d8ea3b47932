"""Triggers: waits that run in the triggerer, so a waiting task holds no worker slot.

Every trigger class is importable from here, and triggers serialize under this package's path
(``airflow_machine_images.triggers.<Class>``), so trigger rows stay loadable whichever module a class
lives in. The coalescing pollers the triggers share live in :mod:`.polling`, the finished-since lists
in :mod:`.finished_operations` and the per-project request budget in :mod:`.budget`.
"""

from __future__ import annotations

from airflow_machine_images.triggers.boot import InstanceBootTrigger
from airflow_machine_images.triggers.fleet_backup import FleetBackupTrigger
from airflow_machine_images.triggers.source_limit import SourceLimitWaitTrigger
from airflow_machine_images.triggers.waits import MachineImageOperationTrigger, MachineImageStatusTrigger

__all__ = [
    "FleetBackupTrigger",
    "InstanceBootTrigger",
    "MachineImageOperationTrigger",
    "MachineImageStatusTrigger",
    "SourceLimitWaitTrigger",
]
