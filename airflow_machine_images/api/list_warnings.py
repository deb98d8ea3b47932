"""What a list answer's ``warning`` says, and why it means the list may be incomplete.

``OperationList`` and ``MachineImageList`` (discovery documents, ``warning`` of each ``*List``
schema) carry an optional ``warning`` object ``{code, message, data: [{key, value}]}``. Codes such as
``UNREACHABLE`` ("A given scope cannot be reached"), ``PARTIAL_SUCCESS`` ("Success is reported, but
some results may be missing due to errors") and ``LIST_OVERHEAD_QUOTA_EXCEED`` ("Resource can't be
retrieved due to list overhead quota exceed") mean items may have been left out. So a resource that a
warned list does not show is not known to be absent: only a per-resource ``get`` (or ``wait``)
answering 404 is evidence of absence. ``NO_RESULTS_ON_PAGE`` only says a page is empty, and is the
one code read as harmless; any other code, known or not, is treated as a possibly partial list (the
safe reading: the enum grows over time).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: Codes that say nothing is missing (discovery enum text: "No results are present on a particular list page").
HARMLESS_CODES = frozenset({"NO_RESULTS_ON_PAGE"})
#: Longest message kept from a server's warning (it is logged).
_MAX_TEXT = 300


@dataclass(frozen=True)
class ListWarning:
    """One page's ``warning``.

    :param code: the warning code (``"?"`` when the server sent none, or garbage).
    :param message: its human-readable message (may be empty).
    :param data: its ``data`` entries as ``key=value`` pairs.
    """

    code: str
    message: str = ""
    data: tuple[tuple[str, str], ...] = ()

    @property
    def partial(self) -> bool:
        """:return: whether the list this came with may have left items out."""
        return self.code not in HARMLESS_CODES

    def describe(self) -> str:
        """:return: e.g. ``UNREACHABLE: Scope 'global' is unreachable (scope=global)``."""
        text = self.code + (f": {self.message}" if self.message else "")
        if self.data:
            text += " (" + ", ".join(f"{k}={v}" for k, v in self.data) + ")"
        return text


def _text(value: object) -> str:
    return value[:_MAX_TEXT] if isinstance(value, str) else ""


def list_warning(page: Mapping[str, Any]) -> ListWarning | None:
    """The ``warning`` of one list answer, read defensively (a malformed one still counts as a warning).

    :param page: one answer of a ``.list`` call.
    :return: the warning, or None when the page has none.
    """
    raw = page.get("warning")
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        return ListWarning("?", "a 'warning' that is not an object")
    data = raw.get("data")
    pairs: list[tuple[str, str]] = []
    if isinstance(data, list):
        pairs = [
            (_text(entry.get("key")), _text(entry.get("value"))) for entry in data[:10] if isinstance(entry, Mapping)
        ]
    return ListWarning(_text(raw.get("code")) or "?", _text(raw.get("message")), tuple(pairs))


def partial_warnings(warnings: Iterable[ListWarning]) -> list[ListWarning]:
    """The warnings that say a list may be incomplete, each code once (first seen wins).

    :param warnings: warnings of the pages of one or more lists.
    """
    seen: dict[str, ListWarning] = {}
    for warning in warnings:
        if warning.partial:
            seen.setdefault(warning.code, warning)
    return list(seen.values())


def describe_all(warnings: Iterable[ListWarning]) -> str:
    """:param warnings: warnings to show. :return: them joined for one log line."""
    return "; ".join(w.describe() for w in warnings)
