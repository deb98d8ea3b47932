"""Regular expressions for ``eq``/``ne`` list filters, matched in linear time, as RE2 matches them.

The real API evaluates these patterns with RE2, which never backtracks. Python's ``re`` does, so a
crafted pattern such as ``(a+)+b`` held an emulator thread (and, through the GIL, the whole
process) for minutes. Rejecting only nested quantifiers would not be enough: ``a*a*a*a*a*b`` still
costs polynomial time, and a time limit cannot interrupt ``re`` from another thread. So patterns are
compiled here into a Thompson NFA and simulated state set by state set, as RE2 does: the cost is at
most (text length x pattern size), whatever the pattern.

Syntax: RE2's, less what the emulator does not need: literals and ``\\``-escaped punctuation, ``.``,
classes (``[a-z0-9_-]``, ``[^...]``, ``\\d \\w \\s`` and their negations, ``\\t \\n \\r \\f \\v``),
groups (``(...)``, ``(?:...)``, ``(?P<name>...)``), ``|``, ``* + ?`` and ``{n}``, ``{n,}``, ``{n,m}``
(lazy forms accepted: they do not change whether a text matches), ``^``/``\\A`` and ``$``/``\\z``.
Refused with :class:`RegexError` (the API answers 400): what RE2 itself refuses (backreferences,
lookaround, possessive quantifiers, counts above 1000) and what this matcher leaves out (flags,
``\\b``, Unicode classes); patterns longer than 4096 characters or compiling to more than 20,000
states ("too large").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Regex", "RegexError", "compile_glob", "compile_pattern"]

MAX_PATTERN_LENGTH = 4096
MAX_REPEAT = 1000  # RE2's limit on {n,m}
MAX_STATES = 20_000
MAX_NESTING = 100

_META = set("\\.[]()|*+?{}^$")
_CLASS_ESCAPES: dict[str, Callable[[str], bool]] = {
    "d": lambda c: "0" <= c <= "9",
    "w": lambda c: c.isascii() and (c.isalnum() or c == "_"),
    "s": lambda c: c in " \t\n\r\f\v",
}
_CONTROL_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f", "v": "\v"}


class RegexError(ValueError):
    """A pattern the matcher (like RE2, or beyond what the emulator supports) will not run."""


# ------------------------------------------------------------------------------------------ syntax tree


@dataclass(frozen=True)
class _Char:
    test: Callable[[str], bool]


@dataclass(frozen=True)
class _Assert:
    at_start: bool  # True: ^ / \A, False: $ / \z


@dataclass(frozen=True)
class _Concat:
    items: tuple[object, ...]


@dataclass(frozen=True)
class _Alt:
    options: tuple[object, ...]


@dataclass(frozen=True)
class _Repeat:
    item: object
    low: int
    high: int | None  # None: unbounded


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.pos = 0
        self.depth = 0

    def fail(self, why: str) -> RegexError:
        return RegexError(f"regular expression {self.text[:100]!r} at position {self.pos}: {why}")

    def peek(self) -> str | None:
        return self.text[self.pos] if self.pos < len(self.text) else None

    def parse(self) -> object:
        node = self.alternation()
        if self.pos < len(self.text):
            raise self.fail("unbalanced ')'")
        return node

    def alternation(self) -> object:
        options = [self.concatenation()]
        while self.peek() == "|":
            self.pos += 1
            options.append(self.concatenation())
        return options[0] if len(options) == 1 else _Alt(tuple(options))

    def concatenation(self) -> object:
        items: list[object] = []
        while self.peek() not in (None, "|", ")"):
            items.append(self.quantified())
        return items[0] if len(items) == 1 else _Concat(tuple(items))

    def quantified(self) -> object:
        atom = self.atom()
        while True:
            char = self.peek()
            if char in ("*", "+", "?"):
                self.pos += 1
                low, high = {"*": (0, None), "+": (1, None), "?": (0, 1)}[char]
            elif char == "{" and self._counted_ahead():
                low, high = self.counts()
            else:
                return atom
            if isinstance(atom, _Assert):
                raise self.fail("a quantifier after an anchor")
            if self.peek() == "+":
                raise self.fail("possessive quantifiers are not RE2 syntax")
            if self.peek() == "?":
                self.pos += 1  # lazy: the same texts match
            atom = _Repeat(atom, low, high)

    def _counted_ahead(self) -> bool:
        end = self.text.find("}", self.pos)
        body = self.text[self.pos + 1 : end] if end > 0 else ""
        return bool(body) and all(c.isdigit() or c == "," for c in body) and body[0].isdigit()

    def counts(self) -> tuple[int, int | None]:
        end = self.text.index("}", self.pos)
        body = self.text[self.pos + 1 : end]
        self.pos = end + 1
        low_text, comma, high_text = body.partition(",")
        low = int(low_text)
        high = (int(high_text) if high_text else None) if comma else low
        if low > MAX_REPEAT or (high is not None and high > MAX_REPEAT):
            raise self.fail(f"repeat counts above {MAX_REPEAT} are not RE2 syntax")
        if high is not None and high < low:
            raise self.fail("a repeat count {n,m} with m < n")
        return low, high

    def atom(self) -> object:
        char = self.peek()
        assert char is not None
        if char == "(":
            return self.group()
        if char == "[":
            return self.char_class()
        if char == "\\":
            return self.escape()
        self.pos += 1
        if char == ".":
            return _Char(lambda c: c != "\n")
        if char == "^":
            return _Assert(at_start=True)
        if char == "$":
            return _Assert(at_start=False)
        if char in "*+?":
            raise self.fail("nothing to repeat")
        if char in "{}]" or char not in _META:
            return _Char(lambda c, char=char: c == char)  # type: ignore[misc]
        raise self.fail(f"unexpected {char!r}")

    def group(self) -> object:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.fail("groups nested too deeply")
        self.pos += 1
        if self.text.startswith("?", self.pos):
            rest = self.text[self.pos :]
            if rest.startswith("?:"):
                self.pos += 2
            elif rest.startswith("?P<") and ">" in rest:
                self.pos = self.text.index(">", self.pos) + 1
            elif rest[:2] in ("?=", "?!") or rest[:3] in ("?<=", "?<!"):
                raise self.fail("lookaround assertions are not RE2 syntax")
            else:
                raise self.fail("flags and other (?...) groups are not supported by the emulator")
        node = self.alternation()
        if self.peek() != ")":
            raise self.fail("missing ')'")
        self.pos += 1
        self.depth -= 1
        return node

    def escape(self) -> object:
        if self.pos + 1 >= len(self.text):
            raise self.fail("a trailing backslash")
        char = self.text[self.pos + 1]
        self.pos += 2
        if char.isdigit():
            raise self.fail("backreferences are not RE2 syntax")
        if char in "Az":
            return _Assert(at_start=char == "A")
        test = self._class_escape(char)
        if test is not None:
            return _Char(test)
        if char in _CONTROL_ESCAPES:
            literal = _CONTROL_ESCAPES[char]
            return _Char(lambda c: c == literal)
        if char.isalnum():
            raise self.fail(f"the escape \\{char} is not supported by the emulator")
        return _Char(lambda c: c == char)

    @staticmethod
    def _class_escape(char: str) -> Callable[[str], bool] | None:
        base = _CLASS_ESCAPES.get(char.lower())
        if base is None:
            return None
        return base if char.islower() else (lambda c: not base(c))

    def char_class(self) -> object:
        self.pos += 1
        negated = self.peek() == "^"
        if negated:
            self.pos += 1
        tests: list[Callable[[str], bool]] = []
        first = True
        while True:
            char = self.peek()
            if char is None:
                raise self.fail("missing ']'")
            if char == "]" and not first:
                self.pos += 1
                break
            first = False
            if self.text.startswith("[:", self.pos):
                raise self.fail("POSIX classes are not supported by the emulator")
            low = self._class_member()
            if isinstance(low, str) and self.peek() == "-" and self.text[self.pos + 1 : self.pos + 2] not in ("]", ""):
                self.pos += 1
                high = self._class_member()
                if not isinstance(high, str) or high < low:
                    raise self.fail("a bad range in a class")
                tests.append(lambda c, low=low, high=high: low <= c <= high)  # type: ignore[misc]
            elif isinstance(low, str):
                tests.append(lambda c, low=low: c == low)  # type: ignore[misc]
            else:
                tests.append(low)
        members = tuple(tests)
        if negated:
            return _Char(lambda c: not any(test(c) for test in members))
        return _Char(lambda c: any(test(c) for test in members))

    def _class_member(self) -> str | Callable[[str], bool]:
        char = self.text[self.pos]
        if char != "\\":
            self.pos += 1
            return char
        if self.pos + 1 >= len(self.text):
            raise self.fail("a trailing backslash")
        escaped = self.text[self.pos + 1]
        self.pos += 2
        test = self._class_escape(escaped)
        if test is not None:
            return test
        if escaped in _CONTROL_ESCAPES:
            return _CONTROL_ESCAPES[escaped]
        if escaped.isalnum():
            raise self.fail(f"the escape \\{escaped} is not supported by the emulator")
        return escaped


# ------------------------------------------------------------------------------------------ the automaton

_CHAR, _SPLIT, _ASSERT_START, _ASSERT_END, _MATCH = range(5)


@dataclass
class Regex:
    """A compiled pattern: a Thompson NFA, simulated in O(len(text) x states).

    :param pattern: the source text.
    """

    pattern: str
    kinds: list[int] = field(default_factory=list, repr=False)
    tests: list[Callable[[str], bool] | None] = field(default_factory=list, repr=False)
    outs: list[list[int]] = field(default_factory=list, repr=False)
    start: int = 0

    def _new(self, kind: int, test: Callable[[str], bool] | None = None, outs: list[int] | None = None) -> int:
        if len(self.kinds) >= MAX_STATES:
            raise RegexError(f"regular expression {self.pattern[:100]!r} is too large (over {MAX_STATES} states)")
        self.kinds.append(kind)
        self.tests.append(test)
        self.outs.append(outs or [])
        return len(self.kinds) - 1

    def _emit(self, node: object, follow: int) -> int:
        """Emit ``node`` so that it continues at state ``follow``; return its first state."""
        if isinstance(node, _Char):
            return self._new(_CHAR, node.test, [follow])
        if isinstance(node, _Assert):
            return self._new(_ASSERT_START if node.at_start else _ASSERT_END, None, [follow])
        if isinstance(node, _Concat):
            for item in reversed(node.items):
                follow = self._emit(item, follow)
            return follow
        if isinstance(node, _Alt):
            return self._new(_SPLIT, None, [self._emit(option, follow) for option in node.options])
        if isinstance(node, _Repeat):
            if node.high is None:
                loop = self._new(_SPLIT, None, [])
                body = self._emit(node.item, loop)
                self.outs[loop] = [body, follow]
                tail = loop
            else:
                tail = follow
                for _ in range(node.high - node.low):
                    tail = self._new(_SPLIT, None, [self._emit(node.item, tail), follow])
            for _ in range(node.low):
                tail = self._emit(node.item, tail)
            return tail
        return follow  # the empty pattern

    def _closure(self, states: list[int], position: int, length: int) -> set[int]:
        seen: set[int] = set()
        stack = list(states)
        while stack:
            state = stack.pop()
            if state in seen:
                continue
            seen.add(state)
            kind = self.kinds[state]
            if (
                kind == _SPLIT
                or (kind == _ASSERT_START and position == 0)
                or (kind == _ASSERT_END and position == length)
            ):
                stack.extend(self.outs[state])
        return seen

    def fullmatch(self, text: str) -> bool:
        """Whether the whole of ``text`` matches (the semantics of ``eq``).

        :param text: the field's value.
        """
        length = len(text)
        current = self._closure([self.start], 0, length)
        for position, char in enumerate(text, start=1):
            moved = [
                self.outs[state][0]
                for state in current
                if self.kinds[state] == _CHAR and self.tests[state](char)  # type: ignore[misc]
            ]
            if not moved:
                return False
            current = self._closure(moved, position, length)
        return any(self.kinds[state] == _MATCH for state in current)


def compile_pattern(pattern: str) -> Regex:
    """Compile an RE2-syntax pattern (see the module docstring).

    :param pattern: the pattern.
    :raises RegexError: the pattern is not accepted, saying why.
    """
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise RegexError(f"regular expression is too large ({len(pattern)} characters, at most {MAX_PATTERN_LENGTH})")
    tree = _Parser(pattern).parse()
    regex = Regex(pattern)
    regex.start = regex._emit(tree, regex._new(_MATCH))
    return regex


def compile_glob(pattern: str) -> Regex:
    """Compile a ``:`` filter value, where ``*`` stands for any text (newlines included).

    :param pattern: the value, e.g. ``web-*``.
    """
    parts: list[object] = []
    for index, literal in enumerate(pattern.split("*")):
        if index:
            parts.append(_Repeat(_Char(lambda c: True), 0, None))
        parts.extend(_Char(lambda c, char=char: c == char) for char in literal)  # type: ignore[misc]
    regex = Regex(pattern)
    regex.start = regex._emit(_Concat(tuple(parts)), regex._new(_MATCH))
    return regex
