"""The Airflow names whose import path differs between the supported Airflow 3 minors, in one place.

Every other module imports these names from here, never from Airflow directly, so supporting another
Airflow minor means editing the table below and nothing else::

    from airflow_machine_images.compat import AirflowFailException, conf

Each name is resolved on first use (PEP 562 module ``__getattr__``) from the first of its candidate
locations that exists, newest location first, so a current Airflow never reaches a deprecated path
(and its deprecation warning). Resolving lazily keeps imports cheap: importing the error types loads
the task SDK's exceptions module only, not the configuration or the logging machinery.

Where each lives, as measured by ``make compat`` on 3.0.2, 3.1.8, 3.2.2 and 3.3.2 (README, Compatibility):

- ``AirflowException``: ``airflow.sdk.exceptions`` from 3.1; ``airflow.exceptions`` on 3.0.
- ``AirflowFailException``, ``AirflowSensorTimeout``, ``AirflowSkipException``, ``TaskDeferred``:
  ``airflow.sdk.exceptions`` from 3.2; ``airflow.exceptions`` on 3.0 and 3.1.
- ``conf``: ``airflow.sdk`` from 3.2; ``airflow.configuration`` on 3.0 and 3.1.
- ``timezone`` (a module): ``airflow.sdk.timezone`` from 3.1; ``airflow.utils.timezone`` on 3.0.
- ``mask_secret``: ``airflow.sdk.log`` from 3.1; ``airflow.sdk.execution_time.secrets_masker`` on 3.0.
- ``DagBag``: ``airflow.dag_processing.dagbag`` from 3.2; ``airflow.models.dagbag`` on 3.0 and 3.1.

Where both locations of an exception class (or ``DagBag``) exist they hold the same class, so an
exception raised through one path is caught through the other. ``conf`` and ``timezone`` are the task
SDK's own from 3.1/3.2 on, with the same interface as the core ones they replace.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the types, as the newest supported Airflow spells them
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import conf, timezone
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )
    from airflow.sdk.log import mask_secret

__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "DagBag",
    "TaskDeferred",
    "conf",
    "mask_secret",
    "timezone",
]

#: name -> candidate locations, newest first: ``"module:attribute"``, or ``"module"`` for a module itself.
CANDIDATES: dict[str, tuple[str, ...]] = {
    "AirflowException": ("airflow.sdk.exceptions:AirflowException", "airflow.exceptions:AirflowException"),
    "AirflowFailException": ("airflow.sdk.exceptions:AirflowFailException", "airflow.exceptions:AirflowFailException"),
    "AirflowSensorTimeout": ("airflow.sdk.exceptions:AirflowSensorTimeout", "airflow.exceptions:AirflowSensorTimeout"),
    "AirflowSkipException": ("airflow.sdk.exceptions:AirflowSkipException", "airflow.exceptions:AirflowSkipException"),
    "TaskDeferred": ("airflow.sdk.exceptions:TaskDeferred", "airflow.exceptions:TaskDeferred"),
    "conf": ("airflow.sdk:conf", "airflow.configuration:conf"),
    "timezone": ("airflow.sdk.timezone", "airflow.utils.timezone"),
    "mask_secret": ("airflow.sdk.log:mask_secret", "airflow.sdk.execution_time.secrets_masker:mask_secret"),
    "DagBag": ("airflow.dag_processing.dagbag:DagBag", "airflow.models.dagbag:DagBag"),
}


def resolve(name: str) -> Any:
    """Import ``name`` from the first of its candidate locations that this Airflow has.

    :param name: one of :data:`CANDIDATES`.
    :raises AttributeError: ``name`` is not a compat name.
    :raises ImportError: no candidate location exists on this Airflow (an unsupported version).
    """
    try:
        candidates = CANDIDATES[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    for location in candidates:
        module_name, _, attribute = location.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name is None or not (module_name + ".").startswith(error.name + "."):
                raise  # the module exists but something it imports is missing: not ours to hide
            continue
        if not attribute:
            return module
        try:
            return getattr(module, attribute)
        except AttributeError:
            continue
    raise ImportError(f"{name} is in none of {', '.join(candidates)}: this Airflow version is not supported")


def __getattr__(name: str) -> Any:
    """Resolve a compat name on first use and cache it in the module (PEP 562).

    :param name: the attribute asked for.
    """
    value = resolve(name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, the lazily resolved ones included."""
    return sorted({*globals(), *__all__})
