"""Masking the workspace's secrets in what the command line prints on failure."""

from __future__ import annotations

import os
import sys


def masked(message: str) -> str:
    """An error message with the workspace's secrets masked: any exception may quote a
    value that held one."""
    from pathlib import Path

    try:
        from aiosrun.dsl.loader import load_file
        from aiosrun.runtime.secrets import Masker, load_secrets
        from aiosrun.runtime.workspace import WORKSPACE_FILE, find_workspace

        override = os.environ.get("AIOS_WORKSPACE")
        for flag, value in zip(sys.argv, sys.argv[1:], strict=False):
            if flag in ("--workspace", "-w"):
                override = value
            elif flag.startswith("--workspace="):
                override = flag.partition("=")[2]
        root = find_workspace(Path.cwd(), override)
        if root is None:
            return message
        settings = load_file(root / WORKSPACE_FILE).data
        return Masker(load_secrets(root, settings)).text(message)
    except Exception:  # a broken workspace: its own error says so; mask what we can
        return message
