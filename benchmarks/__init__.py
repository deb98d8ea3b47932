"""Measured comparisons for airflow-machine-images (never pass/fail timings).

Run them all with ``make bench`` (or ``python -m benchmarks.run_all``), which regenerates
``docs/benchmarks.md``. Each ``bench_*`` module also runs alone: ``python -m benchmarks.bench_calls --help``.
"""

from __future__ import annotations
