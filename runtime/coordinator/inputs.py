"""A run's inputs: checked against the playbook's JSON Schemas, defaults filled in."""

from __future__ import annotations

import copy
from typing import Any

from aiosrun.dsl import ir
from aiosrun.runtime.errors import InvalidInputs
from jsonschema import Draft202012Validator

Checker = tuple[dict[str, Any], Draft202012Validator]
_checkers: dict[str, dict[str, Checker]] = {}  # playbook digest -> input -> its checker
MAX_CHECKERS = 256


def _checkers_of(playbook: ir.Playbook) -> dict[str, Checker]:
    """Each input's schema and validator, built once per playbook version: building them
    took longer than checking a run's inputs."""
    found = _checkers.get(playbook.digest) if playbook.digest else None
    if found is None:
        found = {name: (thawed, Draft202012Validator(thawed))
                 for name, thawed in ((n, ir.thaw(s)) for n, s in playbook.inputs.items())}
        if playbook.digest:
            if len(_checkers) >= MAX_CHECKERS:
                _checkers.clear()
            _checkers[playbook.digest] = found
    return found


def check_inputs(playbook: ir.Playbook, given: dict[str, Any]) -> dict[str, Any]:
    """The inputs with defaults applied; raises :class:`InvalidInputs` naming each problem."""
    checkers = _checkers_of(playbook)
    schemas = {name: schema for name, (schema, _) in checkers.items()}
    unknown = sorted(set(given) - set(schemas))
    problems = [f"unknown input '{name}' (declared: {', '.join(schemas) or 'none'})"
                for name in unknown]
    values: dict[str, Any] = {}
    for name, schema in schemas.items():
        if name in given:
            value = given[name]
        elif "default" in schema:
            value = copy.deepcopy(schema["default"])  # each run its own
        else:
            problems.append(f"missing input '{name}'")
            continue
        for error in checkers[name][1].iter_errors(value):
            where = "/".join(str(p) for p in error.absolute_path)
            problems.append(f"input '{name}{'/' + where if where else ''}': {error.message}")
        values[name] = value
    if problems:
        raise InvalidInputs(problems)
    return values
