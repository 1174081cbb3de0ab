"""The adapter interface: what a connector implements, and the errors it raises.

    AdapterError
    ├── TransientError      worth retrying (5xx, connection reset)          -> "transient"
    │   └── RateLimited     the other side asked us to slow down            -> "rate_limit"
    ├── StepTimeout         raised by the runtime when an attempt runs out  -> "timeout"
    ├── PermanentError      retrying cannot help (4xx, bad arguments)       -> "permanent"
    └── NeedsHuman          only the operator can settle it                 -> "needs_human"

An adapter is a class with a ``name``, a mapping of :class:`Action` (JSON Schemas for the
arguments and the result, an optional compensating action) and an async :meth:`Adapter.call`.
Adapters import nothing from the runtime but this module.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from aiosrun.dsl.errors import AiosrunError


class AdapterError(AiosrunError):
    error_class: ClassVar[str] = "permanent"
    retryable: ClassVar[bool] = False


class TransientError(AdapterError):
    error_class = "transient"
    retryable = True


class RateLimited(TransientError):
    error_class = "rate_limit"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StepTimeout(AdapterError):
    error_class = "timeout"
    retryable = True


class PermanentError(AdapterError):
    error_class = "permanent"


class NeedsHuman(AdapterError):
    error_class = "needs_human"


ERROR_CLASSES: dict[str, type[AdapterError]] = {
    "transient": TransientError, "rate_limit": RateLimited, "timeout": StepTimeout,
    "permanent": PermanentError, "needs_human": NeedsHuman,
}


@dataclass(frozen=True)
class Action:
    description: str
    args: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})
    result: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})
    compensation: str | None = None  # the action that undoes this one, if any


@dataclass
class CallContext:
    """What one adapter call knows about where it runs."""

    idempotency_key: str
    run_id: str
    step_id: str
    step_path: str
    attempt: int
    workspace: Path
    state_dir: Path
    settings: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    log: Callable[[str, Mapping[str, Any]], None] = lambda message, data: None
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    emit: Callable[[str, Any, str], int] | None = None  # event, data, key -> seq
    memory: MemoryService | None = None  # the domains this playbook declared, nothing else
    mask: Callable[[str], str] = lambda text: text  # secrets -> *** (for what is kept)
    # the store's journals (effects ledgers): shared by every worker of a PostgreSQL store
    journal: Callable[[str], Journal] | None = None


class Journal(Protocol):
    """An append-only list of JSON entries (an effects ledger, the billing ledger), held by
    one process at a time from ``__enter__`` (which returns the entries so far) to
    ``__exit__``."""

    def __enter__(self) -> list[dict[str, Any]]: ...

    def __exit__(self, *exc: object) -> None: ...

    def append(self, entry: dict[str, Any]) -> None:
        """Record ``entry`` durably, or raise a :class:`TransientError` (nothing kept)."""
        ...


class MemoryService(Protocol):
    """The memory store as the runtime lends it to one run (blocking calls: adapters run
    them in a worker thread)."""

    def search(self, args: Mapping[str, Any]) -> dict[str, Any]: ...

    def remember(self, args: Mapping[str, Any], key: str) -> dict[str, Any]: ...

    def forget(self, args: Mapping[str, Any]) -> dict[str, Any]: ...


_SECRET_REF = re.compile(r"\$\{\{\s*secrets\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def resolve_secrets(value: Any, secrets: Mapping[str, str]) -> str:
    """Settings may name secrets as ``${{ secrets.NAME }}`` (a password, a header): the real
    value, for the adapter's use only."""
    return _SECRET_REF.sub(lambda m: secrets.get(m.group(1), ""), str(value))


class Adapter:
    name: ClassVar[str]
    description: ClassVar[str] = ""
    actions: ClassVar[Mapping[str, Action]]

    async def call(self, action: str, args: Mapping[str, Any],
                   ctx: CallContext) -> Mapping[str, Any]:
        raise NotImplementedError
