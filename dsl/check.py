"""Semantic checks that JSON Schema cannot express: unique ids, cron, duration relations,
embedded JSON Schemas; expressions are checked by :mod:`check_expressions`.

The checks run even when schema validation failed, so that one pass reports every problem;
they therefore look at the data defensively and skip what has the wrong shape (the schema
already reported that).
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from .diagnostics import Diagnostic
from .durations import format_duration, parse_duration
from .loader import Document, JsonPath
from .steps import iter_steps

CONTEXT_NAMES = frozenset(
    {"inputs", "steps", "run", "event", "vars", "secrets", "env", "output", "result",
     "index", "item", "job", "github", "matrix", "needs", "strategy", "runner"}
)


def check_playbook(doc: Document) -> list[Diagnostic]:
    data = doc.data
    out: list[Diagnostic] = []
    out += _unique_ids(doc)
    out += _triggers(doc)
    out += _embedded_schemas(doc)
    out += _memory_domains(doc)
    out += _huge_durations(doc, data, ())
    defaults = data.get("defaults")
    if isinstance(defaults, dict):
        out += _retry(doc, defaults.get("retry"), ("defaults", "retry"))
        out += _positive_duration(doc, defaults.get("timeout"), ("defaults", "timeout"))
    for path, step in iter_steps(data.get("steps"), ("steps",)):
        out += _step(doc, step, path, defaults if isinstance(defaults, dict) else {})
    from .check_expressions import check_playbook_expressions

    out += check_playbook_expressions(doc)
    return out


def check_workspace(doc: Document) -> list[Diagnostic]:
    from .check_expressions import check_workspace_expressions

    out = check_workspace_expressions(doc)
    log = doc.data.get("log")
    if isinstance(log, dict):
        out += _positive_duration(doc, log.get("group_window"), ("log", "group_window"))
    server = doc.data.get("server")
    if isinstance(server, dict):
        out += _positive_duration(doc, server.get("read_timeout"), ("server", "read_timeout"))
        out += _webhook_events(doc, server.get("webhooks"))
    out += _notify_channels(doc)
    return out


def _notify_channels(doc: Document) -> list[Diagnostic]:
    """A channel is an email or a webhook; a webhook goes through the http adapter, so its
    host must be allowed there: found at validate, not at the first notification."""
    from urllib.parse import urlsplit

    from aiosrun.adapters.http import host_allowed

    channels = doc.data.get("notify")
    http = (doc.data.get("adapters") or {}).get("http") if isinstance(
        doc.data.get("adapters"), dict) else None
    allowed = http.get("allow_hosts") if isinstance(http, dict) else None
    patterns = [str(h) for h in allowed] if isinstance(allowed, list) else []
    out = []
    for i, entry in enumerate(channels if isinstance(channels, list) else ()):
        if not isinstance(entry, dict):
            continue
        kinds = [k for k in ("email", "webhook") if k in entry]
        if len(kinds) != 1:
            out.append(Diagnostic.at(doc.span(("notify", i)), "notify-channel",
                                     "a notify channel is either `email: ADDRESS` or "
                                     f"`webhook: URL`, not {' and '.join(kinds) or 'neither'}"))
            continue
        if "format" in entry and kinds == ["email"]:
            out.append(Diagnostic.at(doc.span(("notify", i, "format")), "notify-channel",
                                     "format is for webhooks; an email channel sends mail"))
        url = entry.get("webhook")
        if not isinstance(url, str) or "${{" in urlsplit(url).netloc:
            continue
        if not host_allowed(url, patterns):
            out.append(Diagnostic.at(doc.span(("notify", i, "webhook")), "notify-host",
                                     f"{urlsplit(url).netloc} is not in "
                                     "adapters.http.allow_hosts, so this webhook could never "
                                     "be sent: add it there"))
    return out


def _webhook_events(doc: Document, hooks: Any) -> list[Diagnostic]:
    """A webhook's ``event:`` without an expression must be an event name itself."""
    from .names import EVENT_NAME

    out = []
    for source, spec in (hooks.items() if isinstance(hooks, dict) else ()):
        event = spec.get("event") if isinstance(spec, dict) else None
        if isinstance(event, str) and "${{" not in event and not EVENT_NAME.fullmatch(event):
            out.append(Diagnostic.at(doc.span(("server", "webhooks", source, "event")),
                                     "event-name", f"'{event}' is not an event name: "
                                     "dot-separated words such as lead.created, or an "
                                     "expression over body and headers"))
    return out


