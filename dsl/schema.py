"""JSON Schema validation of loaded documents, translated into positioned diagnostics.

jsonschema's own messages are written for JSON documents ("Additional properties are not
allowed ('usses' was unexpected)"); an operator editing YAML wants the line of the typo and a
suggestion. This module maps each error's ``absolute_path`` through the loader's positions and
rewrites the message by validator keyword.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator, Mapping
from importlib import resources
from typing import Any, Literal, cast

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from .diagnostics import Diagnostic, did_you_mean, quote_list, schema_message
from .loader import Document, JsonPath

SchemaName = Literal["playbook", "workspace", "test", "agent"]


@functools.cache
def schema_text(name: SchemaName) -> str:
    return resources.files("aiosrun.schemas").joinpath(f"{name}.schema.json").read_text("utf-8")


@functools.cache
def load_schema(name: SchemaName) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(schema_text(name))
    return schema


@functools.cache
def _validator(name: SchemaName) -> Draft202012Validator:
    schema = load_schema(name)
    return Draft202012Validator(_inline_refs(schema, schema, ()))


def _inline_refs(node: Any, root: dict[str, Any], stack: tuple[str, ...]) -> Any:
    """Replace local ``$ref``s with their targets, except where a definition refers to itself
    (steps inside steps): resolving references dominated validation time."""
    if isinstance(node, list):
        return [_inline_refs(item, root, stack) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and ref not in stack:
        target = root["$defs"][ref.removeprefix("#/$defs/")]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _inline_refs(merged, root, (*stack, ref))
    return {key: _inline_refs(value, root, stack) for key, value in node.items()}


@functools.cache
def _inline_agent_validator() -> Draft202012Validator:
    """An inline ``agent:`` body is an agent file without its header."""
    schema = dict(load_schema("agent"))
    schema["properties"] = {k: v for k, v in schema["properties"].items()
                            if k not in ("apiVersion", "kind")}
    schema["required"] = ["instructions"]
    return Draft202012Validator(_inline_refs(schema, schema, ()))


def check_inline_agent(doc: Document, path: JsonPath) -> list[Diagnostic]:
    """The schema errors of the inline agent body at ``path``, at their place in ``doc``."""
    node: Any = doc.data
    for part in path:
        node = node[part]
    errors = list(_inline_agent_validator().iter_errors(node))
    for error in errors:
        error.path.extendleft(reversed(path))
    return _diagnostics(doc, errors, "agent")


def check_schema(doc: Document, name: SchemaName) -> list[Diagnostic]:
    return _diagnostics(doc, list(_validator(name).iter_errors(doc.data)), name)


def _diagnostics(doc: Document, errors: list[ValidationError],
                 name: SchemaName) -> list[Diagnostic]:
    unknown_key_paths = {tuple(e.absolute_path) for e in errors
                         if e.validator == "additionalProperties"}
    diagnostics: list[Diagnostic] = []
    for error in errors:
        diagnostics.extend(_translate(doc, error, name, unknown_key_paths))
    return diagnostics


def _translate(doc: Document, error: ValidationError, name: SchemaName,
               unknown_key_paths: set[JsonPath]) -> Iterator[Diagnostic]:
    path: JsonPath = tuple(error.absolute_path)
    keyword = str(error.validator)
    value: Any = error.validator_value
    instance: Any = error.instance
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    where = _where(doc, path, name)

    def at(p: JsonPath, code: str, message: str, *, key: bool = False) -> Diagnostic:
        return Diagnostic.at(doc.span(p, key=key), code, message)

    if keyword == "additionalProperties" and isinstance(instance, dict):
        allowed = list(schema.get("properties", {}))
        for extra in instance:
            if extra in allowed:
                continue
            hint = did_you_mean(extra, allowed) or (
                f"; expected one of {quote_list(allowed)}" if allowed else "")
            yield at((*path, extra), "unknown-key", f"unknown key '{extra}' in {where}{hint}",
                     key=True)
    elif keyword == "required" and isinstance(instance, dict):
        for missing in value:
            if missing not in instance:
                yield at(path, "missing-key", f"missing required key '{missing}' in {where}",
                         key=True)
    elif "propertyNames" in error.schema_path and isinstance(instance, str):
        expected = schema.get("patternErrorMessage", "expected a different name")
        yield at((*path, instance), "name", f"{expected} for a key of {where}, got "
                                            f"{_show(instance)}", key=True)
    elif keyword == "dependentRequired" and isinstance(instance, dict):
        for key, needs in value.items():
            if key in instance:
                for need in needs:
                    if need not in instance:
                        yield at((*path, key), "missing-key",
                                 f"'{key}' is given without '{need}' in {where}", key=True)
    elif keyword == "anyOf" and "dependentSchemas" in error.schema_path \
            and isinstance(instance, dict):
        needs = " or ".join(f"'{b['required'][0]}'" for b in value)
        key = str(list(error.schema_path)[-2])
        yield at((*path, key), "missing-key", f"'{key}' is given without {needs} in {where}",
                 key=True)
    elif keyword == "oneOf":
        yield from _one_of(doc, error, name, unknown_key_paths, where)
    elif keyword == "type":
        expected = schema.get("patternErrorMessage") or f"expected {_type_names(value)}"
        yield at(path, "type", f"{expected} for {where}, got {_json_type(instance)}")
    elif keyword == "const":
        yield at(path, "value", f"expected '{value}' for {where}, got {_show(instance)}")
    elif keyword == "enum":
        hint = did_you_mean(str(instance), [str(v) for v in value])
        yield at(path, "value", f"expected one of {quote_list(str(v) for v in value)} for "
                                f"{where}, got {_show(instance)}{hint}")
    elif keyword == "pattern":
        custom = schema.get("patternErrorMessage")
        expected = custom if custom else f"expected text matching {value}"
        yield at(path, "value", f"{expected} for {where}, got {_show(instance)}")
    elif keyword in {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}:
        op = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">",
              "exclusiveMaximum": "<"}[keyword]
        yield at(path, "range", f"expected a number {op} {value} for {where}, got {instance}")
    elif keyword == "minItems":
        yield at(path, "range", f"expected at least {value} item{'s' * (value != 1)} in {where}")
    elif keyword == "minProperties":
        yield at(path, "range", f"expected at least {value} entr{'ies' if value != 1 else 'y'} "
                                f"in {where}")
    elif keyword == "maxLength":
        yield at(path, "range", f"expected at most {value} characters for {where}")
    elif keyword == "uniqueItems":
        yield at(path, "value", f"the items of {where} must be unique")
    else:
        yield at(path, "schema", f"{schema_message(error)} ({where})")


def _one_of(doc: Document, error: ValidationError, name: SchemaName,
            unknown_key_paths: set[JsonPath], where: str) -> Iterator[Diagnostic]:
    path: JsonPath = tuple(error.absolute_path)
    branches: list[Any] = list(cast(Any, error.validator_value))
    instance: Any = error.instance
    exclusive = [b["required"][0] for b in branches
                 if isinstance(b, dict) and set(b) == {"required"} and len(b["required"]) == 1]
    if len(exclusive) == len(branches) and isinstance(instance, dict):
        present = [k for k in instance if k in exclusive]
        if not present:
            if path in unknown_key_paths:
                return  # the misspelt key was already reported, with a suggestion
            yield Diagnostic.at(doc.span(path, key=True), "body",
                                f"{where} needs one of {quote_list(exclusive)}")
        elif len(present) > 1:
            yield Diagnostic.at(doc.span((*path, present[1]), key=True), "body",
                                f"{where} has both '{present[0]}' and '{present[1]}'; "
                                "give exactly one")
        return
    by_branch: dict[int, list[ValidationError]] = {}
    for sub in error.context or ():
        by_branch.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
    shallow = {"type", "const", "enum"}
    deep = [errs for errs in by_branch.values()
            if not all(e.validator in shallow and not e.relative_path for e in errs)]
    if len(deep) == 1:
        for sub in deep[0]:
            yield from _translate(doc, sub, name, unknown_key_paths)
        return
    description = (error.schema.get("description", "") if isinstance(error.schema, Mapping)
                   else "")
    expected = _branch_names(branches, load_schema(name))
    hint = f" ({description})" if description and not expected else ""
    yield Diagnostic.at(doc.span(path), "type",
                        f"expected {expected or 'a different value'} for {where}, "
                        f"got {_show(instance)}{hint}")


def _branch_names(branches: Iterable[Any], root: Mapping[str, Any]) -> str:
    names: list[str] = []
    for branch in branches:
        if not isinstance(branch, dict):
            continue
        ref = branch.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            branch = root["$defs"].get(ref.removeprefix("#/$defs/"), {})
        if "const" in branch:
            names.append(f"'{branch['const']}'")
        elif "type" in branch:
            names.append(_type_names(branch["type"]))
    return " or ".join(dict.fromkeys(names))


def _where(doc: Document, path: JsonPath, name: SchemaName) -> str:
    if not path:
        return f"the {name}"
    last = path[-1]
    if isinstance(last, int):
        parent = path[-2] if len(path) > 1 else ""
        if parent == "steps":
            node: Any = doc.data
            for part in path:
                node = node[part] if isinstance(node, (dict, list)) else None  # type: ignore[index]
            step_id = node.get("id") if isinstance(node, dict) else None
            return f"step '{step_id}'" if isinstance(step_id, str) else "a step"
        return f"item {last + 1} of '{parent}'"
    return f"'{last}'"


_TYPE_NAMES = {"string": "a string", "integer": "an integer", "number": "a number",
               "boolean": "true or false", "object": "a mapping", "array": "a list",
               "null": "null"}


def _type_names(value: Any) -> str:
    types = value if isinstance(value, list) else [value]
    return " or ".join(_TYPE_NAMES.get(str(t), str(t)) for t in types)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


def _show(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return _json_type(value)
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."
