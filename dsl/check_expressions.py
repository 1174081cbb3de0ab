"""Static checks of every ``${{ }}`` expression in a playbook, run by ``aiosrun validate``.

Each place that is evaluated gets the contexts and functions it really has at run time:
``output`` only in a tier's ``accept``, ``result`` only in a step's ``outputs``, the item
name only inside its ``foreach``, status functions only in ``if``. References are checked
too: ``inputs.X`` must be declared, ``steps.X`` must name a step that has finished when the
expression runs (not a later one, not one running in parallel, not one inside a ``foreach``
seen from outside it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .diagnostics import Diagnostic, Span, did_you_mean
from .errors import ExpressionError
from .expression_nodes import Access, Context, Index, Literal, Prop
from .expressions import Expression, parse
from .loader import Document, JsonPath
from .steps import iter_steps
from .templates import TemplateSyntaxError, has_expression, locate, split_template

STEP_CONTEXTS = frozenset({"inputs", "steps", "run", "event", "vars", "secrets", "env"})
WORKSPACE_CONTEXTS = frozenset({"secrets", "env", "vars"})
TRIGGER_CONTEXTS = frozenset({"event", "vars"})
WEBHOOK_CONTEXTS = frozenset({"body", "headers"})  # server.webhooks.*.event and .id
STATUS_FUNCTIONS = frozenset({"success", "failure", "always", "cancelled"})
STEP_FIELDS = frozenset({"outputs", "outcome", "attempts", "conclusion"})
_ONLY_IN = {
    "output": "'output' is available only in a tier's accept:",
    "result": "'result' is available only in a step's outputs:",
    "item": "'item' is available only inside a foreach",
    "index": "'index' is available only inside a foreach",
}


@dataclass(frozen=True)
class _StepInfo:
    id: str
    path: JsonPath
    order: int
    containers: tuple[tuple[str, str], ...]  # (step id, 'parallel' | 'foreach'), outermost first
    item_names: frozenset[str]
    outputs: frozenset[str] | None = None  # the names its outputs have, where the playbook says


@dataclass(frozen=True)
class _Place:
    """Where an expression is evaluated: what it may name, and which step reads it."""

    contexts: frozenset[str]
    viewer: _StepInfo | None = None
    functions: frozenset[str] = frozenset()
    bare: bool = False  # a condition: the whole string is an expression even without ${{ }}
    self_visible: bool = False


def check_playbook_expressions(doc: Document) -> list[Diagnostic]:
    return _Checker(doc).run()


def check_workspace_expressions(doc: Document) -> list[Diagnostic]:
    """``aios.yaml``: secrets, env and vars everywhere, except a webhook's ``event`` and
    ``id``, which are evaluated per delivery over its ``body`` and ``headers``."""
    checker = _Checker(doc)
    settings = _Place(WORKSPACE_CONTEXTS)
    for key, value in doc.data.items():
        hooks = value.get("webhooks") if key == "server" and isinstance(value, dict) else None
        if not isinstance(hooks, dict):
            checker.value(value, (key,), settings)
            continue
        for name, item in value.items():
            if name != "webhooks":
                checker.value(item, (key, name), settings)
        for source, spec in hooks.items():
            for field, item in (spec.items() if isinstance(spec, dict) else ()):
                place = _Place(WEBHOOK_CONTEXTS) if field in ("event", "id") else settings
                checker.value(item, (key, "webhooks", source, field), place)
    return checker.out


class _Checker:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.out: list[Diagnostic] = []
        inputs = doc.data.get("inputs")
        self.inputs = {str(k).lower(): str(k) for k in inputs} if isinstance(inputs, dict) else {}
        self.steps = list(self._collect())
        self.by_id: dict[str, _StepInfo] = {}
        for info in self.steps:
            self.by_id.setdefault(info.id.lower(), info)

    def _collect(self) -> Iterator[_StepInfo]:
        containers: dict[JsonPath, tuple[tuple[str, str], ...]] = {}
        names: dict[JsonPath, frozenset[str]] = {}
        for order, (path, step) in enumerate(iter_steps(self.doc.data.get("steps"), ("steps",))):
            parent = path[:-3] if len(path) > 3 else None  # ... step, body, "steps", index
            chain = containers.get(parent, ()) if parent else ()
            items = names.get(parent, frozenset()) if parent else frozenset()
            step_id = step.get("id")
            info = _StepInfo(step_id if isinstance(step_id, str) else f"#{order}", path, order,
                             chain, items, _output_names(step))
            for body in ("parallel", "foreach"):
                if isinstance(step.get(body), dict):
                    containers[path] = (*chain, (info.id, body))
                    extra: frozenset[str] = frozenset()
                    if body == "foreach":
                        item = step[body].get("as", "item")
                        extra = frozenset({str(item).lower(), "index"})
                    names[path] = items | extra
            yield info

    def run(self) -> list[Diagnostic]:
        data = self.doc.data
        on = data.get("on")
        if isinstance(on, dict) and "if" in on:
            self.value(on["if"], ("on", "if"), _Place(TRIGGER_CONTEXTS, bare=True))
        for info in self.steps:
            step = self._step_data(info.path)
            if isinstance(step, dict):
                self.step(step, info)
        if "outputs" in data:
            self.value(data["outputs"], ("outputs",), _Place(STEP_CONTEXTS))
        return self.out

    def _step_data(self, path: JsonPath) -> Any:
        node: Any = self.doc.data
        for part in path:
            node = node[part]
        return node

    def step(self, step: dict[str, Any], info: _StepInfo) -> None:
        p = info.path
        base = _Place(STEP_CONTEXTS | info.item_names, viewer=info)
        if "if" in step:
            self.value(step["if"], (*p, "if"),
                       _Place(base.contexts, info, STATUS_FUNCTIONS, bare=True))
        for key in ("with", "idempotency_key", "continue_on_error", "set"):
            if key in step:
                self.value(step[key], (*p, key), base)
        if "outputs" in step:
            self.value(step["outputs"], (*p, "outputs"),
                       _Place(base.contexts | {"result"}, info))
        self.llm(step.get("llm"), (*p, "llm"), base)
        gate = step.get("gate")
        if isinstance(gate, dict):
            for key in ("message", "show"):
                if key in gate:
                    self.value(gate[key], (*p, "gate", key), base)
        wait = step.get("wait")
        if isinstance(wait, dict):
            if "match" in wait:
                self.value(wait["match"], (*p, "wait", "match"),
                           _Place(base.contexts, info, bare=True))
            if "until" in wait:
                self.value(wait["until"], (*p, "wait", "until"), base)
        emit = step.get("emit")
        if isinstance(emit, dict) and "data" in emit:
            self.value(emit["data"], (*p, "emit", "data"), base)
        foreach = step.get("foreach")
        if isinstance(foreach, dict) and "items" in foreach:
            self.value(foreach["items"], (*p, "foreach", "items"), base)
        call = step.get("call")
        if isinstance(call, dict) and "with" in call:
            self.value(call["with"], (*p, "call", "with"), base)
        escalate = step.get("escalate")
        if isinstance(escalate, dict) and "message" in escalate:
            self.value(escalate["message"], (*p, "escalate", "message"), base)
        compensate = step.get("compensate")
        if isinstance(compensate, dict):
            undo = _Place(base.contexts, info, self_visible=True)
            if "with" in compensate:
                self.value(compensate["with"], (*p, "compensate", "with"), undo)
            self.llm(compensate.get("llm"), (*p, "compensate", "llm"), undo)
            inner_call = compensate.get("call")
            if isinstance(inner_call, dict) and "with" in inner_call:
                self.value(inner_call["with"], (*p, "compensate", "call", "with"), undo)

    def llm(self, llm: Any, path: JsonPath, place: _Place) -> None:
        if not isinstance(llm, dict):
            return
        for key in ("prompt", "system"):
            if key in llm:
                self.value(llm[key], (*path, key), place)
        tiers = llm.get("tiers")
        if isinstance(tiers, list):
            for i, tier in enumerate(tiers):
                if isinstance(tier, dict) and "accept" in tier:
                    accept = _Place(place.contexts | {"output"}, place.viewer, bare=True,
                                    self_visible=place.self_visible)
                    self.value(tier["accept"], (*path, "tiers", i, "accept"), accept)

    # ---- values and expressions -----------------------------------------------------------

    def value(self, value: Any, path: JsonPath, place: _Place) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                self.value(item, (*path, key), place)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self.value(item, (*path, index), place)
        elif isinstance(value, str):
            if has_expression(value):
                self.template(value, path, place)
            elif place.bare and value.strip():
                self.bare(value, path, place)

    def template(self, text: str, path: JsonPath, place: _Place) -> None:
        try:
            parts = split_template(text)
        except TemplateSyntaxError as exc:
            self.out.append(Diagnostic.at(locate(self.doc, path, exc.index, -3), "expression",
                                          str(exc)))
            return
        for part in parts:
            if isinstance(part, str):
                continue
            source = part.source.strip()
            lead = len(part.source) - len(part.source.lstrip())

            def where(offset: int, index: int = part.index, lead: int = lead) -> Span:
                return locate(self.doc, path, index, lead + offset)

            self.expression(source, place, where)

    def bare(self, text: str, path: JsonPath, place: _Place) -> None:
        start = self.doc.span(path)
        offset = self.doc.offset(start.line, start.col)
        quoted = self.doc.text[offset:offset + 1] in ("'", '"')
        lead = len(text) - len(text.lstrip())

        def where(position: int) -> Span:
            return Span(start.file, start.line, start.col + quoted + lead + position)

        self.expression(text.strip(), place, where)

    def expression(self, source: str, place: _Place, where: Any) -> None:
        try:
            parsed = parse(source, place.contexts, place.functions)
        except ExpressionError as exc:
            self.out.append(Diagnostic.at(where(exc.position), "expression",
                                          _friendly(exc, place)))
            return
        self.references(parsed, place, where)

    def references(self, parsed: Expression, place: _Place, where: Any) -> None:
        for node in parsed.walk():
            if not (isinstance(node, Access) and isinstance(node.base, Context)):
                continue
            name, position = _static_key(node.accessors[0]) if node.accessors else (None, 0)
            if name is None:
                continue
            if node.base.name == "inputs" and name.lower() not in self.inputs:
                declared = ", ".join(self.inputs.values()) or "none"
                hint = did_you_mean(name, self.inputs.values())
                self.out.append(Diagnostic.at(
                    where(position), "reference",
                    f"unknown input '{name}' (declared inputs: {declared}){hint}"))
            elif node.base.name == "steps":
                problem = self.step_problem(name, place)
                if problem is None and len(node.accessors) > 1:
                    field_name, field_pos = _static_key(node.accessors[1])
                    if field_name is not None and field_name.lower() not in STEP_FIELDS:
                        problem = (f"steps.{name} has outputs, outcome and attempts, "
                                   f"not '{field_name}'")
                        position = field_pos
                if problem is None and len(node.accessors) > 2:
                    problem, position = self.output_problem(name, node, position)
                if problem is not None:
                    self.out.append(Diagnostic.at(where(position), "reference", problem))

    def output_problem(self, name: str, node: Access, position: int) -> tuple[str | None, int]:
        """``steps.ID.outputs.NAME`` where the playbook fixes the step's outputs (``set:``,
        ``outputs:``, a gate, an emit, a timer): an event's payload is not typed."""
        field_name, _ = _static_key(node.accessors[1])
        key, key_position = _static_key(node.accessors[2])
        known = self.by_id[name.lower()].outputs
        if field_name is None or field_name.lower() != "outputs" or key is None \
                or known is None or key.lower() in {k.lower() for k in known}:
            return None, position
        listed = ", ".join(sorted(known)) or "none"
        hint = did_you_mean(key, sorted(known))
        return (f"step '{name}' has no output '{key}' (its outputs: {listed}){hint}",
                key_position)

    def step_problem(self, name: str, place: _Place) -> str | None:
        target = self.by_id.get(name.lower())
        if target is None:
            hint = did_you_mean(name, [s.id for s in self.steps])
            return f"no step '{name}' in this playbook{hint}"
        viewer = place.viewer
        if viewer is None:
            if target.containers:
                outer = target.containers[0][0]
                return f"step '{target.id}' is inside '{outer}'; read steps.{outer}.outputs"
            return None
        if target is viewer:
            if place.self_visible:
                return None
            return (f"step '{name}' cannot read its own outputs here "
                    "(use 'result' in its outputs:)")
        if any(container == target.id for container, _ in viewer.containers):
            return (f"step '{target.id}' contains this step; its outputs exist only "
                    "when it has finished")
        for container, kind in target.containers:
            if (container, kind) not in viewer.containers:
                return (f"step '{target.id}' is inside {kind} '{container}'; "
                        f"read steps.{container}.outputs instead")
        if target.order > viewer.order:
            return f"step '{target.id}' runs after this step; its outputs are not there yet"
        common = [c for c in viewer.containers if c in target.containers]
        if common and common[-1][1] == "parallel":
            return f"step '{target.id}' runs in parallel with this step"
        return None


