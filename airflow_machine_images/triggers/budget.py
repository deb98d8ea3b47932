"""The request budget of one triggerer's pollers on one project, from the ``[machine_images]`` section.

The user sets the total a project may see (``requests_per_minute_per_project``) and how many
triggerers share it (``triggerers``); each triggerer gets ``total // triggerers`` requests per minute
for the project, counted across every poller of the project in its process (operations, global and of
every zone, and machine images: one request window per event loop and project,
:mod:`airflow_machine_images.triggers.polling.windows`). That share is the one thing the triggerers
divide among themselves: nothing is counted across processes, so together they stay within the total
only if ``triggerers`` is the number of triggerers running these waits. Rounding down keeps them within
it (100 shared by 3: 33 each, 99 in all). The share is never below :data:`MIN_REQUESTS_PER_MINUTE`: a
poller that may not call at all would never end a wait, so with more triggerers than requests the total
is exceeded (one per triggerer) and a warning says so.

The values are read when a trigger runs, in the triggerer (whose configuration counts), never when
a DAG file is parsed. A task's own total (the ``requests_per_minute_per_project`` argument of the
deferring operators and sensors, carried in the trigger's kwargs) is shared among the triggerers the
same way, and that share limits what the task's wait costs by itself (its own reads), never more than
the configured share; it never slows the other waits of the project.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Final

from airflow.providers.common.compat.sdk import conf

from airflow_machine_images import config
from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.validation.primitives import show_value

log = logging.getLogger(__name__)

#: The smallest per-triggerer budget: one request a minute still ends every wait, if slowly.
MIN_REQUESTS_PER_MINUTE = 1
_WHOLE_NUMBER_PATTERN: Final = r"\s*\+?[0-9]{1,9}\s*"
#: The first read of a provider option may make Airflow's providers manager discover every installed
#: provider, which it does without a lock; triggers read the options in worker threads, one at a time.
_READING = threading.Lock()
_warned: set[tuple[int, int]] = set()


def read_option(option: str, default: int) -> int:
    """A whole-number option of the section (its environment variable, airflow.cfg, or the default).

    :param option: the option name.
    :param default: the value when the option is set nowhere (also Airflow's declared default).
    :raises MachineImageValidationError: the value is not a whole number >= 1 (the message names the
        option and its environment variable).
    """
    raw = conf.get(config.SECTION, option, fallback=str(default))
    if not isinstance(raw, str) or not re.fullmatch(_WHOLE_NUMBER_PATTERN, raw) or int(raw) < 1:
        parameter = f"[{config.SECTION}] {option} (or {config.env_var(option)})"
        raise MachineImageValidationError(parameter, "must be a whole number >= 1", show_value(raw))
    return int(raw)


def configured_total() -> int:
    """``[machine_images] requests_per_minute_per_project``: the total for a project across all triggerers."""
    return read_option(config.REQUESTS_PER_MINUTE_PER_PROJECT, config.DEFAULT_REQUESTS_PER_MINUTE_PER_PROJECT)


def configured_triggerers() -> int:
    """``[machine_images] triggerers``: how many triggerers share the total."""
    return read_option(config.TRIGGERERS, config.DEFAULT_TRIGGERERS)


def share(total: int, triggerers: int) -> int:
    """One triggerer's share of ``total``: rounded down, at least :data:`MIN_REQUESTS_PER_MINUTE`.

    :param total: requests per minute for the project across all triggerers.
    :param triggerers: how many triggerers share it.
    """
    if total < triggerers * MIN_REQUESTS_PER_MINUTE and (total, triggerers) not in _warned:
        _warned.add((total, triggerers))  # once per process, not once per wait
        log.warning(
            "%d requests per minute per project cannot be shared by %d triggerers; each makes up to %d, "
            "%d in all (raise [%s] %s or lower %s)",
            total,
            triggerers,
            MIN_REQUESTS_PER_MINUTE,
            triggerers * MIN_REQUESTS_PER_MINUTE,
            config.SECTION,
            config.REQUESTS_PER_MINUTE_PER_PROJECT,
            config.TRIGGERERS,
        )
    return max(MIN_REQUESTS_PER_MINUTE, total // triggerers)


def shares(task_total: int | None) -> tuple[int, int | None]:
    """This triggerer's share of the configured total, and of the task's own total (None if it set none).

    The first is the project's budget in this triggerer (every poller of the project counts against
    it, and every wait without a total of its own has it); the second is the budget of one wait's own
    reads.

    :param task_total: a task's own ``requests_per_minute_per_project``, or None.
    :raises MachineImageValidationError: an option is not a whole number >= 1.
    """
    with _READING:
        total, triggerers = configured_total(), configured_triggerers()
    return share(total, triggerers), (None if task_total is None else share(task_total, triggerers))
