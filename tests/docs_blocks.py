"""The fenced code blocks and relative links of README.md and docs/*.md, as the docs tests read them.

A block is either run by a test or marked as shown only, by the nearest non-blank line above its fence:

- ``<!-- fragment -->``: shown only (a shell command, an output, part of a DAG);
- ``<!-- recipe: PATH -->``: a file of the README's testing recipe, written to PATH and run with pytest
  by ``tests/integration/test_readme_recipe.py``;
- no marker: must be a ``python`` block, and ``tests/unit/test_docs.py`` runs it.

Blocks inside a generated part (between ``<!-- BEGIN`` and ``<!-- END`` comments, or in a file whose
header says ``do not edit by hand``) are their generator's, checked by its own test, and are left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
FRAGMENT = "<!-- fragment -->"
RECIPE = re.compile(r"<!-- recipe: (?P<path>[\w./-]+) -->")


@dataclass(frozen=True)
class Block:
    """One fenced code block.

    :param doc: the file, relative to the repository.
    :param line: the line of its opening fence (1-based).
    :param language: the fence's info string (``python``, ``sh``, or empty).
    :param marker: the marker line above it, or None.
    :param code: its text.
    """

    doc: str
    line: int
    language: str
    marker: str | None
    code: str

    @property
    def recipe_path(self) -> str | None:
        """The path a recipe block is written to; None for other blocks."""
        match = RECIPE.fullmatch(self.marker or "")
        return match["path"] if match else None


def doc_files() -> list[Path]:
    """README.md and every page under docs/."""
    return [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def _generated_file(text: str) -> bool:
    return "do not edit by hand" in "\n".join(text.splitlines()[:5])


def blocks(path: Path) -> list[Block]:
    """The code blocks of one file, generated parts left out.

    :param path: a Markdown file.
    """
    text = path.read_text()
    if _generated_file(text):
        return []
    found: list[Block] = []
    lines = text.splitlines()
    generated, index = False, 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("<!-- BEGIN"):
            generated = True
        elif line.startswith("<!-- END"):
            generated = False
        elif line.startswith("```"):
            end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
            if not generated:
                above = next((lines[i].strip() for i in range(index - 1, -1, -1) if lines[i].strip()), "")
                marker = above if above.startswith("<!--") else None
                code = "\n".join(lines[index + 1 : end]) + "\n"
                rel = str(path.relative_to(REPO_ROOT))
                found.append(Block(rel, index + 1, line[3:].strip(), marker, code))
            index = end
        index += 1
    return found


def all_blocks() -> list[Block]:
    """Every code block of README.md and docs/*.md."""
    return [block for path in doc_files() for block in blocks(path)]


def recipe_files() -> dict[str, str]:
    """The README's testing recipe: path -> text of each ``<!-- recipe: PATH -->`` block."""
    return {block.recipe_path: block.code for block in blocks(REPO_ROOT / "README.md") if block.recipe_path}


_LINK = re.compile(r"\]\((?P<target>[#A-Za-z0-9_./:-]+)\)")


def relative_links(path: Path) -> list[tuple[int, str]]:
    """The relative links of one file outside code (line, target): ``docs/x.md#anchor``, ``#anchor``.

    :param path: a Markdown file.
    """
    links: list[tuple[int, str]] = []
    in_code = False
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            continue
        prose = re.sub(r"`[^`]*`", "", line)
        for match in _LINK.finditer(prose):
            target = match["target"]
            if not target.startswith(("http:", "https:", "mailto:")):
                links.append((number, target))
    return links


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file.

    :param path: a Markdown file.
    """
    found: set[str] = set()
    in_code = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            title = line.lstrip("#").strip().lower().replace("`", "")
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found
