"""The package's version: the one place it is written (the build reads it here, the User-Agent sends it)."""

from __future__ import annotations

__version__ = "0.1.0"
