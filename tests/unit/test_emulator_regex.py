"""The emulator's ``eq`` matcher: the same answers as a regular-expression engine, in linear time."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_machine_images.emulator.regex import RegexError, compile_glob, compile_pattern

ATOMS = st.sampled_from(["a", "b", ".", "[ab]", "[^a]", "\\d", "\\w", "[a-c]", "\\.", "x"])


@st.composite
def patterns(draw: st.DrawFn, depth: int = 0) -> str:
    """Patterns of the common syntax of RE2 and Python's re (no anchors: their newline rules differ)."""
    kind = draw(st.integers(0, 5 if depth < 3 else 1))
    if kind <= 1:
        return draw(ATOMS)
    if kind == 2:
        return "".join(draw(st.lists(patterns(depth + 1), min_size=1, max_size=3)))
    if kind == 3:
        return "(" + "|".join(draw(st.lists(patterns(depth + 1), min_size=1, max_size=3))) + ")"
    quantifier = draw(st.sampled_from(["*", "+", "?", "{2}", "{0,2}", "{1,}", "*?", "+?"]))
    return f"(?:{draw(patterns(depth + 1))}){quantifier}"


@given(pattern=patterns(), text=st.text("abcx1.", max_size=12))
def test_it_agrees_with_a_regular_expression_engine(pattern: str, text: str) -> None:
    assert compile_pattern(pattern).fullmatch(text) == (re.fullmatch(pattern, text) is not None), (pattern, text)


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("nightly-.*", "nightly-web-1", True),
        ("web-[0-9]+", "web-12", True),
        ("web-[0-9]+", "web-", False),
        ("prod|staging", "staging", True),
        ("^a$", "a", True),
        ("\\Aab\\z", "ab", True),
        ("a^b", "ab", False),
        ("(?P<n>a)b", "ab", True),
        ("a]b", "a]b", True),
        ("a{b", "a{b", True),
        ("[-a]", "-", True),
        ("[a-]", "-", True),
        ("", "", True),
        ("a|", "", True),
    ],
)
def test_examples(pattern: str, text: str, expected: bool) -> None:
    assert compile_pattern(pattern).fullmatch(text) is expected


@pytest.mark.parametrize(
    "pattern", ["(a+)+b", "(a|aa)*c", "(a*)*b", "a*a*a*a*a*a*a*a*a*b", "(x+x+)+y", "(.*a){20}b", "(a|a?)+b"]
)
def test_patterns_that_make_backtracking_engines_explode_run_in_linear_time(pattern: str) -> None:
    regex = compile_pattern(pattern)
    started = time.monotonic()
    assert not regex.fullmatch("a" * 2000)
    assert time.monotonic() - started < 2.0


def test_globs_run_in_linear_time() -> None:
    glob = compile_glob("*a*a*a*a*a*a*a*a*b")
    started = time.monotonic()
    assert not glob.fullmatch("a" * 2000)
    assert glob.fullmatch("xaaaaaaaaby") is False and glob.fullmatch("aaaaaaaab")
    assert compile_glob("web-*").fullmatch("web-1\nx")
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("(a)\\1", "backreference"),
        ("(?=a)", "lookaround"),
        ("(?<!a)b", "lookaround"),
        ("a*+", "possessive"),
        ("a{1001}", "1000"),
        ("(a{1000}){1000}", "too large"),
        ("x" * 5000, "too large"),
        ("(" * 150 + ")" * 150, "nested"),
        ("(?i)a", "flags"),
        ("\\bword", "escape"),
        ("[[:alpha:]]", "POSIX"),
        ("*a", "nothing to repeat"),
        ("(a", "missing ')'"),
        ("a)", "unbalanced"),
        ("[a", "missing ']'"),
        ("[z-a]", "range"),
        ("a{3,1}", "m < n"),
    ],
)
def test_refusals_say_why(pattern: str, why: str) -> None:
    with pytest.raises(RegexError, match=re.escape(why)):
        compile_pattern(pattern)
