"""The playbook and workspace references in Markdown, generated from the JSON Schemas.

``docs/playbook-reference.md`` and ``docs/workspace-reference.md`` are this module's output
(``python -m aiosrun.dsl.reference``); a test regenerates them and compares, so the
reference cannot drift from what ``validate`` enforces.
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from typing import Any

TITLES = {"playbook": "Playbook reference", "workspace": "Workspace reference (`aios.yaml`)",
          "agent": "Agent reference (`agents/NAME.yaml`)"}


def load_schema(name: str) -> dict[str, Any]:
    text = (resources.files("aiosrun.schemas") / f"{name}.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return " or ".join(_type(option) for option in schema[key])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array" and isinstance(schema.get("items"), dict):
        return f"list of {_type(schema['items'])}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map of {_type(schema['additionalProperties'])}"
    return str(kind or "any")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _table(schema: dict[str, Any]) -> list[str]:
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    lines = ["| key | type | required | description |", "| --- | --- | --- | --- |"]
    for key, value in properties.items():
        lines.append(f"| `{key}` | {_type(value)} | {'yes' if key in required else ''} | "
                     f"{_cell(value.get('description', ''))} |")
    return lines


def _nested(prefix: str, schema: dict[str, Any], out: list[str]) -> None:
    """Object-valued keys with their own properties get a table of their own."""
    for key, value in (schema.get("properties") or {}).items():
        if isinstance(value, dict) and value.get("properties"):
            out += ["", f"### {prefix}{key}", "", _cell(value.get("description", "")), "",
                    *_table(value)]
            _nested(f"{prefix}{key}.", value, out)
        branches = [*value.get("oneOf", []), *value.get("anyOf", [])] \
            if isinstance(value, dict) else []
        for branch in branches:  # a key that is a value or an object: the object's keys
            if isinstance(branch, dict) and branch.get("properties"):
                out += ["", f"### {prefix}{key} (as an object)", "",
                        _cell(branch.get("description", "")), "", *_table(branch)]
                _nested(f"{prefix}{key}.", branch, out)


def render_reference(name: str) -> str:
    schema = load_schema(name)
    out = [f"# {TITLES[name]}", "",
           f"Generated from `schemas/{name}.schema.json` by `python -m aiosrun.dsl.reference`;"
           " a test keeps the two identical.", "", _cell(schema.get("description", "")), "",
           "## Top level", "", *_table(schema)]
    _nested("", schema, out)
    for definition, value in sorted((schema.get("$defs") or {}).items()):
        out += ["", f"## {definition}", "", _cell(value.get("description", ""))]
        if value.get("properties"):
            out += ["", *_table(value)]
            _nested(f"{definition}.", value, out)
        else:
            out += ["", f"Type: {_type(value)}."]
    return "\n".join(out) + "\n"


def main() -> None:
    names = sys.argv[1:] or ["playbook"]
    for name in names:
        sys.stdout.write(render_reference(name))


if __name__ == "__main__":
    main()