def _unique_ids(doc: Document) -> list[Diagnostic]:
    seen: dict[str, int] = {}
    out = []
    for path, step in iter_steps(doc.data.get("steps"), ("steps",)):
        step_id = step.get("id")
        if not isinstance(step_id, str):
            continue
        span = doc.span((*path, "id"))
        if step_id in seen:
            out.append(Diagnostic.at(span, "duplicate-id",
                                     f"duplicate step id '{step_id}' (first used at line "
                                     f"{seen[step_id]}); step ids are unique in a playbook, "
                                     "nested steps included"))
        else:
            seen[step_id] = span.line
    return out


def _memory_domains(doc: Document) -> list[Diagnostic]:
    """A playbook touches only the memory domains it declares in ``memory:``."""
    declared = doc.data.get("memory")
    declared = [d for d in declared if isinstance(d, str)] if isinstance(declared, list) else []
    out = []
    for path, step in iter_steps(doc.data.get("steps"), ("steps",)):
        uses, args = step.get("uses"), step.get("with")
        if not (isinstance(uses, str) and uses.startswith("memory.") and isinstance(args, dict)):
            continue
        domain = args.get("domain")
        if isinstance(domain, str) and "${{" not in domain and domain not in declared:
            listed = ", ".join(f"'{d}'" for d in declared) or "none"
            out.append(Diagnostic.at(
                doc.span((*path, "with", "domain")), "memory-domain",
                f"memory domain '{domain}' is not declared in this playbook's memory: "
                f"(declared: {listed}); add it to `memory:` at the top level"))
    return out


def _triggers(doc: Document) -> list[Diagnostic]:
    on = doc.data.get("on")
    if not isinstance(on, dict):
        return []
    schedule = on.get("schedule")
    entries: list[tuple[JsonPath, Any]]
    if isinstance(schedule, list):
        entries = [(("on", "schedule", i), s) for i, s in enumerate(schedule)]
    else:
        entries = [(("on", "schedule"), schedule)]
    out = []
    for path, expr in entries:
        if isinstance(expr, str) and not cron_is_valid(expr):
            out.append(Diagnostic.at(doc.span(path), "cron",
                                     f"invalid cron expression '{expr}': expected five fields "
                                     "(minute hour day-of-month month day-of-week) such as "
                                     "'0 9 * * 1', or @hourly/@daily/@weekly/@monthly"))
    return out


def cron_is_valid(expr: str) -> bool:
    from croniter import croniter  # imported here: only playbooks with schedules pay for it

    text = expr.strip()
    if not text.startswith("@") and len(text.split()) != 5:
        return False
    try:
        return bool(croniter.is_valid(text))
    except Exception:  # croniter raises assorted errors on odd input
        return False


def _embedded_schemas(doc: Document) -> list[Diagnostic]:
    out = []
    inputs = doc.data.get("inputs")
    if isinstance(inputs, dict):
        for name, schema in inputs.items():
            out += _json_schema(doc, schema, ("inputs", name))
    for path, step in iter_steps(doc.data.get("steps"), ("steps",)):
        llm = step.get("llm")
        if isinstance(llm, dict) and isinstance(llm.get("output"), dict):
            out += _json_schema(doc, llm["output"], (*path, "llm", "output"))
    return out


def _json_schema(doc: Document, schema: Any, path: JsonPath) -> list[Diagnostic]:
    if not isinstance(schema, dict):
        return []
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = (*path, *exc.absolute_path)
        return [Diagnostic.at(doc.span(where), "json-schema",
                              f"invalid JSON Schema: {exc.message}")]
    return []


