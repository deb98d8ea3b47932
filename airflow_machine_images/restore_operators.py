"""Where the restore operators were importable before the operators became a package; import them from
:mod:`airflow_machine_images.operators` instead. Kept so DAG files written against earlier releases parse."""

from __future__ import annotations

from airflow_machine_images.operators.restore import (
    ComputeEngineDeleteRestoredInstanceOperator,
    ComputeEngineRestoreMachineImageOperator,
)

__all__ = ["ComputeEngineDeleteRestoredInstanceOperator", "ComputeEngineRestoreMachineImageOperator"]
