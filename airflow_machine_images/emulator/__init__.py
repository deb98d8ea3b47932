"""A local Compute Engine API emulator (machine images, global operations, instances) over real HTTP.

Standard library only, and independent of the rest of ``airflow_machine_images`` and of Airflow, so
it cannot share their bugs::

    with ComputeEngineEmulator(operation_seconds=0.5) as emu:
        emu.add_instance("us-central1-a/web-1")
        ...  # point clients at f"{emu.url}/compute/beta/"
"""

from __future__ import annotations

from airflow_machine_images.emulator.core import ComputeEngineEmulator
from airflow_machine_images.emulator.faults import ACTIONS, FAULT_KINDS, Fault
from airflow_machine_images.emulator.recording import RecordedRequest

__all__ = ["ACTIONS", "FAULT_KINDS", "ComputeEngineEmulator", "Fault", "RecordedRequest"]
