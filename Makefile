# Two commands on a fresh machine with only Python and pip:  make demo  |  make test
PYTHON ?= python3
export UV_PYTHON_DOWNLOADS := never
export UV_COMPILE_BYTECODE := 1
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
VENV := .venv
RUN := $(UV) run --frozen --no-sync

.PHONY: demo test lint typecheck unit integration reliability bench bench-stack e2e install clean dist compat compat-ci architecture schema-snapshot figures

# Install uv if missing, then the locked environment (bytecode compiled once, so every later
# Python start is fast even with PYTHONDONTWRITEBYTECODE=1).
$(VENV)/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	@touch $@

install: $(VENV)/.synced

demo: install
	$(RUN) python scripts/demo.py

# The suite waits on the emulator's operations far more than it computes (about 4 CPU-minutes in
# 12 wall-minutes run serially), so three pytest-xdist workers overlap the waits; --dist loadfile
# keeps each module's fixtures (emulators, the benchmark smoke run) in one worker.
PYTEST_WORKERS ?= 3
test: install lint typecheck
	$(RUN) pytest -q -n $(PYTEST_WORKERS) --dist loadfile --durations=15

lint: install
	$(RUN) ruff check .
	$(RUN) ruff format --check .

typecheck: install
	$(RUN) mypy

# The layers (docs/architecture.md): report imports against them and import cycles (exit 1 on any),
# and rewrite the generated diagram and module table. tests/unit/test_architecture.py, run by
# `make test`, fails on the same findings and on a docs/architecture.md out of date with the code.
architecture: install
	$(RUN) python scripts/architecture.py

# docs/figures.md: the retry counts, limits and defaults the docs quote, read from the code. tests/unit/test_figures.py,
# run by `make test`, fails when it is stale and when a page states one of those figures differently.
figures: install
	$(RUN) python scripts/figures.py

# The request schemas bodies are checked against (airflow_machine_images/api/compute_schemas.json), rewritten
# from the discovery documents of the locked google-api-python-client; prints what changed. Run it after the
# lock moves the client on: tests/unit/test_schema_snapshot.py fails until then, naming each changed field.
schema-snapshot: install
	$(RUN) python scripts/schema_snapshot.py

unit: install
	$(RUN) pytest -q tests/unit

integration: install
	$(RUN) pytest -q tests/integration

clean:
	rm -rf $(VENV) .venv-compat dist .mypy_cache .ruff_cache .pytest_cache .hypothesis

# The release artifacts: sdist + wheel in dist/ (version from airflow_machine_images/version.py),
# checked by twine (run by uv from PyPI, not installed in the project).
dist:
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	rm -rf dist
	$(UV) build --out-dir dist
	$(UV) tool run --from 'twine>=6.1' twine check --strict dist/*

# The compatibility matrix (README, Compatibility): one venv per cell under .venv-compat/, the
# package installed from dist/'s wheel, unit tests, three dag.test() runs, the waits' integration tests,
# and on Airflow 2.11 a real scheduler and triggerer (needs scripts/e2e_setup.sh once). Cells: scripts/compat.py.
compat: dist
	$(PYTHON) scripts/compat.py --uv "$(UV)" all

# The one cell CI runs: the declared floor, Airflow 2.11 installed as Airflow documents (about 4 minutes).
compat-ci: dist
	$(PYTHON) scripts/compat.py --uv "$(UV)" ci

# Measured comparisons (about 10 minutes on 2 cores); regenerates docs/benchmarks.md. Not part of `make test`.
bench: install
	$(RUN) python -m benchmarks.run_all

# Fleet backups on a real Airflow stack (issue 27): the fleet operator and mapped inserts at 200, 1,000 and
# 5,000 instances, a fresh stack each (about an hour and a half on 2 cores; needs `scripts/e2e_setup.sh`).
# Merges into docs/benchmarks_stack.json and rewrites only section 7 of docs/benchmarks.md. Some sizes:
# `.venv/bin/python -m benchmarks.run_all --preset stack --only fleet_5000 mapped_5000`.
bench-stack: install
	$(RUN) python -m benchmarks.run_all --preset stack

# The long reliability campaign (docs/reliability.md): 2,000 creations under injected faults and
# 1,000 hypothesis examples per bad-input strategy, about 18 minutes on 2 cores.
# The short form (200 creations, 100 examples) runs inside `make test`.
reliability: install
	RELIABILITY_CREATIONS=2000 HYPOTHESIS_PROFILE=long $(RUN) pytest -q tests/reliability

# Real multi-process Airflow (PostgreSQL, api-server, scheduler, dag-processor, triggerer) plus the
# emulator and headless Chromium, then the same on the CeleryExecutor (Redis, two workers, two
# triggerers); about 7.5 minutes. Needs `scripts/e2e_setup.sh` once (root or sudo).
e2e: install
	$(RUN) pytest -q -m e2e tests/e2e
