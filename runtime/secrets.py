"""Secrets: where their values come from, and the masking that keeps them out of everything
recorded or shown.

Values come from the workspace's ``.env`` file (``secrets.dotenv``) and from the environment
variables that ``secrets.env`` names (these win). :class:`Masker` replaces every value with
``***`` in any JSON-like data, as GitHub Actions masks secrets in logs: the runtime passes
every record through it before the event log sees it, so snapshots, outputs, errors and the
terminal (all read from the log or its state) never hold a secret.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MASK = "***"


def load_secrets(root: Path, settings: Mapping[str, Any]) -> dict[str, str]:
    from dotenv import dotenv_values

    config = settings.get("secrets", {})
    found: dict[str, str] = {}
    dotenv = root / config.get("dotenv", ".env")
    if dotenv.is_file():
        found.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
    for name in config.get("env", []):
        if name in os.environ:
            found[name] = os.environ[name]
    return found


class Masker:
    def __init__(self, values: Mapping[str, str]) -> None:
        secrets = sorted({v for v in values.values() if v}, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(s) for s in secrets)) if secrets else None

    def text(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern else text

    def data(self, value: Any) -> Any:
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        return value
