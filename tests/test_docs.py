"""The references in docs/ are the JSON Schemas' own words: regenerated and compared."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiosrun.dsl.reference import load_schema, render_reference

DOCS = Path(__file__).resolve().parents[1] / "docs"


def keys(schema: object, into: set[str]) -> set[str]:
    if isinstance(schema, dict):
        into.update(schema.get("properties", {}))
        for value in schema.values():
            keys(value, into)
    elif isinstance(schema, list):
        for value in schema:
            keys(value, into)
    return into


@pytest.mark.parametrize("name", ["playbook", "workspace", "agent"])
def test_the_reference_matches_the_schema(name: str) -> None:
    committed = (DOCS / f"{name}-reference.md").read_text("utf-8")
    assert committed == render_reference(name), (
        f"docs/{name}-reference.md is stale: python -m aiosrun.dsl.reference {name} > "
        f"docs/{name}-reference.md")
    for key in keys(load_schema(name), set()):
        assert f"| `{key}` |" in committed, key


def test_the_docs_link_to_files_that_exist() -> None:
    readme = (DOCS.parent / "README.md").read_text("utf-8")
    for name in ("playbook-reference.md", "expressions.md", "adapters.md", "guarantees.md",
                 "memory.md", "models.md", "runtime.md", "server.md", "agents.md", "mcp.md"):
        assert (DOCS / name).is_file(), name
        assert f"docs/{name}" in readme, name