def _output_names(step: dict[str, Any]) -> frozenset[str] | None:
    """The output names a step's definition fixes, or None where they come from outside (an
    adapter, a model, an event, a child run)."""
    for key in ("outputs", "set"):
        if key in step:
            value = step[key]
            return frozenset(str(k) for k in value) if isinstance(value, dict) else None
    if "gate" in step:
        return frozenset({"decision", "comment", "decided_at"})
    if "emit" in step:
        return frozenset({"event", "seq"})
    wait = step.get("wait")
    if isinstance(wait, dict) and "event" not in wait:
        return frozenset()  # a timer: no payload
    return None


def _static_key(accessor: Any) -> tuple[str | None, int]:
    if isinstance(accessor, Prop):
        return accessor.name, accessor.position
    if isinstance(accessor, Index) and isinstance(accessor.expr, Literal) \
            and isinstance(accessor.expr.value, str):
        return accessor.expr.value, accessor.expr.position
    return None, 0


def _friendly(exc: ExpressionError, place: _Place) -> str:
    symbol = exc.symbol or ""
    if exc.code == "unknown-context":
        special = _ONLY_IN.get(symbol.lower())
        if special and symbol.lower() not in place.contexts:
            return f"unknown context '{symbol}': {special}"
        return (f"unknown context '{symbol}'; available here: "
                + ", ".join(sorted(place.contexts)))
    if exc.code == "unknown-function":
        return f"unknown function '{symbol}()': {exc.detail}"
    if exc.code == "arity":
        return f"wrong number of arguments: {exc.detail}"
    if exc.code == "unexpected-symbol":
        return f"unexpected '{symbol}' in expression"
    if exc.code == "unexpected-end":
        return f"expression ends too early after '{symbol}'"
    return f"{exc.message}" + (f" ({exc.detail})" if exc.detail else "")
