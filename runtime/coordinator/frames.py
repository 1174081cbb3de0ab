"""What the interpreter's parts share: frames of visible steps, the control-flow
exceptions (a step failed, the run suspends) and retry delays. Pure: no I/O here."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiosrun.adapters.base import (
    PermanentError,
)
from aiosrun.dsl import ir
from aiosrun.dsl.errors import ExpressionError
from aiosrun.dsl.render import render_template


class StepFailure(Exception):
    def __init__(self, error_class: str, message: str, attempts: int) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.attempts = attempts


def internal_message(exc: BaseException) -> str:
    """What an unexpected exception says to the operator: its class and its text, one line."""
    text = " ".join(str(exc).split())
    return f"unexpected {type(exc).__name__}" + (f": {text}" if text else "")


class Suspended(Exception):
    """The run waits for the operator (a gate or an escalation): stop here, durably."""


class GateRejected(PermanentError):
    error_class = "rejected"


def backoff_delay(retry: ir.Retry, attempt: int, rng: random.Random) -> float:
    """Seconds to wait after failed ``attempt`` (1-based): exponential, capped, jittered."""
    base = min(retry.initial_delay_ms * retry.backoff ** (attempt - 1), retry.max_delay_ms)
    if retry.jitter == "full":
        base = rng.uniform(0, base)
    elif retry.jitter == "equal":
        base = base / 2 + rng.uniform(0, base / 2)
    return base / 1000


@dataclass
class Frame:
    """A sequence of steps sharing what they see: the top level, or one foreach item.

    ``view`` is the ``steps`` context of this frame, kept up to date as steps end, so building
    the contexts of a step costs the same at step 3 as at step 3,000."""

    prefix: str
    visible: dict[str, str] = field(default_factory=dict)  # step id -> path
    item: tuple[str, Any, int] | None = None  # (name, value, index)
    view: dict[str, Any] = field(default_factory=dict)  # step id -> {outputs, outcome, ...}

    def child(self, prefix: str, item: tuple[str, Any, int] | None = None) -> Frame:
        return Frame(prefix, dict(self.visible), item or self.item, dict(self.view))

    def see(self, step_id: str, path: str, state: Any) -> None:
        self.visible[step_id] = path
        if state is not None:
            self.view[step_id] = {"outputs": state.outputs, "outcome": state.outcome,
                                  "conclusion": state.conclusion, "attempts": state.attempts}


def event_context(event: Mapping[str, Any]) -> dict[str, Any]:
    """An event as playbooks see it (``event`` in a trigger's ``if:`` or a wait's ``match:``,
    and a wait's outputs): its payload, with ``name`` added when the payload has none."""
    data = event.get("data")
    context = dict(data) if isinstance(data, Mapping) else {"data": data}
    context.setdefault("name", event["event"])
    return context


def text_of(value: Any) -> str:
    """A rendered value as a person reads it: text as is, anything else as JSON (``null``,
    never Python's ``None``)."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def render_text(text: str, contexts: Mapping[str, Any]) -> str:
    return text_of(render_template(text, contexts))


def child_run_id(run_id: str, path: str) -> str:
    """The id of the child run a ``call:`` step at ``path`` starts: stable across resumes."""
    flat = path.replace("/", ".").replace("[", "-").replace("]", "")
    return f"{run_id}.{flat}"


def step_template(path: str) -> str:
    """``match[3]/record`` -> ``match/record``: the step in the playbook a path runs."""
    if "[" not in path:  # every path of the playbook itself, and most paths of a run
        return path
    out = []
    depth = 0
    for ch in path:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def where(value: ir.Value, exc: ExpressionError) -> str:
    if isinstance(value, ir.Expr):
        span = value.span
        return f"{span.file}:{span.line}:{span.col}: {exc}"
    return str(exc)

