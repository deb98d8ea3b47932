"""Every code block of README.md and docs/ is run by a test or marked as a fragment; every relative link resolves."""

from __future__ import annotations

from pathlib import Path

import pytest

import airflow_machine_images
from tests.docs_blocks import FRAGMENT, REPO_ROOT, Block, all_blocks, anchors, doc_files, recipe_files, relative_links

BLOCKS = all_blocks()
RUN_HERE = [block for block in BLOCKS if block.marker is None]


def test_every_block_is_run_or_marked_as_a_fragment() -> None:
    unmarked_other = [f"{b.doc}:{b.line} ({b.language or 'no language'})" for b in RUN_HERE if b.language != "python"]
    assert unmarked_other == [], (
        f"only python blocks are run here; mark these {FRAGMENT} or make them python: {unmarked_other}"
    )
    unknown = [
        f"{b.doc}:{b.line}: {b.marker}" for b in BLOCKS if b.marker not in (None, FRAGMENT) and not b.recipe_path
    ]
    assert unknown == [], f"unknown markers: {unknown}"
    recipes = [b for b in BLOCKS if b.recipe_path]
    assert all(b.doc == "README.md" for b in recipes), "recipe blocks are the README's (its recipe test runs them)"


def test_the_readme_recipe_is_a_dag_file_and_its_test() -> None:
    files = recipe_files()
    assert sorted(files) == ["dags/nightly_backup.py", "tests/test_nightly_backup.py"]
    for path, code in files.items():
        compile(code, path, "exec")  # a syntax error fails here, before the slower integration test


def test_the_readme_keeps_its_two_commands_first_and_stays_short() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    first_block = next(b for b in BLOCKS if b.doc == "README.md")
    assert first_block.line <= 5
    assert [line.split("#")[0].strip() for line in first_block.code.splitlines()] == ["make demo", "make test"]
    assert len(readme.splitlines()) <= 360


@pytest.mark.parametrize("block", RUN_HERE, ids=[f"{b.doc}:{b.line}" for b in RUN_HERE])
def test_python_block_runs(block: Block) -> None:
    """Run the block as a module of its own: a DAG file builds its DAG, a snippet does what it shows."""
    namespace: dict[str, object] = {"__name__": f"docs_block_{block.line}"}
    exec(compile(block.code, f"{block.doc}:{block.line}", "exec"), namespace)


def _docs_with_links() -> list[Path]:
    return doc_files()


def linked_file(doc: Path, path_part: str) -> Path:
    """The file a relative link points at; one under ``airflow_machine_images/`` is looked for in the package
    as imported (the compat cells run these tests from a copy of the docs, against the installed wheel).

    :param doc: the linking file.
    :param path_part: the link's target without its anchor.
    """
    if not path_part:
        return doc
    destination = (doc.parent / path_part).resolve()
    repo = REPO_ROOT.resolve()
    relative = destination.relative_to(repo) if destination.is_relative_to(repo) else None
    if not destination.exists() and relative is not None and relative.parts[0] == "airflow_machine_images":
        return Path(airflow_machine_images.__file__).parent.joinpath(*relative.parts[1:])
    return destination


@pytest.mark.parametrize("doc", _docs_with_links(), ids=lambda p: p.name)
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for line, target in relative_links(doc):
        path_part, _, anchor = target.partition("#")
        destination = linked_file(doc, path_part)
        if not destination.exists():
            broken.append(f"{doc.name}:{line}: {target} (no such file)")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{doc.name}:{line}: {target} (no heading #{anchor})")
    assert broken == []
