"""The compiled playbook: immutable, position-carrying, and all the runtime ever executes.

Nothing here refers to YAML. Values that may hold ``${{ }}`` are :data:`Value` trees
(``Const``, ``Expr``, ``Interp``, ``ListOf``, ``MapOf``) that the runtime renders against the
contexts of a run; pure JSON data (input schemas, output schemas) is frozen with
:func:`freeze` and turned back into plain Python with :func:`thaw` where a library needs it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .diagnostics import Span


class FrozenDict(Mapping[str, Any]):
    """A hashable, read-only mapping for JSON objects inside the IR."""

    __slots__ = ("_hash", "_items")

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        self._items: dict[str, Any] = dict(items or {})
        self._hash: int | None = None

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(sorted(self._items.items(), key=lambda kv: kv[0])))
        return self._hash

    def __repr__(self) -> str:
        return f"FrozenDict({self._items!r})"


def freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return FrozenDict({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


# ---- values that may contain expressions -------------------------------------------------

@dataclass(frozen=True)
class Const:
    value: Any  # a frozen JSON value


@dataclass(frozen=True)
class Expr:
    """Exactly one ``${{ }}`` (or a bare condition such as ``if:``): keeps the value's type."""

    source: str
    span: Span


@dataclass(frozen=True)
class Interp:
    """Text with one or more ``${{ }}`` inside: always renders to a string."""

    parts: tuple[str | Expr, ...]


@dataclass(frozen=True)
class ListOf:
    items: tuple[Value, ...]


@dataclass(frozen=True)
class MapOf:
    items: tuple[tuple[str, Value], ...]


Value = Const | Expr | Interp | ListOf | MapOf
VALUE_TYPES = (Const, Expr, Interp, ListOf, MapOf)


# ---- step bodies ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Retry:
    max_attempts: int = 1
    initial_delay_ms: int = 1_000
    backoff: float = 2.0
    max_delay_ms: int = 60_000
    jitter: Literal["full", "equal", "none"] = "full"
    retry_on: tuple[str, ...] = ("transient", "timeout", "rate_limit")


@dataclass(frozen=True)
class Escalate:
    after_attempts: int
    message: str | None = None


@dataclass(frozen=True)
class Uses:
    action: str
    args: MapOf


@dataclass(frozen=True)
class Tier:
    model: str
    accept: Value | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class Llm:
    prompt: Value
    system: Value | None
    output_schema: FrozenDict | None
    tiers: tuple[Tier, ...]  # a single `model:` is one tier; empty means the workspace default
    cache: bool = False
    temperature: float | None = None
    max_tokens: int | None = None
    validation_retries: int = 2


@dataclass(frozen=True)
class Gate:
    message: Value
    show: Value | None = None
    timeout_ms: int | None = None
    on_timeout: Literal["reject", "approve", "escalate"] = "reject"


@dataclass(frozen=True)
class Wait:
    event: str | None = None
    match: Value | None = None
    duration_ms: int | None = None
    until: Value | None = None
    timeout_ms: int | None = None


@dataclass(frozen=True)
class Emit:
    event: str
    data: Value


@dataclass(frozen=True)
class Parallel:
    steps: tuple[Step, ...]
    max_concurrency: int | None = None
    fail_fast: bool = True


@dataclass(frozen=True)
class Foreach:
    items: Value
    steps: tuple[Step, ...]
    item_name: str = "item"
    max_concurrency: int = 1
    fail_fast: bool = True


@dataclass(frozen=True)
class Call:
    playbook: str
    args: MapOf


@dataclass(frozen=True)
class SetValues:
    values: MapOf


@dataclass(frozen=True)
class AgentTool:
    """One tool of an agent: ``kind`` is ``uses`` (an adapter action), ``playbook`` (a child
    run), ``memory`` (search in a domain) or ``mcp`` (a server's tools, or one of them)."""

    kind: Literal["uses", "playbook", "memory", "mcp"]
    target: str


@dataclass(frozen=True)
class AgentDef:
    """A named specialist (``agents/NAME.yaml``) or an inline ``agent:`` body, compiled into
    the playbook that uses it so a run pins the agent it started with."""

    name: str
    instructions: str
    tiers: tuple[Tier, ...]
    tools: tuple[AgentTool, ...]
    output_schema: FrozenDict | None = None
    max_turns: int = 10
    max_tool_calls: int = 30
    budget_usd: float | None = None
    below_confidence: float | None = None
    max_tool_errors: int = 3
    max_tokens: int | None = None
    temperature: float | None = None


@dataclass(frozen=True)
class Agent:
    """An ``agent:`` step: the loop of model turns and tool calls."""

    agent: AgentDef
    task: Value
    context: Value | None = None


Body = Uses | Llm | Gate | Wait | Emit | Parallel | Foreach | Call | SetValues | Agent


@dataclass(frozen=True)
class Compensation:
    body: Uses | Llm | Call
    retry: Retry
    timeout_ms: int | None
    span: Span


@dataclass(frozen=True)
class Step:
    id: str
    path: str  # slash-separated ids from the top: "fan/notify"; stable across versions
    span: Span
    body: Body
    name: str | None = None
    condition: Value | None = None
    retry: Retry = field(default_factory=Retry)
    timeout_ms: int | None = None
    idempotency_key: Value | None = None
    compensate: Compensation | None = None
    continue_on_error: Value = Const(False)
    escalate: Escalate | None = None
    checkpoint: bool = False
    outputs: MapOf | None = None
    cache: bool = False


# ---- the playbook ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Triggers:
    events: tuple[str, ...] = ()
    condition: Value | None = None
    schedules: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    budget_usd: float | None = None
    require_approval: tuple[str, ...] = ()
    timeout_ms: int | None = None


@dataclass(frozen=True)
class Playbook:
    name: str
    description: str
    digest: str  # sha256 of the canonical JSON form: comments and key order do not change it
    source: str  # the file it was compiled from, for messages
    triggers: Triggers
    inputs: FrozenDict  # name -> JSON Schema
    memory: tuple[str, ...]
    policy: Policy
    steps: tuple[Step, ...]
    outputs: MapOf
    on_failure: Literal["compensate", "halt"] = "compensate"

    def walk(self) -> Iterator[Step]:
        """Every step, nested ones included, in document order."""
        yield from _walk(self.steps)

    @functools.cached_property
    def by_path(self) -> Mapping[str, Step]:
        """Every step by its path, built once per decoded version rather than at every run
        start (a derived index kept beside the fields: equality, hashing and the codec see
        only the fields)."""
        return {step.path: step for step in self.walk()}


def _walk(steps: tuple[Step, ...]) -> Iterator[Step]:
    for step in steps:
        yield step
        if isinstance(step.body, (Parallel, Foreach)):
            yield from _walk(step.body.steps)
