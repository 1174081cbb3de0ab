"""A run's inputs: checked against the playbook's JSON Schemas, defaults filled in."""

from __future__ import annotations

from typing import Any

from aiosrun.dsl import ir
from aiosrun.runtime.errors import InvalidInputs
from jsonschema import Draft202012Validator


def check_inputs(playbook: ir.Playbook, given: dict[str, Any]) -> dict[str, Any]:
    """The inputs with defaults applied; raises :class:`InvalidInputs` naming each problem."""
    schemas = {name: ir.thaw(schema) for name, schema in playbook.inputs.items()}
    unknown = sorted(set(given) - set(schemas))
    problems = [f"unknown input '{name}' (declared: {', '.join(schemas) or 'none'})"
                for name in unknown]
    values: dict[str, Any] = {}
    for name, schema in schemas.items():
        if name in given:
            value = given[name]
        elif "default" in schema:
            value = schema["default"]
        else:
            problems.append(f"missing input '{name}'")
            continue
        for error in Draft202012Validator(schema).iter_errors(value):
            where = "/".join(str(p) for p in error.absolute_path)
            problems.append(f"input '{name}{'/' + where if where else ''}': {error.message}")
        values[name] = value
    if problems:
        raise InvalidInputs(problems)
    return values
