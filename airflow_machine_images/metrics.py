"""Metrics through Airflow's ``Stats``: StatsD, Datadog or OpenTelemetry, whatever the deployment configured.

Every name starts with ``machine_images.`` (after Airflow's own ``[metrics] statsd_prefix``, ``airflow`` by
default) and carries its dimensions twice: in the name, so a plain StatsD backend (which drops tags) still
tells them apart, and as tags, for backends that keep them (Datadog, OpenTelemetry, InfluxDB-style StatsD).
The names, what they count and where they are sent from are listed in ``docs/administration.md``:

======================================================================  =========  ===============================
name                                                                    type       tags
======================================================================  =========  ===============================
``machine_images.api.requests.<method>.<outcome>``                      counter    ``method``, ``outcome``
``machine_images.api.retries.<cause>``                                  counter    ``cause``
``machine_images.budget.waits`` / ``machine_images.budget.wait``        counter /  (none)
                                                                        timer (ms)
``machine_images.detection_latency.<where>``                            timer (ms) ``where``
``machine_images.images.created`` / ``machine_images.images.deleted``   counter    (none)
``machine_images.coverage.gaps``                                        gauge      ``project``
``machine_images.coverage.newest_image_age.<project>.<zone>.<name>``    gauge (s)  ``project``, ``zone``,
                                                                                   ``instance``
======================================================================  =========  ===============================

``<method>`` is the API method (``machineImages.insert``); ``<outcome>`` is ``ok`` or the error's kind and
``<cause>`` the kind of error retried, both the package's error type in snake case without ``_error``
(``rate_limited``, ``transient_api``, ``endpoint_unreachable``). A metric never fails or slows a task: a
backend that raises is logged once at debug level and ignored. Names and tags carry identifiers only
(methods, projects, zones, instance names), never a key, a token or a request body.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, Final

from airflow.providers.common.compat.sdk import Stats

if TYPE_CHECKING:
    from datetime import datetime

__all__ = [
    "PREFIX",
    "api_request",
    "api_retry",
    "budget_wait",
    "coverage_gaps",
    "detection_latency",
    "error_kind",
    "images_created",
    "images_deleted",
    "newest_image_age",
]

#: The first part of every name this package sends.
PREFIX: Final = "machine_images"
_UNSAFE_PATTERN: Final = r"[^A-Za-z0-9_.-]"
_CAMEL_PATTERN: Final = r"(?<!^)(?=[A-Z])"
_log = logging.getLogger(__name__)


def _part(value: object) -> str:
    """One part of a name: only the characters StatsD names allow (Airflow's stat name validator)."""
    return re.sub(_UNSAFE_PATTERN, "_", str(value))[:80] or "_"


def _send(kind: str, name: str, *args: Any, tags: dict[str, str] | None = None) -> None:
    """Send one metric by Airflow's ``Stats``; never raise (a metric must not fail a task)."""
    try:
        getattr(Stats, kind)(f"{PREFIX}.{name}", *args, tags=tags)
    except Exception:  # a misconfigured backend: the task goes on
        _log.debug("Metric %s.%s not sent", PREFIX, name, exc_info=True)


def error_kind(error: BaseException) -> str:
    """An error's kind for a metric name: its type in snake case without ``_error`` (``rate_limited``).

    :param error: the error.
    """
    name = re.sub(_CAMEL_PATTERN, "_", type(error).__name__).lower()
    return name.removesuffix("_error") or name


def api_request(method: str, outcome: str) -> None:
    """Count one API request (one attempt; a retry is another request).

    :param method: the API method, ``machineImages.insert``.
    :param outcome: ``ok``, or :func:`error_kind` of the attempt's error.
    """
    _send("incr", f"api.requests.{_part(method)}.{_part(outcome)}", tags={"method": method, "outcome": outcome})


def api_retry(cause: str) -> None:
    """Count one retry of an API request.

    :param cause: :func:`error_kind` of the error retried.
    """
    _send("incr", f"api.retries.{_part(cause)}", tags={"cause": cause})


def budget_wait(seconds: float) -> None:
    """Count one wait for the per-project request budget in the triggerer, and time it.

    :param seconds: how long the call waited for a slot.
    """
    _send("incr", "budget.waits")
    _send("timing", "budget.wait", max(0.0, seconds) * 1000.0)


def detection_latency(where: str, ended: datetime | None, now: float) -> None:
    """Time from an operation's ``endTime`` (the server's clock) to when a wait saw it DONE.

    :param where: ``triggerer`` or ``worker``.
    :param ended: the operation's ``endTime``, parsed (None: not sent).
    :param now: when the wait saw it (seconds since the epoch).
    """
    if ended is not None:
        latency = max(0.0, now - ended.timestamp())
        _send("timing", f"detection_latency.{_part(where)}", latency * 1000.0, tags={"where": where})


def images_created(count: int = 1) -> None:
    """Count machine images this package made that became READY.

    :param count: how many.
    """
    if count > 0:
        _send("incr", "images.created", count)


def images_deleted(count: int = 1) -> None:
    """Count machine images this package deleted (confirmed gone).

    :param count: how many.
    """
    if count > 0:
        _send("incr", "images.deleted", count)


def coverage_gaps(project: str, count: int) -> None:
    """The number of instances a coverage check found without a recent enough image.

    :param project: the project checked.
    :param count: how many instances lack one.
    """
    _send("gauge", "coverage.gaps", count, tags={"project": project})


def newest_image_age(project: str, zone: str, instance: str, seconds: float) -> None:
    """The age of a checked instance's newest READY image.

    :param project: the instance's project.
    :param zone: its zone.
    :param instance: its name.
    :param seconds: its newest image's age.
    """
    name = f"coverage.newest_image_age.{_part(project)}.{_part(zone)}.{_part(instance)}"
    _send("gauge", name, max(0.0, seconds), tags={"project": project, "zone": zone, "instance": instance})
