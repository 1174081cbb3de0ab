"""Agent tests use the end-to-end ``aiosrun`` fixture (the console script in a subprocess)."""

from tests.e2e.conftest import aiosrun

__all__ = ["aiosrun"]
