"""The ``filter`` and ``orderBy`` languages of Compute Engine list calls.

Grammar (AIP-160 precedence: ``OR`` binds tighter than juxtaposition and ``AND``)::

    filter      := [expression]
    expression  := sequence { "AND" sequence }
    sequence    := factor { factor }                  # implicit AND
    factor      := term { "OR" term }
    term        := "NOT" term | "-" term | primary
    primary     := "(" expression ")" | restriction
    restriction := FIELD OP VALUE
    FIELD       := name { "." name }                  # labels.managed-by, scheduling.preemptible
    OP          := "=" | "!=" | ">" | "<" | ">=" | "<=" | ":" | "eq" | "ne"
    VALUE       := "double quoted" | 'single quoted' | bare-word

Semantics: ``=``/``!=`` compare text exactly (numbers and booleans by value; a list field matches if
any element does); ``>``/``<``/``>=``/``<=`` compare numerically when both sides are numbers, as
instants when both are RFC 3339 timestamps, else as text; ``field:*`` is presence, ``map:key`` key
presence, ``field:value`` equality with ``*`` wildcards. A missing field satisfies only ``!=`` and
``ne``. ``eq``/``ne`` take an RE2 regular expression that must match the whole value, matched in
linear time as RE2 does (:mod:`airflow_machine_images.emulator.regex`: a crafted pattern cannot stall
the emulator); as in the real API, that form cannot be mixed with the others nor combined with
``OR``/``NOT``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from airflow_machine_images.emulator.regex import Regex, RegexError, compile_glob, compile_pattern
from airflow_machine_images.emulator.timefmt import parse_rfc3339

__all__ = ["FilterError", "OrderBy", "compile_filter", "parse_order_by", "sort_resources"]

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]+)*")
_OPERATOR = re.compile(r"!=|>=|<=|=|>|<|:|(?:eq|ne)(?=[\s\"'])")
_BARE = re.compile(r"[^\s()]+")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_MAX_DEPTH = 64


class FilterError(ValueError):
    """A filter or orderBy the emulator (like the real API) cannot parse."""


class Node(Protocol):
    """A compiled filter expression."""

    def matches(self, resource: Mapping[str, Any]) -> bool:
        """:param resource: a resource as the API renders it. :return: whether it passes."""
        ...


def _resolve(resource: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    current: Any = resource
    for part in path:
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        else:
            return None
    return current


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _elements(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list) else [value]


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        return float(value)
    return None


def _equal(value: Any, literal: str) -> bool:
    """``=`` on one value: text exactly, numbers and booleans by value."""
    if isinstance(value, bool):
        return literal.lower() == _text(value)
    if isinstance(value, (int, float)):
        return _number(literal) == float(value)
    if isinstance(value, str):
        return value == literal
    return False


def _ordered(value: Any, op: str, literal: str) -> bool:
    """``<``/``>``/``<=``/``>=``: as numbers, else as instants, else as text."""
    left: Any
    right: Any
    left, right = _number(value), _number(literal)
    if left is None or right is None:
        left, right = (parse_rfc3339(value) if isinstance(value, str) else None), parse_rfc3339(literal)
        if left is None or right is None:
            if isinstance(value, (dict, list)):
                return False
            left, right = _text(value), literal
    if op == ">":
        return bool(left > right)
    if op == "<":
        return bool(left < right)
    if op == ">=":
        return bool(left >= right)
    return bool(left <= right)


@functools.lru_cache(maxsize=256)
def _glob(pattern: str) -> Regex:
    return compile_glob(pattern)  # linear time: '*a*a*a*b' would make a backtracking engine crawl


@dataclass(frozen=True)
class Restriction:
    """``field OP value``.

    :param path: the dotted field path, split.
    :param op: the operator.
    :param value: the literal, unquoted.
    :param pattern: the compiled regular expression of ``eq``/``ne`` (:mod:`.regex`: RE2 syntax, linear time).
    """

    path: tuple[str, ...]
    op: str
    value: str
    pattern: Regex | None = None

    def matches(self, resource: Mapping[str, Any]) -> bool:
        """:param resource: a rendered resource. :return: whether the restriction holds."""
        actual = _resolve(resource, self.path)
        op = self.op
        if actual is None:
            return op in ("!=", "ne")
        if op in ("eq", "ne"):
            assert self.pattern is not None
            pattern = self.pattern
            hit = any(pattern.fullmatch(_text(v)) for v in _elements(actual))
            return hit if op == "eq" else not hit
        if op == ":":
            if self.value == "*":
                return True
            if isinstance(actual, Mapping):
                return self.value in actual
            glob = _glob(self.value)
            return any(glob.fullmatch(_text(v)) for v in _elements(actual))
        if op == "=":
            return any(_equal(v, self.value) for v in _elements(actual))
        if op == "!=":
            return not any(_equal(v, self.value) for v in _elements(actual))
        return any(_ordered(v, op, self.value) for v in _elements(actual))


@dataclass(frozen=True)
class Not:
    """``NOT term``. :param child: the negated expression."""

    child: Node

    def matches(self, resource: Mapping[str, Any]) -> bool:
        """:param resource: a rendered resource. :return: the negation."""
        return not self.child.matches(resource)


@dataclass(frozen=True)
class AllOf:
    """Conjunction. :param children: the expressions that must all hold."""

    children: tuple[Node, ...]

    def matches(self, resource: Mapping[str, Any]) -> bool:
        """:param resource: a rendered resource. :return: whether every child holds."""
        return all(child.matches(resource) for child in self.children)


class AnyOf:
    """Disjunction; equality terms on one field become a set lookup, so 100-term OR chains stay cheap.

    :param children: the alternatives.
    """

    def __init__(self, children: Sequence[Node]) -> None:
        self.children = tuple(children)
        self.sets: dict[tuple[str, ...], tuple[frozenset[str], tuple[Restriction, ...]]] = {}
        groups: dict[tuple[str, ...], list[Restriction]] = {}
        rest: list[Node] = []
        for child in self.children:
            if isinstance(child, Restriction) and child.op == "=":
                groups.setdefault(child.path, []).append(child)
            else:
                rest.append(child)
        for path, terms in groups.items():
            self.sets[path] = (frozenset(t.value for t in terms), tuple(terms))
        self.rest = tuple(rest)

    def matches(self, resource: Mapping[str, Any]) -> bool:
        """:param resource: a rendered resource. :return: whether any alternative holds."""
        for path, (values, terms) in self.sets.items():
            actual = _resolve(resource, path)
            if isinstance(actual, str):
                if actual in values:
                    return True
            elif any(term.matches(resource) for term in terms):
                return True
        return any(child.matches(resource) for child in self.rest)


class _Parser:
    """Recursive-descent parser of the filter grammar (see the module docstring). :param text: the filter."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0

    def fail(self, what: str) -> FilterError:
        return FilterError(f"Invalid list filter expression '{self.text}': {what} at position {self.pos}")

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def at_keyword(self, word: str) -> bool:
        end = self.pos + len(word)
        if not self.text.startswith(word, self.pos):
            return False
        return end < len(self.text) and (self.text[end].isspace() or self.text[end] == "(")

    def keyword(self, word: str) -> bool:
        saved = self.pos
        self.skip()
        if self.at_keyword(word):
            self.pos += len(word)
            return True
        self.pos = saved
        return False

    def parse(self) -> Node | None:
        self.skip()
        if self.at_end():
            return None
        node = self.expression()
        self.skip()
        if not self.at_end():
            raise self.fail("unexpected text")
        return node

    def expression(self) -> Node:
        items = [self.sequence()]
        while self.keyword("AND"):
            items.append(self.sequence())
        return items[0] if len(items) == 1 else AllOf(tuple(items))

    def sequence(self) -> Node:
        items = [self.factor()]
        while True:
            saved = self.pos
            self.skip()
            if self.at_end() or self.text[self.pos] == ")" or self.at_keyword("AND") or self.at_keyword("OR"):
                self.pos = saved
                break
            items.append(self.factor())
        return items[0] if len(items) == 1 else AllOf(tuple(items))

    def factor(self) -> Node:
        items = [self.term()]
        while self.keyword("OR"):
            items.append(self.term())
        return items[0] if len(items) == 1 else AnyOf(items)

    def term(self) -> Node:
        self.skip()
        if self.keyword("NOT"):
            return Not(self.term())
        if self.text.startswith("-", self.pos):
            self.pos += 1
            return Not(self.term())
        return self.primary()

    def primary(self) -> Node:
        self.skip()
        if self.text.startswith("(", self.pos):
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise self.fail("parentheses nested too deeply")
            self.pos += 1
            node = self.expression()
            self.skip()
            if not self.text.startswith(")", self.pos):
                raise self.fail("expected ')'")
            self.pos += 1
            self.depth -= 1
            return node
        return self.restriction()

    def restriction(self) -> Node:
        field = _FIELD.match(self.text, self.pos)
        if field is None:
            raise self.fail("expected a field name")
        self.pos = field.end()
        self.skip()
        op = _OPERATOR.match(self.text, self.pos)
        if op is None:
            raise self.fail("expected an operator (=, !=, >, <, :, eq, ne)")
        self.pos = op.end()
        self.skip()
        value = self.value()
        pattern = None
        if op.group() in ("eq", "ne"):
            try:
                pattern = compile_pattern(value)
            except RegexError as exc:
                raise self.fail(str(exc)) from None
        return Restriction(tuple(field.group().split(".")), op.group(), value, pattern)

    def value(self) -> str:
        if self.at_end():
            raise self.fail("expected a value")
        quote = self.text[self.pos]
        if quote in "\"'":
            out: list[str] = []
            index = self.pos + 1
            while index < len(self.text):
                char = self.text[index]
                if char == "\\" and index + 1 < len(self.text):
                    following = self.text[index + 1]
                    out.append(following if following in (quote, "\\") else char + following)
                    index += 2
                    continue
                if char == quote:
                    self.pos = index + 1
                    return "".join(out)
                out.append(char)
                index += 1
            raise self.fail("unterminated quoted value")
        bare = _BARE.match(self.text, self.pos)
        if bare is None:
            raise self.fail("expected a value")
        self.pos = bare.end()
        return bare.group()


