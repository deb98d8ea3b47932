"""DAG files import our operators at parse time: that must not drag in Google's or HTTP libraries."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY_PREFIXES = ("google", "googleapiclient", "requests", "aiohttp", "httplib2", "grpc")

PROBE = """
import json, sys
# The baseline every DAG file pays anyway: Airflow's DAG and operator classes (airflow.sdk on 3.x,
# airflow.models on 2.x), through common-compat, which knows where each lives.
from airflow.providers.common.compat.sdk import DAG, BaseOperator
before = set(sys.modules)
import {module}
added = sorted(set(sys.modules) - before)
# Airflow 2's own baseline already loads requests: count only what came after it.
loaded_with_code = sorted(
    name for name, mod in sys.modules.items()
    if name not in before and name.split(".")[0] in {heavy!r} and getattr(mod, "__file__", None)
)
print(json.dumps({{"added": added, "with_code": loaded_with_code}}))
"""


@pytest.mark.parametrize(
    "module",
    [
        "airflow_machine_images.operators",
        "airflow_machine_images.fleet_operators",
        "airflow_machine_images.restore_operators",
        "airflow_machine_images.fleet",
        "airflow_machine_images.sensors",
        "airflow_machine_images.assets",
        "airflow_machine_images.links",
        "airflow_machine_images",
    ],
)
def test_module_import_loads_no_google_or_http_library(module: str) -> None:
    try:
        __import__(module)
    except ModuleNotFoundError:
        pytest.fail(f"{module} does not exist")
    code = PROBE.format(module=module, heavy=set(HEAVY_PREFIXES))
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    heavy_added = [m for m in result["added"] if m.split(".")[0] in HEAVY_PREFIXES]
    assert heavy_added == [], f"importing {module} loaded {heavy_added}"
    # Airflow itself may register the empty 'google' namespace package; no module with code may be loaded.
    assert result["with_code"] == [], f"modules with code loaded: {result['with_code']}"


TRIGGER_PROBE = """
import json, sys
from airflow.providers.common.compat.sdk import DAG, BaseOperator
before = set(sys.modules)
import airflow_machine_images.operators, airflow_machine_images.sensors
added = sorted(set(sys.modules) - before)
print(json.dumps(added))
"""


def test_dag_parse_loads_no_trigger_module() -> None:
    """Only the triggerer runs triggers, and an operator needs one only when it defers: a DAG file's
    imports load neither our trigger modules nor Airflow's trigger base (pydantic models)."""
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([sys.executable, "-c", TRIGGER_PROBE], capture_output=True, text=True, env=env, check=True)
    added = json.loads(out.stdout.strip().splitlines()[-1])
    loaded = [
        name for name in added if name.startswith("airflow_machine_images.triggers.") or name == "airflow.triggers.base"
    ]
    assert loaded == []
    assert "airflow_machine_images.triggers" in added  # the package itself: its table of where each class lives


def test_every_trigger_class_resolves_from_the_package_and_serializes_under_it() -> None:
    from airflow_machine_images import triggers

    for name in triggers.__all__:
        cls = getattr(triggers, name)
        assert cls.__name__ == name
        assert cls.__module__.startswith("airflow_machine_images.triggers.")
    assert sorted(dir(triggers)) == sorted(triggers.__all__)
    with pytest.raises(AttributeError, match="no attribute 'NoSuchTrigger'"):
        _ = triggers.NoSuchTrigger
