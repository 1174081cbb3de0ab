"""The JSON Schemas: complete for editors, strict for typos, accepting the templates."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest
from aiosrun.dsl.loader import load_text
from aiosrun.dsl.schema import check_schema, load_schema
from jsonschema import Draft202012Validator

TEMPLATES = sorted(p.name for p in resources.files("aiosrun.playbooks").iterdir()
                   if p.name.endswith(".yaml"))


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str):
        target: dict[str, Any] = schema
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        return target
    return node


def object_schemas(schema: dict[str, Any], node: Any = None,
                   path: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    node = schema if node is None else node
    if isinstance(node, dict):
        if "properties" in node:
            yield path, node
        for key, value in node.items():
            yield from object_schemas(schema, value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from object_schemas(schema, value, f"{path}/{i}")


@pytest.mark.parametrize("name", ["playbook", "workspace"])
def test_schema_is_valid_2020_12(name: str) -> None:
    Draft202012Validator.check_schema(load_schema(name))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["playbook", "workspace"])
def test_every_property_is_described_and_objects_are_closed(name: str) -> None:
    schema = load_schema(name)  # type: ignore[arg-type]
    seen = 0
    for path, node in object_schemas(schema):
        extra = node.get("additionalProperties")
        assert extra is False or isinstance(extra, dict), f"{path} is open to typos"
        for key, prop in node["properties"].items():
            seen += 1
            assert resolve(schema, prop).get("description") or prop.get("description"), \
                f"{path}/properties/{key} has no description"
    assert seen > 50


def test_every_step_body_and_common_key_is_in_the_schema() -> None:
    step = load_schema("playbook")["$defs"]["step"]["properties"]
    bodies = {"uses", "llm", "gate", "wait", "emit", "parallel", "foreach", "call", "set", "agent"}
    common = {"id", "name", "if", "retry", "timeout", "idempotency_key", "compensate",
              "continue_on_error", "escalate", "checkpoint", "outputs", "cache", "with"}
    assert bodies | common == set(step)


@pytest.mark.parametrize("template", TEMPLATES)
def test_templates_are_accepted(template: str) -> None:
    text = resources.files("aiosrun.playbooks").joinpath(template).read_text("utf-8")
    assert check_schema(load_text(text, template), "playbook") == []


VALID = """apiVersion: aiosrun/v1
kind: Playbook
name: ok
steps:
  - id: a
    uses: debug.echo
    with: {value: 1}
"""


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (("steps", 0, "retyr"), "unknown-key"),
        (("steps", 0, "timeout"), "type"),
        (("on",), "type"),
        (("kind",), "value"),
        (("steps", 0, "uses"), "value"),
        (("on_failure",), "value"),
        (("policy", "budget_usd"), "range"),
        (("steps", 0, "llm"), "body"),
    ],
)
def test_each_kind_of_mistake_is_rejected(change: tuple[Any, ...], code: str) -> None:
    bad_values = {"retyr": {}, "timeout": 30, "on": 5, "kind": "Playbok",
                  "uses": "debug", "on_failure": "retry", "budget_usd": -1,
                  "llm": {"prompt": "x"}}
    doc = load_text(VALID, "p.yaml")
    target: Any = doc.data
    for part in change[:-1]:
        target = target.setdefault(part, {}) if isinstance(target, dict) else target[part]
    target[change[-1]] = bad_values[str(change[-1])]
    codes = {d.code for d in check_schema(doc, "playbook")}
    assert code in codes


def test_minimal_workspace_is_valid() -> None:
    doc = load_text("apiVersion: aiosrun/v1\nkind: Workspace\n", "aios.yaml")
    assert check_schema(doc, "workspace") == []


def test_workspace_typo_gets_a_suggestion() -> None:
    doc = load_text("apiVersion: aiosrun/v1\nkind: Workspace\nmodles: {}\n", "aios.yaml")
    (d,) = check_schema(doc, "workspace")
    assert (d.line, d.col, d.code) == (3, 1, "unknown-key")
    assert "did you mean 'models'" in d.message
