"""An agent's tools: what the model is offered, and each call run as a recorded child step.

A tool is offered under a name the API accepts (``^[a-zA-Z0-9_-]+$``, at most 64
characters): ``billing.list_invoices`` becomes ``billing__list_invoices``. A call runs as
the child step ``STEP/turn-N/TOOL`` through the interpreter's own ``run_step``, so it has an
idempotency key, the step's retries, a timeline entry and the approval gate that
``policy.require_approval`` asks for. A call of a tool the agent was not given, or with
arguments that fail the tool's schema, is recorded as a refused child step and never runs:
the model reads why.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiosrun.adapters.base import PermanentError
from aiosrun.dsl import ir
from aiosrun.dsl.diagnostics import schema_message
from aiosrun.runtime.coordinator.frames import Frame, Suspended
from jsonschema import Draft202012Validator

if TYPE_CHECKING:
    from aiosrun.runtime.coordinator.runner_base import RunnerBase as Runner

_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
MAX_RESULT_CHARS = 20_000  # what one tool answer may put in the conversation


@dataclass(frozen=True)
class Tool:
    name: str  # as the model sees it
    action: str  # ADAPTER.ACTION, or the playbook of a child run
    kind: str
    description: str
    schema: dict[str, Any]
    fixed: tuple[tuple[str, Any], ...] = ()  # arguments the agent does not choose (a domain)

    def offer(self) -> dict[str, Any]:
        return {"type": "function", "function": {
            "name": self.name, "description": self.description[:1000],
            "parameters": self.schema}}


def api_name(text: str) -> str:
    return _UNSAFE.sub("_", text.replace(".", "__"))[:64]


def toolset(runner: Runner, agent: ir.AgentDef) -> dict[str, Tool]:
    """The agent's tools by API name (a tool that cannot be offered fails the step)."""
    tools: dict[str, Tool] = {}
    registry = runner.ws.registry
    for tool in agent.tools:
        if tool.kind == "uses" or (tool.kind == "mcp" and "." in tool.target):
            _, action, _ = registry.action(tool.target)
            found = [Tool(api_name(tool.target), tool.target, tool.kind, action.description,
                          dict(ir.thaw(action.args)))]
        elif tool.kind == "mcp":
            adapter = registry.adapters.get(tool.target)
            if adapter is None:
                raise PermanentError(f"agent '{agent.name}': no MCP server '{tool.target}' "
                                     "(aios.yaml mcp)")
            found = [Tool(api_name(f"{tool.target}.{name}"), f"{tool.target}.{name}", "mcp",
                          action.description, dict(ir.thaw(action.args)))
                     for name, action in adapter.actions.items()]
        elif tool.kind == "memory":
            found = [Tool(api_name(f"memory.search_{tool.target}"), "memory.search", "memory",
                          f"Search the '{tool.target}' memory (hybrid BM25 + vector).",
                          {"type": "object", "required": ["query"],
                           "additionalProperties": False,
                           "properties": {"query": {"type": "string"},
                                          "k": {"type": "integer", "minimum": 1,
                                                "maximum": 20}}},
                          (("domain", tool.target),))]
        else:
            found = [_playbook_tool(runner, tool.target)]
        for one in found:
            tools[one.name] = one
    return tools


def _playbook_tool(runner: Runner, name: str) -> Tool:
    digest = runner.ws.workspace_state().current.get(name)
    if digest is None:
        raise PermanentError(f"agent tool: no applied playbook '{name}' (aiosrun apply)")
    playbook: ir.Playbook = runner.ws.playbook(digest)
    inputs = ir.thaw(playbook.inputs)
    required = [k for k, v in inputs.items() if not (isinstance(v, dict) and "default" in v)]
    return Tool(api_name(f"playbook.{name}"), name, "playbook",
                playbook.description or f"Start the playbook '{name}' and wait for its outputs.",
                {"type": "object", "properties": inputs, "required": required})


def refusal(tools: dict[str, Tool], name: str, arguments: str) -> tuple[str, Any]:
    """Why a call cannot run (error class and message), or ``("", args)`` when it can."""
    tool = tools.get(name)
    if tool is None:
        offered = ", ".join(sorted(tools)) or "none"
        return "refused", f"there is no tool '{name}' for this agent (its tools: {offered})"
    try:
        args = json.loads(arguments or "{}")
    except ValueError as exc:
        return "invalid_arguments", f"{name}: the arguments are not JSON ({exc})"
    if not isinstance(args, dict):
        return "invalid_arguments", f"{name}: the arguments must be a JSON object"
    problem = next(iter(Draft202012Validator(tool.schema).iter_errors(args)), None)
    if problem is not None:
        where = "/".join(str(p) for p in problem.absolute_path) or "arguments"
        return "invalid_arguments", f"{name}: {where}: {schema_message(problem)}"
    return "", args


async def call_tool(runner: Runner, step: ir.Step, tools: dict[str, Tool], prefix: str,
                    child_id: str, name: str, arguments: str) -> dict[str, Any]:
    """Run (or read back) one tool call as the child step ``prefix + child_id``; its answer
    for the model: the outputs, or the error as data."""
    path = prefix + child_id
    state = runner.state.steps.get(path)
    if state is None or state.status not in ("succeeded", "failed"):
        error_class, args = refusal(tools, name, arguments)
        if error_class and state is None:
            runner.record("StepStarted", path=path, id=child_id, attempt=1, key="",
                          tool=name)
            runner.record("StepFailed", path=path, id=child_id, error_class=error_class,
                          message=str(args), attempts=1, continued=True)
        elif not error_class:
            tool = tools[name]
            given = {**args, **dict(tool.fixed)}
            values = ir.MapOf(tuple((k, ir.Const(ir.freeze(v))) for k, v in given.items()))
            body: ir.Body = ir.Call(tool.action, values) if tool.kind == "playbook" \
                else ir.Uses(tool.action, values)
            child = ir.Step(id=child_id, path=path, span=step.span, body=body,
                            retry=step.retry, timeout_ms=step.timeout_ms,
                            continue_on_error=ir.Const(True))
            await runner.run_step(child, Frame(prefix))
            if runner.suspended:
                raise Suspended  # an approval gate (or the tool's escalation) is open
        state = runner.state.steps[path]
    if state.status == "succeeded":
        return {"ok": True, "result": state.outputs}
    error = state.error or {}
    return {"ok": False, "error_class": error.get("class", "unknown"),
            "error": error.get("message", "")}


def answer_text(result: dict[str, Any]) -> str:
    text = json.dumps(result, ensure_ascii=False, default=str)
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + "... (cut)"
    return text
