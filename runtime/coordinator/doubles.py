"""The seam playbook tests use (``aiosrun test``): stand-ins for actions and model answers.

A workspace normally has no doubles. A test case gives its copy of the workspace an object
with this interface; the runner then asks it before each adapter call and each model call.
Like httpx's ``MockTransport``, it replaces the I/O at the edge and nothing else: gates,
retries, compensation and the log all run for real.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from aiosrun.adapters.llm import ModelAnswer


class Doubles(Protocol):
    async def call(self, action: str, step_id: str, path: str, attempt: int,
                   args: Mapping[str, Any]) -> dict[str, Any] | None:
        """The mocked result (or raise an ``AdapterError``); None: call the real action."""
        ...

    def answer(self, step_id: str) -> ModelAnswer | None:
        """The model's answer for this ``llm:`` step, or None: ask the model as usual."""
        ...
