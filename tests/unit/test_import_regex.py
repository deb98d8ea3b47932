"""DAG files import our operators at parse time: that must compile no regular expression of the package.

Patterns are module-level *text* (``..._PATTERN``) matched with ``re.fullmatch``/``re.search``/``re.sub``...,
which compile on first use and keep the result in ``re``'s own cache; a module-level ``re.compile`` (or a
check run at import) would put the compile back on every parse.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = r"""
import json, linecache, re, sys
# The baseline every DAG file pays anyway (as in test_import_cost.py): Airflow's DAG and operator classes.
from airflow.providers.common.compat.sdk import DAG, BaseOperator

PACKAGE = "airflow_machine_images"
calls = []
original = re._compile


def _module(frame):
    return frame.f_globals.get("__name__") or ""


def _in_package(frame):
    return _module(frame) == PACKAGE or _module(frame).startswith(PACKAGE + ".")


def counting(*args, **kwargs):
    frame = sys._getframe(1)
    while frame is not None and (_module(frame) == "re" or _module(frame).startswith(("re.", "sre_"))):
        frame = frame.f_back  # re.compile, re.fullmatch, re.sub...: the caller is whoever called them
    if frame is not None and _in_package(frame):
        statement, outer = None, frame
        while outer is not None:  # the package's top-level statement that led here, if any
            if outer.f_code.co_name == "<module>" and _in_package(outer):
                line = linecache.getline(outer.f_code.co_filename, outer.f_lineno).strip()
                statement = f"{_module(outer)}: {line}"
                break
            outer = outer.f_back
        calls.append(
            {
                "pattern": str(args[0] if args else kwargs.get("pattern"))[:80],
                "caller": f"{_module(frame)}:{frame.f_lineno} ({frame.f_code.co_name})",
                "statement": statement,
            }
        )
    return original(*args, **kwargs)


re._compile = counting
import airflow_machine_images.operators, airflow_machine_images.sensors
# The other import paths a DAG file may use (most of what they load is loaded by now).
import airflow_machine_images, airflow_machine_images.fleet, airflow_machine_images.fleet_operators
import airflow_machine_images.restore_operators, airflow_machine_images.assets, airflow_machine_images.links
re._compile = original
print(json.dumps(calls))
"""

#: Top-level statements allowed to compile at import, with why, each ``"module: statement"`` (its start).
#: None: a check that runs at import (a validated constant) compiles its patterns there too, so build such
#: values where they are used.
KNOWN_IMPORT_TIME_CHECKS: tuple[str, ...] = ()


def _compiles_at_import() -> list[dict[str, str | None]]:
    """The ``re`` compiles whose caller is package code while a fresh interpreter imports the package.

    :return: one dict per compile: ``pattern`` (cut short), ``caller`` (module, line and function) and
        ``statement`` (the package's top-level statement being run, or None).
    """
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True)
    calls: list[dict[str, str | None]] = json.loads(out.stdout.strip().splitlines()[-1])
    return calls


def _known(call: dict[str, str | None], known: str) -> bool:
    statement = call["statement"]
    return statement is not None and statement.startswith(known)


def test_importing_operators_and_sensors_compiles_no_regular_expression_of_the_package() -> None:
    calls = _compiles_at_import()
    unexpected = [call for call in calls if not any(_known(call, known) for known in KNOWN_IMPORT_TIME_CHECKS)]
    assert unexpected == [], (
        "a regular expression is compiled while the package is imported: keep the pattern as text "
        "(a Final ..._PATTERN) and match with re.fullmatch/re.search/re.sub... where it is used"
    )
    stale = [known for known in KNOWN_IMPORT_TIME_CHECKS if not any(_known(call, known) for call in calls)]
    assert stale == [], f"no longer compiles at import: remove it from KNOWN_IMPORT_TIME_CHECKS: {stale}"