def _check_regex_form(node: Node, text: str) -> None:
    """Reject the eq/ne regular-expression form mixed with other operators, OR or NOT (as the API does)."""
    restrictions: list[Restriction] = []
    combined = False
    stack: list[Node] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Restriction):
            restrictions.append(current)
        elif isinstance(current, AllOf):
            stack.extend(current.children)
        elif isinstance(current, AnyOf):
            combined = True
            stack.extend(current.children)
        elif isinstance(current, Not):
            combined = True
            stack.append(current.child)
    regex = [r for r in restrictions if r.op in ("eq", "ne")]
    if regex and (len(regex) != len(restrictions) or combined):
        raise FilterError(
            f"Invalid list filter expression '{text}': the regular-expression form (eq/ne) "
            "cannot be mixed with other operators, OR or NOT"
        )


@functools.lru_cache(maxsize=256)
def compile_filter(text: str) -> Callable[[Mapping[str, Any]], bool]:
    """Compile a ``filter`` query parameter.

    :param text: the filter (empty = everything passes).
    :return: a predicate over rendered resources.
    :raises FilterError: if the filter cannot be parsed.
    """
    node = _Parser(text).parse()
    if node is None:
        return lambda resource: True
    _check_regex_form(node, text)
    return node.matches


@dataclass(frozen=True)
class OrderBy:
    """A parsed ``orderBy``. :param path: the field path. :param descending: ``desc`` given."""

    path: tuple[str, ...]
    descending: bool


