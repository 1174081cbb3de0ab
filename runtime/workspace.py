"""Finding the operator's workspace: the folder holding ``aios.yaml``, found like git finds
``.git`` (walking up from the current folder), unless ``--workspace`` or ``AIOS_WORKSPACE``
names it.
"""

from __future__ import annotations

from pathlib import Path

WORKSPACE_FILE = "aios.yaml"
STATE_DIR = ".aios"


def find_workspace(start: Path, override: str | None = None) -> Path | None:
    if override:
        root = Path(override).expanduser()
        return root.resolve() if (root / WORKSPACE_FILE).is_file() else None
    here = start.resolve()
    for folder in (here, *here.parents):
        if (folder / WORKSPACE_FILE).is_file():
            return folder
    return None
