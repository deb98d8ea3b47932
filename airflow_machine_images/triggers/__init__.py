"""Triggers: waits that run in the triggerer, so a waiting task holds no worker slot.

Every trigger class is importable from here, and triggers serialize under this package's path
(``airflow_machine_images.triggers.<Class>``), so trigger rows stay loadable whichever module a class
lives in. The coalescing pollers the triggers share live in :mod:`.polling`, the finished-since lists
in :mod:`.finished_operations` and the per-project request budget in :mod:`.budget`.

The trigger modules load when a trigger class is first used (PEP 562, as :mod:`..hooks` does for the
hooks): only the triggerer runs them, and an operator needs one only when it defers. DAG files import
the operators at parse time, and the trigger modules would bring Airflow's ``airflow.triggers.base``
(pydantic models) and the pollers with them: 13 of the 50 ms that importing every operator and sensor
cost before (``benchmarks/bench_import.py``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

#: Where each trigger class lives.
_HOME = {
    "FleetBackupTrigger": "airflow_machine_images.triggers.fleet_backup",
    "InstanceBootTrigger": "airflow_machine_images.triggers.boot",
    "MachineImageOperationTrigger": "airflow_machine_images.triggers.waits",
    "MachineImageStatusTrigger": "airflow_machine_images.triggers.waits",
    "SourceLimitWaitTrigger": "airflow_machine_images.triggers.source_limit",
}


def __getattr__(name: str) -> Any:
    """Load a trigger class on first use (PEP 562), keeping DAG-parse imports cheap.

    :param name: the attribute asked for.
    """
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The trigger classes, loaded or not."""
    return sorted(__all__)
