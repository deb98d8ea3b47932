"""What `apache-airflow-providers-common-compat` does not map for us, across Airflow 2.11 and every 3.x.

Every Airflow name this package uses comes from one of two places, and from nowhere else (a unit test
walks the package's imports and fails on any other ``airflow.*`` import):

- ``airflow.providers.common.compat.sdk`` (and ``.assets``), which the Google provider already
  requires: ``BaseOperator``, ``BaseSensorOperator``, ``PokeReturnValue``, ``BaseOperatorLink``,
  ``Context``, ``XCom``, ``TaskInstanceKey``, ``conf``, ``timezone``, the exceptions
  (``AirflowException``, ``AirflowFailException``, ``AirflowSensorTimeout``, ``AirflowSkipException``,
  ``TaskDeferred``) and ``Asset`` (``Dataset`` on 2.x). Our floor, common-compat 1.15.0, maps all of them.
- this module, for what common-compat does not cover::

      from airflow_machine_images.compat import BaseTrigger, TriggerEvent, mask_secret

  - ``BaseTrigger``, ``TriggerEvent``: ``airflow.triggers.base`` on 2.11 and every 3.x; common-compat
    maps only ``BaseEventTrigger`` (from 1.19), so our triggers import them here to keep one rule.
  - ``mask_secret``: common-compat maps it from 1.22 on only. ``airflow.sdk.log`` from 3.1,
    ``airflow.sdk.execution_time.secrets_masker`` on 3.0, ``airflow.utils.log.secrets_masker`` on 2.x.
  - ``airflow_version``: ``airflow.__version__`` (the User-Agent names it), and :func:`airflow_major`
    (common-compat asks providers to copy its ``version_compat`` rather than import it).
  - ``DagBag`` and ``XComModel``, for scripts and tests that load DAG files and read what a run left:
    ``DagBag`` is in ``airflow.dag_processing.dagbag`` from 3.2 and ``airflow.models.dagbag`` before;
    the XCom table's model is ``airflow.models.xcom.XComModel`` on 3.x and ``airflow.models.xcom.XCom``
    on 2.x (both have ``value``, ``key``, ``dag_id``, ``run_id``, ``task_id``, ``map_index`` and
    ``deserialize_value``).
  - ``resetdb`` (``airflow.utils.db``) and ``create_session`` (``airflow.utils.session``), for the test
    harness (:mod:`airflow_machine_images.testing`): a throw-away metadata DB and reading what a run left.
  - :func:`dag_test`: ``DAG.test()`` takes ``logical_date``/``run_after`` on 3.x and ``execution_date``
    on 2.x.

The names this module exported before common-compat took them over (``AirflowException``,
``AirflowFailException``, ``AirflowSensorTimeout``, ``AirflowSkipException``, ``TaskDeferred``, ``conf``,
``timezone``) still import from here, resolved through common-compat, so code written against earlier
releases keeps working; new code takes them from common-compat.

Each name is resolved on first use (PEP 562 module ``__getattr__``) from the first of its candidate
locations that exists, newest first, so a current Airflow never reaches a deprecated path (and its
warning), and importing this module loads no Airflow module at all.
"""

from __future__ import annotations

import datetime as dt
import importlib
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the types, as the newest supported Airflow spells them
    from airflow import __version__ as airflow_version
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.providers.common.compat.sdk import (
        AirflowException,
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
        conf,
        timezone,
    )
    from airflow.sdk.log import mask_secret
    from airflow.triggers.base import BaseTrigger, TriggerEvent
    from airflow.utils.db import resetdb
    from airflow.utils.session import create_session

__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "BaseTrigger",
    "DagBag",
    "TaskDeferred",
    "TriggerEvent",
    "XComModel",
    "airflow_major",
    "airflow_version",
    "conf",
    "create_session",
    "dag_test",
    "mask_secret",
    "resetdb",
    "timezone",
]

#: name -> candidate locations, newest first: ``"module:attribute"``, or ``"module"`` for a module itself.
CANDIDATES: dict[str, tuple[str, ...]] = {
    "BaseTrigger": ("airflow.triggers.base:BaseTrigger",),
    "TriggerEvent": ("airflow.triggers.base:TriggerEvent",),
    "mask_secret": (
        "airflow.sdk.log:mask_secret",
        "airflow.sdk.execution_time.secrets_masker:mask_secret",
        "airflow.utils.log.secrets_masker:mask_secret",
    ),
    "airflow_version": ("airflow:__version__",),
    "DagBag": ("airflow.dag_processing.dagbag:DagBag", "airflow.models.dagbag:DagBag"),
    "XComModel": ("airflow.models.xcom:XComModel", "airflow.models.xcom:XCom"),
    "resetdb": ("airflow.utils.db:resetdb",),
    "create_session": ("airflow.utils.session:create_session",),
}
#: Exported here before common-compat took them over: resolved through it (``airflow.providers.common.compat.sdk``).
FROM_COMMON_COMPAT = (
    "AirflowException",
    "AirflowFailException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "TaskDeferred",
    "conf",
    "timezone",
)


def resolve(name: str) -> Any:
    """Import ``name`` from the first of its candidate locations that this Airflow has.

    :param name: one of :data:`CANDIDATES` or :data:`FROM_COMMON_COMPAT`.
    :raises AttributeError: ``name`` is not a compat name.
    :raises ImportError: no candidate location exists on this Airflow (an unsupported version).
    """
    if name in FROM_COMMON_COMPAT:
        return getattr(importlib.import_module("airflow.providers.common.compat.sdk"), name)
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


@lru_cache(maxsize=1)
def airflow_major() -> int:
    """The installed Airflow's major version (2 or 3), from ``airflow.__version__``."""
    return int(str(resolve("airflow_version")).split(".", 1)[0])


def dag_test(dag: Any, *, logical_date: dt.datetime | None = None, run_conf: dict[str, Any] | None = None) -> Any:
    """Run ``dag.test()`` on Airflow 2.11 and 3.x alike; return the finished DAG run.

    Airflow 3 takes ``logical_date`` and ``run_after`` (both set to ``logical_date`` here, so a second
    call with the same date is the same run, its task instances sharing their request ids); Airflow 2
    takes ``execution_date``. Either way a deferred task's trigger runs in line, in this process, and
    only its first event counts.

    :param dag: the DAG, loaded from the DAGs folder (``DagBag``): ``dag.test()`` reads the file again.
    :param logical_date: the run's logical date; None: now (a new run).
    :param run_conf: the run's ``conf``.
    """
    if logical_date is None:
        if airflow_major() < 3:
            return dag.test(run_conf=run_conf)
        # Airflow 3.0 leaves a run without a logical date, so ``{{ ds }}`` and its kin are undefined there;
        # now (a new run each call) is what 3.1 and later give by default.
        logical_date = dt.datetime.now(dt.timezone.utc)
    if airflow_major() >= 3:
        return dag.test(logical_date=logical_date, run_after=logical_date, run_conf=run_conf)
    return dag.test(execution_date=logical_date, run_conf=run_conf)


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
