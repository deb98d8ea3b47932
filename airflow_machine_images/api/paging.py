"""Walking a paged list (``items``, ``nextPageToken``) to its end, and no further.

Both hooks and the triggers' pollers page through ``.list`` answers with :class:`PageWalk`: it counts
the pages and their bytes, refuses a list that would never end (a repeated token, more than
:data:`MAX_PAGES` pages) or that grows past :data:`MAX_WALK_BYTES`, and keeps every page's
``warning``. Nothing here does I/O: the walkers are handed the function that fetches a page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_machine_images.api.list_warnings import ListWarning, list_warning
from airflow_machine_images.exceptions import ResponseLimitError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator, Mapping

#: The most pages a walk through a paged list follows (500 items a page: half a million items).
MAX_PAGES = 1000
#: The most bytes of answers one walk keeps. Each answer may be up to 32 MiB (the hooks'
#: ``max_response_bytes``), so pages alone bounded a walk at 32 GB; a page of 500 machine images is
#: well under 1 MiB and one of 500 instances a few MiB, so 256 MiB is tens of thousands of resources.
MAX_WALK_BYTES = 256 * 2**20


@dataclass
class PageWalk:
    """Where a walk through a paged list (``items``, ``nextPageToken``) stands; pure, the walkers fetch.

    A misbehaving endpoint cannot keep a walk going: it ends with :class:`ResponseLimitError` after
    ``max_pages`` pages, once its answers add up to more than ``max_bytes`` (a page's size is what the
    hook read: :attr:`~airflow_machine_images.api.answers.ServerAnswer.size`), or at once when a page
    names a token an earlier page named (the list would cycle).

    :param token: the token of the next page to fetch (None: the first, or the walk is over).
    :param done: the last page has been taken.
    :param what: the list, for errors (e.g. ``machineImages.list``).
    :param max_pages: the most pages followed.
    :param max_bytes: the most bytes of answers taken.
    :param pages: pages taken so far.
    :param size: bytes of answers taken so far.
    :param seen: the page tokens met so far.
    :param warnings: the ``warning`` of every page that carried one (a list with a warning may have
        left items out: :mod:`airflow_machine_images.api.list_warnings`).
    """

    token: str | None = None
    done: bool = False
    what: str = "a paged list"
    max_pages: int = MAX_PAGES
    max_bytes: int = MAX_WALK_BYTES
    pages: int = 0
    size: int = 0
    seen: set[str] = field(default_factory=set, repr=False)
    warnings: list[ListWarning] = field(default_factory=list)

    def take(self, page: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Record a fetched page and return its items; without a ``nextPageToken`` it was the last.

        :param page: one answer of a ``.list`` call.
        :raises ResponseLimitError: the page repeats a token, or the walk reached ``max_pages`` or ``max_bytes``.
        """
        self.pages += 1
        self.size += getattr(page, "size", 0)
        if self.size > self.max_bytes:
            raise ResponseLimitError(
                f"{self.what}: more than {self.max_bytes / 2**20:g} MiB of answers in {self.pages} pages, the "
                "limit of one walk (MAX_WALK_BYTES); narrow the filter, or the endpoint misbehaves",
                action=self.what,
            )
        warning = list_warning(page)
        if warning is not None:
            self.warnings.append(warning)
        token = page.get("nextPageToken") or None
        if token is not None:
            if token in self.seen:
                raise ResponseLimitError(
                    f"{self.what}: page {self.pages} names a page token an earlier page named; the list "
                    "repeats itself and would never end",
                    action=self.what,
                )
            if self.pages >= self.max_pages:
                raise ResponseLimitError(
                    f"{self.what}: more than {self.max_pages} pages, the limit of one walk (MAX_PAGES); "
                    "narrow the filter, or the endpoint misbehaves",
                    action=self.what,
                )
            self.seen.add(token)
        self.token = token
        self.done = token is None
        return list(page.get("items", []))


def iter_pages(
    fetch: Callable[[str | None], Mapping[str, Any]], what: str = "a paged list", walk: PageWalk | None = None
) -> Iterator[dict[str, Any]]:
    """Yield the items of every page, fetching each page only when the one before is used up.

    :param fetch: reads one page given its token (None for the first).
    :param what: the list, for errors.
    :param walk: the walk to record into (its ``warnings`` can be read afterwards); a new one if None.
    """
    walk = walk if walk is not None else PageWalk(what=what)
    while not walk.done:
        yield from walk.take(fetch(walk.token))


async def collect_pages(
    fetch: Callable[[str | None], Awaitable[Mapping[str, Any]]],
    what: str = "a paged list",
    walk: PageWalk | None = None,
) -> list[dict[str, Any]]:
    """The items of every page, fetched one page after the other.

    :param fetch: reads one page given its token (None for the first).
    :param what: the list, for errors.
    :param walk: the walk to record into (its ``warnings`` can be read afterwards); a new one if None.
    """
    walk = walk if walk is not None else PageWalk(what=what)
    items: list[dict[str, Any]] = []
    while not walk.done:
        items += walk.take(await fetch(walk.token))
    return items
