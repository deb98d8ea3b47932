"""Operators for Compute Engine machine images: create, delete, prune, restore, select and check a fleet.

Every operator class is importable from here (``from airflow_machine_images.operators import ...``);
each lives in the module of its job: :mod:`.base` (what they share), :mod:`.machine_images` (create,
delete), :mod:`.retention`, :mod:`.restore` (restore into a new instance, delete such an instance)
and :mod:`.fleet` (select instances, check backup coverage), :mod:`.fleet_backup` (back up a whole fleet
in one task), :mod:`.boot` (verify that a restore booted). DAG files import this package at parse
time, so nothing here loads Google, ``requests`` or ``aiohttp`` code.
"""

from __future__ import annotations

from airflow_machine_images.exceptions import ComputeEngineRetentionError
from airflow_machine_images.operators.base import ComputeEngineMachineImageBaseOperator
from airflow_machine_images.operators.boot import ComputeEngineVerifyBootOperator
from airflow_machine_images.operators.fleet import (
    ComputeEngineListInstancesOperator,
    ComputeEngineMachineImageCoverageCheckOperator,
)
from airflow_machine_images.operators.fleet_backup import ComputeEngineFleetBackupOperator
from airflow_machine_images.operators.machine_images import (
    ComputeEngineDeleteMachineImageOperator,
    ComputeEngineInsertMachineImageOperator,
)
from airflow_machine_images.operators.restore import (
    ComputeEngineDeleteRestoredInstanceOperator,
    ComputeEngineRestoreMachineImageOperator,
)
from airflow_machine_images.operators.retention import ComputeEngineMachineImageRetentionOperator

__all__ = [
    "ComputeEngineDeleteMachineImageOperator",
    "ComputeEngineDeleteRestoredInstanceOperator",
    "ComputeEngineFleetBackupOperator",
    "ComputeEngineInsertMachineImageOperator",
    "ComputeEngineListInstancesOperator",
    "ComputeEngineMachineImageBaseOperator",
    "ComputeEngineMachineImageCoverageCheckOperator",
    "ComputeEngineMachineImageRetentionOperator",
    "ComputeEngineRestoreMachineImageOperator",
    "ComputeEngineRetentionError",
    "ComputeEngineVerifyBootOperator",
]
