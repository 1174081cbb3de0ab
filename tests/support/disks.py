"""Helpers for tests on a real small filesystem (the ``small_disk`` fixture)."""

from __future__ import annotations

from pathlib import Path


def fill(folder: Path) -> Path:
    """Write a file until the filesystem is full; deleting it gives the space back."""
    filler = folder / "filler.bin"
    with open(filler, "wb", buffering=0) as handle:
        for chunk in (65536, 4096, 512, 1):
            while True:
                try:
                    if handle.write(b"\0" * chunk) != chunk:
                        break
                except OSError:
                    break
    return filler
