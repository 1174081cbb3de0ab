"""``python -m aiosrun.runtime`` is the same as the ``aiosrun`` command."""

from aiosrun.runtime.cli import main

main()
