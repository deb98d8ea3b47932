"""Write (or check) ``airflow_machine_images/api/compute_schemas.json`` from the installed client's documents.

The package checks request bodies against that snapshot (``airflow_machine_images.api.schema``): for
beta and v1, the ``Instance`` and ``MachineImage`` schemas of google-api-python-client's bundled
Compute Engine discovery documents and every schema they reference. Refresh it after the lock moves
google-api-python-client to a newer release (``make schema-snapshot``), read what changed, and adjust
the bodies or the docs if a field the package sends changed.

Usage::

    python scripts/schema_snapshot.py          # rewrite the snapshot, print what changed
    python scripts/schema_snapshot.py --check  # print what differs, exit 1 if anything does

Run it in the project's environment (``uv run``): it reads the documents of the google-api-python-client
installed there.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SNAPSHOT = REPO / "airflow_machine_images" / "api" / "compute_schemas.json"


def render(snapshot: dict) -> str:
    """The snapshot as written to disk: sorted keys, one-space indent, a final newline.

    :param snapshot: the snapshot.
    """
    return json.dumps(snapshot, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def fresh_snapshot() -> dict:
    """The snapshot of the installed google-api-python-client's documents."""
    from airflow_machine_images.api.schema import SUPPORTED_API_VERSIONS, load_discovery_document, snapshot_of

    documents = {version: load_discovery_document(version) for version in SUPPORTED_API_VERSIONS}
    source = f"google-api-python-client {importlib.metadata.version('google-api-python-client')}"
    return snapshot_of(documents, source)


def main(argv: list[str] | None = None) -> int:
    """Write or check the snapshot; exit 1 when ``--check`` finds a difference.

    :param argv: command-line arguments.
    """
    from airflow_machine_images.api.schema import describe_changes

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on any difference")
    args = parser.parse_args(argv)
    new = fresh_snapshot()
    old = json.loads(SNAPSHOT.read_text(encoding="utf-8")) if SNAPSHOT.is_file() else {}
    changes = describe_changes(old, new)
    if old.get("source") != new["source"]:
        changes.insert(0, f"source: {old.get('source')} -> {new['source']}")
    for line in changes:
        print(line)
    if args.check:
        print(f"{SNAPSHOT.relative_to(REPO)}: {'out of date' if changes else 'up to date'} ({new['source']})")
        return 1 if changes else 0
    SNAPSHOT.write_text(render(new), encoding="utf-8")
    print(f"wrote {SNAPSHOT.relative_to(REPO)} from {new['source']} ({len(changes)} changes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
