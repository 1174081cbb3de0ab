"""Walking a playbook document's steps, nested ones included, with their JSON paths."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .loader import JsonPath

NESTED_BODIES = ("parallel", "foreach")


def iter_steps(steps: Any, path: JsonPath) -> Iterator[tuple[JsonPath, dict[str, Any]]]:
    """Every step mapping with its JSON path, nested ``parallel``/``foreach`` steps included."""
    if not isinstance(steps, list):
        return
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        step_path = (*path, index)
        yield step_path, step
        for body in NESTED_BODIES:
            inner = step.get(body)
            if isinstance(inner, dict):
                yield from iter_steps(inner.get("steps"), (*step_path, body, "steps"))