def _step(doc: Document, step: dict[str, Any], path: JsonPath,
          defaults: dict[str, Any]) -> list[Diagnostic]:
    out = _retry(doc, step.get("retry"), (*path, "retry"))
    out += _positive_duration(doc, step.get("timeout"), (*path, "timeout"))
    compensate = step.get("compensate")
    if isinstance(compensate, dict):
        out += _retry(doc, compensate.get("retry"), (*path, "compensate", "retry"))
    gate = step.get("gate")
    if isinstance(gate, dict):
        out += _positive_duration(doc, gate.get("timeout"), (*path, "gate", "timeout"))
        if "on_timeout" in gate and "timeout" not in gate:
            out.append(Diagnostic.at(doc.span((*path, "gate", "on_timeout"), key=True),
                                     "gate", "'on_timeout' needs a 'timeout' in the gate"))
    wait = step.get("wait")
    if isinstance(wait, dict):
        for key in ("duration", "timeout"):
            out += _positive_duration(doc, wait.get(key), (*path, "wait", key))
    llm = step.get("llm")
    if isinstance(llm, dict) and "model" in llm and "tiers" in llm:
        out.append(Diagnostic.at(doc.span((*path, "llm", "tiers"), key=True), "llm",
                                 "give either 'model' or 'tiers', not both"))
    foreach = step.get("foreach")
    if isinstance(foreach, dict):
        name = foreach.get("as")
        if isinstance(name, str) and name in CONTEXT_NAMES - {"item"}:
            out.append(Diagnostic.at(doc.span((*path, "foreach", "as")), "foreach",
                                     f"'{name}' is a context name; choose another name for "
                                     "the item"))
    escalate = step.get("escalate")
    retry = step.get("retry", defaults.get("retry", {}))  # a step's retry replaces the default
    if isinstance(escalate, dict) and isinstance(retry, dict):
        after, most = escalate.get("after_attempts"), retry.get("max_attempts", 1)
        if isinstance(after, int) and isinstance(most, int) and after > most:
            out.append(Diagnostic.at(
                doc.span((*path, "escalate", "after_attempts")), "escalate",
                f"escalation after {after} attempts never happens: the step makes at most "
                f"{most} (retry.max_attempts)"))
    return out


def _retry(doc: Document, retry: Any, path: JsonPath) -> list[Diagnostic]:
    if not isinstance(retry, dict):
        return []
    initial = parse_duration(retry.get("initial_delay", ""))
    ceiling = parse_duration(retry.get("max_delay", ""))
    if initial is not None and ceiling is not None and ceiling < initial:
        return [Diagnostic.at(doc.span((*path, "max_delay")), "retry",
                              f"max_delay ({format_duration(ceiling)}) is shorter than "
                              f"initial_delay ({format_duration(initial)})")]
    return []


MAX_DURATION_MS = 3650 * 86_400_000  # ten years: longer is a typo, and past what clocks hold
DURATION_KEYS = frozenset({"timeout", "duration", "initial_delay", "max_delay"})


def _huge_durations(doc: Document, data: Any, path: JsonPath) -> list[Diagnostic]:
    """Durations beyond ten years: they validate as text but overflow every clock."""
    out: list[Diagnostic] = []
    items = data.items() if isinstance(data, dict) else \
        enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        if key in DURATION_KEYS and isinstance(value, str):
            ms = parse_duration(value)
            if ms is not None and ms > MAX_DURATION_MS:
                out.append(Diagnostic.at(doc.span((*path, key)), "duration",
                                         f"'{key}' is longer than 3650d (ten years)"))
        else:
            out += _huge_durations(doc, value, (*path, key))
    return out


def _positive_duration(doc: Document, value: Any, path: JsonPath) -> list[Diagnostic]:
    if parse_duration(value) == 0:
        return [Diagnostic.at(doc.span(path), "duration",
                              f"'{path[-1]}' must be longer than zero")]
    return []
