"""The IR as JSON, so the event log can pin the exact compiled version a run started with.

Dataclasses become objects tagged with ``"$"`` (their class name); tuples become lists and
come back as tuples. Decoding accepts only the IR's own classes, never an arbitrary name.
"""

from __future__ import annotations

import dataclasses
import gc
from typing import Any

from . import ir
from .diagnostics import Span

_CLASSES: dict[str, type] = {
    cls.__name__: cls for cls in (
        Span, ir.Const, ir.Expr, ir.Interp, ir.ListOf, ir.MapOf, ir.Retry, ir.Escalate,
        ir.Uses, ir.Tier, ir.Llm, ir.Gate, ir.Wait, ir.Emit, ir.Parallel, ir.Foreach, ir.Call,
        ir.SetValues, ir.AgentTool, ir.AgentDef, ir.Agent, ir.Compensation, ir.Step,
        ir.Triggers, ir.Policy, ir.Playbook,
    )
}


def encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {"$": type(value).__name__}
        for f in dataclasses.fields(value):
            out[f.name] = encode(getattr(value, f.name))
        return out
    if isinstance(value, ir.FrozenDict):
        return {"$": "FrozenDict", "items": {k: encode(v) for k, v in value.items()}}
    if isinstance(value, tuple):
        return [encode(v) for v in value]
    return value


def decode(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(decode(v) for v in value)
    if isinstance(value, dict):
        tag = value.get("$")
        if tag == "FrozenDict":
            return ir.FrozenDict({k: decode(v) for k, v in value["items"].items()})
        cls = _CLASSES.get(str(tag))
        if cls is None:
            raise ValueError(f"not an IR object: {tag!r}")
        return cls(**{k: decode(v) for k, v in value.items() if k != "$"})
    return value


def decode_playbook(value: Any) -> ir.Playbook:
    """Decode with the cyclic collector paused: a large playbook is hundreds of thousands of
    small acyclic objects, and collections triggered while building them took a third of a
    20,000-step playbook's run start."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        playbook = decode(value)
    finally:
        if enabled:
            gc.enable()
    if not isinstance(playbook, ir.Playbook):
        raise ValueError("not a playbook")
    return playbook
