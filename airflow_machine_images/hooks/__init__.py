"""Hooks for the Compute Engine API: a synchronous one for workers, an async one for triggers.

``from airflow_machine_images.hooks import ComputeEngineMachineImageHook`` works as before, but the
hook modules (and with them google-auth, ``requests`` and ``aiohttp``) load only when a hook class is
first used: operators import :mod:`.connection` from this package at DAG-parse time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_machine_images.hooks.asynchronous import ComputeEngineMachineImageAsyncHook
    from airflow_machine_images.hooks.sync import ComputeEngineMachineImageHook

__all__ = ["ComputeEngineMachineImageAsyncHook", "ComputeEngineMachineImageHook"]

#: Where each public hook class lives.
_HOME = {
    "ComputeEngineMachineImageHook": "airflow_machine_images.hooks.sync",
    "ComputeEngineMachineImageAsyncHook": "airflow_machine_images.hooks.asynchronous",
}


def __getattr__(name: str) -> Any:
    """Load a hook class on first use (PEP 562), keeping DAG-parse imports cheap."""
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
