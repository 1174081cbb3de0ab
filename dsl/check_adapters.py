"""Checking ``uses:`` steps against the adapters' declared actions, at validate time.

``dsl`` imports no adapter: the caller (the CLI, the composition root) passes a *catalog*,
``ADAPTER.ACTION`` -> JSON Schema of the arguments, as plain data. Unknown adapters and
actions, unknown and missing arguments, and literal values that break the schema are
reported at their line and column; values given as expressions are checked at run time.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from jsonschema import Draft202012Validator

from .diagnostics import Diagnostic, did_you_mean, quote_list
from .loader import Document, JsonPath
from .steps import iter_steps
from .templates import has_expression

Catalog = Mapping[str, Mapping[str, Any]]


def check_actions(doc: Document, catalog: Catalog) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for path, step in iter_steps(doc.data.get("steps"), ("steps",)):
        out += _check_uses(doc, catalog, step, path)
        compensate = step.get("compensate")
        if isinstance(compensate, dict):
            out += _check_uses(doc, catalog, compensate, (*path, "compensate"))
    return out


def _check_uses(doc: Document, catalog: Catalog, body: dict[str, Any],
                path: JsonPath) -> list[Diagnostic]:
    uses = body.get("uses")
    if not isinstance(uses, str) or "." not in uses:
        return []
    schema = catalog.get(uses)
    if schema is None:
        adapter = uses.split(".")[0]
        actions = [a for a in catalog if a.startswith(f"{adapter}.")]
        if actions:
            names = [a.split(".", 1)[1] for a in actions]
            hint = did_you_mean(uses.split(".", 1)[1], names) or \
                f"; it has {quote_list(sorted(names))}"
            message = f"adapter '{adapter}' has no action '{uses.split('.', 1)[1]}'{hint}"
        else:
            adapters = sorted({a.split(".")[0] for a in catalog})
            hint = did_you_mean(adapter, adapters) or f"; installed: {quote_list(adapters)}"
            message = f"unknown adapter '{adapter}'{hint}"
        return [Diagnostic.at(doc.span((*path, "uses")), "adapter", message)]
    args = body.get("with", {})
    if not isinstance(args, dict):
        return []
    out: list[Diagnostic] = []
    properties = schema.get("properties", {})
    if schema.get("additionalProperties") is False:
        for key in args:
            if key not in properties:
                hint = did_you_mean(key, properties) or \
                    f"; {uses} takes {quote_list(properties) or 'no arguments'}"
                out.append(Diagnostic.at(doc.span((*path, "with", key), key=True), "argument",
                                         f"unknown argument '{key}' for {uses}{hint}"))
    for key in schema.get("required", []):
        if key not in args:
            where = doc.span((*path, "with"), key=True) if "with" in body \
                else doc.span((*path, "uses"), key=True)
            out.append(Diagnostic.at(where, "argument",
                                     f"missing argument '{key}' for {uses}"))
    for key, value in args.items():
        if key in properties and not _has_expression(value):
            error = next(iter(Draft202012Validator(properties[key]).iter_errors(value)), None)
            if error is not None:
                out.append(Diagnostic.at(doc.span((*path, "with", key)), "argument",
                                         f"argument '{key}' of {uses}: {error.message}"))
    return out


def _has_expression(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_expression(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_expression(v) for v in value)
    return has_expression(value)


def check_models(doc: Document, aliases: Collection[str]) -> list[Diagnostic]:
    """``llm:`` steps name model aliases that the workspace's ``models`` declares."""
    out: list[Diagnostic] = []
    for path, step in iter_steps(doc.data.get("steps"), ("steps",)):
        for body, where in ((step.get("llm"), (*path, "llm")),
                            ((step.get("compensate") or {}).get("llm"),
                             (*path, "compensate", "llm"))):
            if not isinstance(body, dict):
                continue
            named: list[tuple[Any, JsonPath]] = [(body.get("model"), (*where, "model"))]
            tiers = body.get("tiers")
            if isinstance(tiers, list):
                named += [(t.get("model"), (*where, "tiers", i, "model"))
                          for i, t in enumerate(tiers) if isinstance(t, dict)]
            for alias, at in named:
                if isinstance(alias, str) and not has_expression(alias) \
                        and alias not in aliases:
                    out.append(Diagnostic.at(
                        doc.span(at), "unknown-model",
                        f"unknown model alias '{alias}' (aios.yaml models: "
                        f"{quote_list(sorted(aliases))}){did_you_mean(alias, aliases)}"))
    return out
