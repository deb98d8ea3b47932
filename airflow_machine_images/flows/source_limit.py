"""The per-source machine-image limit: recognising its refusal, and when the create may be submitted again.

What the service does. "You can create a machine image at most once every 10 minutes. If you want to
issue a burst of requests for creating multiple machine images from an instance, you can issue at most 6
requests in 60 minutes" (Create machine images, Limitations and restrictions,
https://cloud.google.com/compute/docs/machine-images/create-machine-images). Operations refused for
being too frequent on a resource end with ``error.errors[].code`` ``RESOURCE_OPERATION_RATE_EXCEEDED``,
"Operation rate exceeded for resource ... Too frequent operations
from the source resource", and ``httpErrorStatusCode`` 403 (googleapis/python-compute issue 279). That the
per-source limit is answered in exactly that shape is unverified; it is the safe reading, and the
emulator answers so (``source_image_limit_scale``). Nothing in the answer says when the next request is
allowed.

What we do. A refused insert made nothing, so a new submission (the next generation's ``requestId``)
cannot duplicate anything. The refusal is counted from its operation's ``endTime`` (the server's clock;
the worker's clock reads it, so the two are assumed to agree within seconds, as NTP keeps them); the
next try is allowed :data:`~airflow_machine_images.config.DEFAULT_SOURCE_IMAGE_LIMIT_WAIT_SECONDS` later
(``[machine_images] source_image_limit_wait_seconds``): by then the 10-minute window has passed for
any image made before the refusal. If the 60-minute window still holds, the next answer is another
refusal and another wait; :data:`~airflow_machine_images.flows.resubmission.MAX_SOURCE_LIMIT_WAITS_PER_TRY`
waits cover the 60 minutes. The task waits within its deadline (deferred to a trigger that fires at the
allowed time, or asleep on the worker), never through an Airflow retry.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Final

from airflow_machine_images import config
from airflow_machine_images.api.timestamps import format_moment, parse_timestamp
from airflow_machine_images.compat import conf
from airflow_machine_images.exceptions import MachineImageValidationError, SourceLimitReached
from airflow_machine_images.validation.primitives import show_value

if TYPE_CHECKING:
    from airflow_machine_images.exceptions import OperationFailedError

__all__ = ["RATE_EXCEEDED_CODE", "refused_by_source_limit", "source_limit_reached", "wait_seconds"]

#: The operation error code of a refusal for too frequent operations on a resource.
RATE_EXCEEDED_CODE: Final = "RESOURCE_OPERATION_RATE_EXCEEDED"
_NUMBER_PATTERN: Final = r"\s*[0-9]{1,7}(?:\.[0-9]+)?\s*"


def wait_seconds() -> float:
    """``[machine_images] source_image_limit_wait_seconds`` (default 600: the limit's 10 minutes).

    :raises MachineImageValidationError: the option is not a positive number (the message names it).
    """
    raw = conf.get(
        config.SECTION,
        config.SOURCE_IMAGE_LIMIT_WAIT_SECONDS,
        fallback=str(config.DEFAULT_SOURCE_IMAGE_LIMIT_WAIT_SECONDS),
    )
    if not isinstance(raw, str) or not re.fullmatch(_NUMBER_PATTERN, raw) or float(raw) <= 0:
        option = config.SOURCE_IMAGE_LIMIT_WAIT_SECONDS
        parameter = f"[{config.SECTION}] {option} (or {config.env_var(option)})"
        raise MachineImageValidationError(parameter, "must be a positive number of seconds", show_value(raw))
    return float(raw)


def refused_by_source_limit(failure: OperationFailedError) -> bool:
    """Whether a failed insert was refused for too frequent operations on its source.

    :param failure: the insert operation's failure.
    """
    return RATE_EXCEEDED_CODE in failure.codes


def source_limit_reached(
    failure: OperationFailedError, *, what: str, replayed: bool, now: float | None = None
) -> SourceLimitReached:
    """The resubmission a refusal asks for, with when the next try is allowed and why.

    :param failure: the refused insert's failure.
    :param what: the resource, for the message (``"Machine image web-1-20260520"``).
    :param replayed: the refusal is an earlier try's, replayed by the server.
    :param now: the current time (seconds since the epoch; None: the clock's), used when the refusal has no
        readable ``endTime``.
    """
    ended = parse_timestamp(failure.end_time)
    refused_at = ended.timestamp() if ended is not None else (time.time() if now is None else now)
    retry_at = refused_at + wait_seconds()
    whose = "an earlier try's insert was" if replayed else "the insert was"
    return SourceLimitReached(
        f"{what}: {whose} refused by Compute Engine's per-source limit (one machine image of an instance every "
        f"10 minutes, 6 in 60 minutes; operation {failure.operation_name}, {RATE_EXCEEDED_CODE}, at "
        f"{format_moment(refused_at)}); the next try is allowed at {format_moment(retry_at)}",
        retry_at=retry_at,
        replayed=replayed,
    )
