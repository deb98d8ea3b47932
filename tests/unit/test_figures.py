"""The figures the docs state come from the code or a generated report (``scripts/figures.py``, ``make figures``).

docs/figures.md is generated from the constants and defaults; it must be up to date. The pages' prose
states some of those figures in sentences: each such statement is listed in ``STATED`` with the figure
it must equal, so changing a constant fails here until the sentence says the new value.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from typing import TYPE_CHECKING, Any

import pytest

from airflow_machine_images.operators.retention import ComputeEngineMachineImageRetentionOperator
from airflow_machine_images.planning.retention import RetentionPlan
from airflow_machine_images.results import retention_summary
from tests.conftest import REPO_ROOT

if TYPE_CHECKING:
    from types import ModuleType

ORDINALS = {2: "second", 3: "third", 4: "fourth", 5: "fifth", 6: "sixth", 7: "seventh", 8: "eighth"}


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("figures_script", REPO_ROOT / "scripts" / "figures.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


FIGURES = load_script()


def value(what: str) -> str:
    """The generated value of the figure whose description starts with ``what``."""
    matches = [f.value for f in FIGURES.figures() if f.what.startswith(what)]
    assert len(matches) == 1, f"{what!r} names {len(matches)} figures"
    return matches[0]


def first_number(what: str) -> str:
    return re.match(r"[\d,.]+", value(what)).group(0)  # type: ignore[union-attr]


def stated_in(path: str, pattern: str) -> str:
    """Group 1 of ``pattern`` in the file ``path`` (relative to the repository)."""
    match = re.search(pattern, (REPO_ROOT / path).read_text())
    assert match, f"{path} no longer has {pattern!r}"
    return match.group(1)


#: (page, a pattern whose group 1 is the stated figure, the value it must have)
STATED: list[tuple[str, str, Any]] = [
    (
        "docs/operators.md",
        r"other transient faults get (\d+) attempts in all",
        lambda: value("5xx, dropped connections, timeouts: attempts"),
    ),
    (
        "docs/operators.md",
        r"with pause\nceilings ([\d, ]+ s)",
        lambda: value("5xx, dropped connections, timeouts: pause"),
    ),
    (
        "docs/operators.md",
        r"`resourceNotReady` briefly \((\d+) attempts in all\)",
        lambda: value("400 `resourceNotReady`: attempts"),
    ),
    (
        "docs/reliability.md",
        r"retried briefly: (\d+) attempts in all",
        lambda: value("400 `resourceNotReady`: attempts"),
    ),
    (
        "docs/reliability.md",
        r"retried briefly: \d+ attempts in all, pause ceilings ([\d, ]+ s)",
        lambda: value("400 `resourceNotReady`: pause"),
    ),
    ("docs/operators.md", r"until at least (\d+ s) of back-off", lambda: value("rate limits (429")),
    ("docs/operators.md", r"one attempt per (\d+ to \d+ s) after", lambda: value("rate limits: one attempt")),
    ("docs/reliability.md", r"until at least (\d+ s) of jittered back-off", lambda: value("rate limits (429")),
    ("docs/reliability.md", r"one attempt per (\d+ to \d+ s) past", lambda: value("rate limits: one attempt")),
    ("docs/reliability.md", r"waited out for up to (\d+ minutes)", lambda: value("403 `CONCURRENT").split(" (")[0]),
    ("docs/operators.md", r"submit again at most (\d+) times per try", lambda: value("resubmissions for answers")),
    ("docs/operators.md", r"a try walks at most\n(\d+) generations", lambda: value("generations one try")),
    ("docs/reliability.md", r"move on at most (\d+) times per try", lambda: value("resubmissions for answers")),
    ("docs/reliability.md", r"a try walks at most (\d+) generations", lambda: value("generations one try")),
    (
        "docs/reliability.md",
        r"submit again at most (\d+) times per try, then",
        lambda: value("resubmissions for answers"),
    ),
    ("docs/waiting.md", r"Up to (\d+) waiters per project", lambda: value("waiters per project")),
    (
        "docs/waiting.md",
        r"Long-polling resumes when\n(\d+) or fewer remain",
        lambda: first_number("coalesced waits go back"),
    ),
    ("docs/waiting.md", r"every (\w+) cycle reads all of them", lambda: ORDINALS[int(first_number("reconciliation"))]),
    ("docs/waiting.md", r"W the newest server time seen less\n(\d+ s)", lambda: value("finished-since lists overlap")),
    (
        "docs/waiting.md",
        r"in any minute per\nproject \((\d+) by default",
        lambda: value("`[machine_images] requests_per_minute"),
    ),
    (
        "docs/waiting.md",
        r"`requests_per_minute_per_project` \(default (\d+)\)",
        lambda: value("`[machine_images] requests_per_minute"),
    ),
    ("docs/waiting.md", r"`triggerers`\n\(default (\d+)\)", lambda: value("`[machine_images] triggerers`")),
    (
        "docs/waiting.md",
        r"fails above one list call per poll interval plus (\d+)\nread-backs",
        lambda: stated_in("tests/integration/test_triggers.py", r"budget = duration / poll_interval \+ (\d+)"),
    ),
    ("docs/operators.md", r"\| `poll_interval` \| (\d+) \|", lambda: first_number("insert operator `poll_interval`")),
    (
        "docs/operators.md",
        r"\| `timeout` \| (\d+) \|",
        lambda: first_number("insert operator `timeout`").replace(",", ""),
    ),
    ("docs/operators.md", r"\| `if_exists` \| `\"(\w+)\"` \|", lambda: value("insert operator `if_exists`").strip("`")),
    (
        "docs/operators.md",
        r"\| `api_version` \| `\"(\w+)\"` \|",
        lambda: value("insert operator `api_version`").strip("`"),
    ),
    ("docs/fleet-backups.md", r"page_size=(\d+)", lambda: first_number("list operator `page_size`")),
    ("docs/google-cloud.md", r"paging stops at ([\d,]+) pages", lambda: value("pages one list walk")),
    ("docs/google-cloud.md", r"answers over (\d+ MiB) are refused", lambda: value("largest answer read")),
    ("docs/google-cloud.md", r"nested deeper than (\d+) levels", lambda: first_number("deepest nesting")),
    ("docs/google-cloud.md", r"one list walk stops past (\d+ MiB)", lambda: value("bytes one list walk")),
    ("docs/emulator.md", r"refuses bodies over (\d+ MiB)", lambda: value("emulator: largest request body")),
    ("docs/emulator.md", r"keeps the newest ([\d,]+) requests", lambda: value("emulator: requests its log")),
    ("docs/emulator.md", r"requests and about (\d+ MiB)", lambda: value("emulator: bytes its log")),
]


def test_docs_figures_md_is_generated_from_the_code() -> None:
    expected = FIGURES.render(FIGURES.figures())
    assert (REPO_ROOT / "docs" / "figures.md").read_text() == expected, "docs/figures.md is stale: run make figures"


@pytest.mark.parametrize(("page", "pattern", "expected"), STATED, ids=[f"{p}:{pat[:40]}" for p, pat, _ in STATED])
def test_a_figure_the_docs_state_equals_the_code(page: str, pattern: str, expected: Any) -> None:
    stated = stated_in(page, pattern)
    assert stated == expected(), f"{page} says {stated!r}; the code says {expected()!r}"


def benchmark_goal_met(measure: str) -> bool:
    """Whether docs/benchmarks.md (generated by ``make bench``) reports the goal of ``measure`` as met."""
    for line in (REPO_ROOT / "docs" / "benchmarks.md").read_text().splitlines():
        if line.startswith(f"| {measure} |"):
            return line.rstrip().endswith("| **met** |")
    raise AssertionError(f"docs/benchmarks.md has no row {measure!r}")


def test_the_5000_wait_claims_are_the_benchmark_reports() -> None:
    waiting = (REPO_ROOT / "docs" / "waiting.md").read_text()
    assert "see each completion within two poll intervals (p99)" in waiting
    assert benchmark_goal_met("Detection p99, 5,000 waits")
    assert "at well under 60 requests in the\nbusiest minute" in waiting
    assert benchmark_goal_met("Operation reads per minute per project, 5,000 waits")
    for doc in ("CHANGELOG.md", "README.md", *(f"docs/{p.name}" for p in (REPO_ROOT / "docs").glob("*.md"))):
        if doc == "docs/benchmarks.md":
            continue
        stated = re.findall(r"p99 (?:of )?(\d+(?:\.\d+)? s)", (REPO_ROOT / doc).read_text())
        assert stated == [], f"{doc} quotes a p99 ({stated}): cite docs/benchmarks.md instead"


def _keys(text: str) -> set[str]:
    return set(re.findall(r'"(\w+)"', text))


def test_the_retention_docstring_and_docs_name_every_key_it_returns() -> None:
    plan = RetentionPlan(delete=["old"])
    returned = set(retention_summary("p", plan, dry_run=True, deleted=None))
    docstring = ComputeEngineMachineImageRetentionOperator.__doc__ or ""
    returns = docstring[docstring.index("Returns ``") : docstring.index(":param")]
    assert _keys(returns) == returned
    page = (REPO_ROOT / "docs" / "fleet-backups.md").read_text()
    sentence = page[page.index("It returns `project_id`") :].split(".\n")[0]
    assert set(re.findall(r"`(\w+)`", sentence)) == returned
