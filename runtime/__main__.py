"""``python -m aiosrun.runtime`` is the same as the ``aiosrun`` command."""

from .cli import main

main()
