"""What an answer says besides its JSON: the server's time of answering, from its ``Date`` header.

The flows tell a replayed operation from a new one by server times only
(:func:`~airflow_machine_images.flows.resubmission.is_replay`): the operation's ``insertTime`` against
the time the server answered. Every HTTP answer of an origin server carries that time in its ``Date``
header (RFC 9110, section 6.6.1: an origin server with a clock "MUST generate a Date header field"),
so both hooks hand the parsed JSON on as a :class:`ServerAnswer`, a ``dict`` that also knows it.
"""

from __future__ import annotations

import email.utils
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping


class ServerAnswer(dict[str, Any]):
    """A JSON object answered by the API, with the server's time of answering.

    :param data: the parsed JSON object.
    :param answered_at: the answer's ``Date`` header as an aware datetime (None without a valid one).
    :param size: the answer's body in bytes, as read (a paged walk counts them:
        :class:`~airflow_machine_images.api.paging.PageWalk`).
    """

    def __init__(self, data: Mapping[str, Any], answered_at: datetime | None, size: int = 0) -> None:
        super().__init__(data)
        self.answered_at = answered_at
        self.size = size


def parse_http_date(value: str | None) -> datetime | None:
    """A ``Date`` header's value as an aware UTC datetime; None if absent or not an HTTP date.

    :param value: the header's value.
    """
    if not value:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def server_time_of(answer: Mapping[str, Any]) -> datetime | None:
    """The server's time of answering ``answer`` (None: not a :class:`ServerAnswer`, or no ``Date``).

    :param answer: an answer of the hook.
    """
    return answer.answered_at if isinstance(answer, ServerAnswer) else None
