"""How each benchmark script hands its results to ``run_all`` (or to a person running it by hand)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def emit_json(results: Any, out: str | None) -> None:
    """Write ``results`` as indented JSON to the file ``out``, or to stdout when ``out`` is None.

    :param results: JSON-serialisable results (other values are written with ``str``).
    :param out: the ``--out`` argument of the script.
    """
    text = json.dumps(results, indent=2, default=str) + "\n"
    if out:
        Path(out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
