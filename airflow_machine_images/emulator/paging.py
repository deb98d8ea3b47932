"""Page tokens and ``maxResults`` of list calls: opaque tokens bound to the listing they came from."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from airflow_machine_images.emulator import errors

__all__ = ["MAX_RESULTS", "max_results", "page_offset", "page_token"]

#: The most results a page may hold (``maxResults``: "Acceptable values are 0 to 500", discovery documents).
MAX_RESULTS = 500


def page_token(offset: int, context: str) -> str:
    """:param offset: where the next page starts. :param context: filter and orderBy it belongs to.
    :return: an opaque page token."""
    raw = json.dumps({"o": offset, "c": hashlib.sha256(context.encode()).hexdigest()[:12]})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def page_offset(token: str, context: str) -> int:
    """:param token: a page token. :param context: the current filter and orderBy.
    :return: its offset. :raises ApiError: 400 when it is garbage or from another listing."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        offset = int(data["o"])
        if data["c"] != hashlib.sha256(context.encode()).hexdigest()[:12] or offset < 0:
            raise ValueError
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise errors.invalid_field("pageToken", token, "Invalid page token.") from None
    return offset


def max_results(raw: str) -> int:
    """``maxResults`` as the API reads it: 0 to 500, 0 or absent meaning 500.

    :param raw: the query parameter ('' when absent).
    :raises ApiError: 400 when it is not an integer in range.
    """
    try:
        value = int(raw) if raw else MAX_RESULTS
    except ValueError:
        raise errors.invalid_field("maxResults", raw, "Must be an integer.") from None
    if not 0 <= value <= MAX_RESULTS:
        raise errors.invalid_field("maxResults", raw, f"Must be between 0 and {MAX_RESULTS}.")
    return value or MAX_RESULTS
