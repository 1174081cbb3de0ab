"""The errors of the Engine's API: what a caller asked for that cannot be done.

    AiosrunError                (aiosrun.dsl.errors: the project's root)
    ├── PlaybookError           a playbook or aios.yaml is invalid (diagnostics with spans)
    └── EngineError             a request the Engine cannot carry out
        ├── NotFound            no such workspace, run, playbook, gate or step
        │   └── PlaybookNotFound   no applied playbook of that name
        ├── Conflict            the request does not fit the state: a gate that is not open,
        │                       a step that is not escalated, a run that already ended or
        │                       that another process executes
        ├── InvalidInputs       inputs that fail the playbook's schemas (``problems``)
        └── BadRequest          a request that makes no sense whatever the state (an
                                unknown resolve action, a malformed event name)

``Unavailable`` (beside them, not an ``EngineError``: nothing is wrong with the request) is a
part the workspace depends on being away for now: the PostgreSQL store's ``StoreUnavailable``.
The same request may pass later; the HTTP API answers 503.

``InvalidInputs`` and ``PlaybookNotFound`` are also ``PermanentError``s, so that a ``call:``
step whose child run cannot start fails like any other permanent step failure.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiosrun.adapters.base import PermanentError
from aiosrun.dsl.errors import AiosrunError


class Unavailable(AiosrunError):
    """Something the workspace depends on is away for now; nothing was recorded."""


class EngineError(AiosrunError):
    """A request the Engine cannot carry out; the message says what and why."""


class NotFound(EngineError):
    """No such workspace, run, playbook, gate or step."""


class PlaybookNotFound(NotFound, PermanentError):
    """No applied playbook of that name."""


class Conflict(EngineError):
    """The request does not fit the current state (a gate that is not open, ...)."""


class InvalidInputs(EngineError, PermanentError):
    """A run's inputs fail the playbook's input schemas; ``problems`` lists each one."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


class BadRequest(EngineError):
    """A request that makes no sense whatever the state (an unknown action, a bad name)."""
