"""Page tokens and ``maxResults`` of list calls: opaque tokens bound to the listing they came from."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_machine_images.emulator import errors
from airflow_machine_images.emulator.filters import FilterError, OrderBy, compile_filter, parse_order_by

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["MAX_RESULTS", "ListQuery", "max_results", "page_offset", "page_token"]

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


@dataclass(frozen=True)
class ListQuery:
    """What a list request asks for: its filter, order and page, read and checked once.

    :param predicate: the compiled ``filter``.
    :param order: the ``orderBy``, if any.
    :param size: results per page.
    :param offset: where this page starts.
    :param context: what page tokens are bound to (a token of another listing is refused).
    """

    predicate: Callable[[Mapping[str, Any]], bool]
    order: OrderBy | None
    size: int
    offset: int
    context: str

    @classmethod
    def read(cls, query: Mapping[str, str], listing: str = "") -> ListQuery:
        """Read ``filter``, ``orderBy``, ``maxResults`` and ``pageToken`` like the API does.

        :param query: the query parameters.
        :param listing: what else the page tokens are bound to (e.g. ``aggregated``).
        :raises ApiError: 400 for an unparsable filter or orderBy, both of them at once, a bad
            maxResults or a foreign token.
        """
        if query.get("filter") and query.get("orderBy"):
            # What the API answers (doitintl/kubeip issue 132; the discovery document's orderBy text).
            raise errors.invalid_field(
                "orderBy", query["orderBy"], "Specifying both a list filter and sort order is not currently supported."
            )
        try:
            predicate = compile_filter(query.get("filter", ""))
            order = parse_order_by(query.get("orderBy", ""))
        except FilterError as exc:
            raise errors.invalid(str(exc)) from None
        context = f"{query.get('filter', '')}\n{query.get('orderBy', '')}"
        context = f"{listing}\n{context}" if listing else context
        offset = page_offset(query["pageToken"], context) if query.get("pageToken") else 0
        return cls(predicate, order, max_results(query.get("maxResults", "")), offset, context)

    def next_token(self, total: int) -> str | None:
        """The ``nextPageToken`` after this page, or None when it is the last.

        :param total: how many results the listing has in all.
        """
        end = self.offset + self.size
        return page_token(end, self.context) if end < total else None
