"""Calling adapters directly, with a real workspace folder and trio."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import trio
from aiosrun.adapters.base import Adapter, CallContext


def call(adapter: Adapter, action: str, args: Mapping[str, Any], root: Path, key: str = "k1",
         attempt: int = 1, settings: Mapping[str, Any] | None = None,
         secrets: Mapping[str, str] | None = None) -> Any:
    ctx = CallContext(idempotency_key=key, run_id="r", step_id="s", step_path="s",
                      attempt=attempt, workspace=root, state_dir=root / ".aios",
                      settings=settings or {}, secrets=secrets or {})
    return trio.run(adapter.call, action, args, ctx)
