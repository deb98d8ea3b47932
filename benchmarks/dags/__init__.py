"""DAG files the benchmarks copy into a throw-away DAGs folder."""

from __future__ import annotations