_ORDER_BY = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]+)*)(?:\s+(asc|desc))?\s*")


def parse_order_by(text: str) -> OrderBy | None:
    """Parse ``orderBy``: one field, optionally followed by ``asc`` or ``desc``.

    :param text: the parameter (empty = default order).
    :return: the ordering, or None for the default.
    :raises FilterError: if it is not ``field [asc|desc]``.
    """
    if not text.strip():
        return None
    match = _ORDER_BY.fullmatch(text)
    if match is None:
        raise FilterError(f"Invalid value for field 'orderBy': '{text}'. Expected 'field' or 'field desc'.")
    return OrderBy(tuple(match.group(1).split(".")), match.group(2) == "desc")


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    number = _number(value)
    if number is not None:
        return (2, number)
    if isinstance(value, str):
        moment = parse_rfc3339(value)
        if moment is not None:
            return (3, moment.timestamp())
        return (4, value)
    return (5, _text(value))


def sort_resources(resources: list[dict[str, Any]], order: OrderBy | None) -> list[dict[str, Any]]:
    """Order rendered resources: by ``name`` by default, else by the given field (stable, name second).

    :param resources: rendered resources.
    :param order: the parsed ``orderBy``.
    :return: a new, sorted list.
    """
    result = sorted(resources, key=lambda r: str(r.get("name", "")))
    if order is not None:
        result.sort(key=lambda r: _sort_key(_resolve(r, order.path)), reverse=order.descending)
    return result
