"""The aiosrun runtime: the Engine (the one API of a workspace) and what it stands on.

``from aiosrun.runtime import Engine`` is the entry point for programs; the names load on
first use, so ``aiosrun --version`` (which imports this package) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .engine import Engine
    from .errors import (
        BadRequest,
        Conflict,
        EngineError,
        InvalidInputs,
        NotFound,
        PlaybookNotFound,
    )
    from .results import EmitResult, InboxItem, Run, RunListing

_EXPORTS = {
    "Engine": "engine",
    "BadRequest": "errors",
    "Conflict": "errors",
    "EngineError": "errors",
    "InvalidInputs": "errors",
    "NotFound": "errors",
    "PlaybookNotFound": "errors",
    "EmitResult": "results",
    "InboxItem": "results",
    "Run": "results",
    "RunListing": "results",
}
__all__ = [
    "BadRequest",
    "Conflict",
    "EmitResult",
    "Engine",
    "EngineError",
    "InboxItem",
    "InvalidInputs",
    "NotFound",
    "PlaybookNotFound",
    "Run",
    "RunListing",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'aiosrun.runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
