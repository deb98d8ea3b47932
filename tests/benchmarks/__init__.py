"""Tests of the benchmark tooling (benchmarks/ is not shipped, so the compatibility cells, which test
the built wheel with tests/unit, leave these out)."""
