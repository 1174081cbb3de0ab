"""A validated playbook document -> the immutable IR of :mod:`aiosrun.dsl.ir`.

Only documents that passed the schema and the semantic checks reach this module, so it
reads the data without re-checking it. Defaults (``defaults.retry``/``timeout``) are applied
here, once, so the runtime never has to know where a setting came from.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from . import ir
from .durations import parse_duration
from .loader import Document, JsonPath
from .templates import Segment, has_expression, is_single_expression, locate, split_template


def content_digest(data: Any) -> str:
    """sha256 of the canonical JSON form: comments, key order and YAML style do not count."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def compile_playbook(doc: Document, agents: Mapping[str, Document] | None = None
                     ) -> ir.Playbook:
    """``agents``: the workspace's agent files; the ones the playbook names are compiled into
    it (and into its digest), so a run keeps the agent it started with."""
    return _Compiler(doc, agents or {}).playbook()


def used_agents(data: Any, agents: Mapping[str, Document]) -> dict[str, Any]:
    from .steps import iter_steps

    return {step["agent"]: agents[step["agent"]].data
            for _, step in iter_steps(data.get("steps"), ("steps",))
            if isinstance(step.get("agent"), str) and step["agent"] in agents}


class _Compiler:
    def __init__(self, doc: Document, agents: Mapping[str, Document] | None = None) -> None:
        self.doc = doc
        self.agents = agents or {}
        data = doc.data
        defaults = data.get("defaults", {})
        self.default_retry = self.retry(defaults.get("retry"))
        self.default_timeout = parse_duration(defaults.get("timeout", ""))

    def playbook(self) -> ir.Playbook:
        data = self.doc.data
        policy = data.get("policy", {})
        return ir.Playbook(
            name=data["name"],
            description=data.get("description", ""),
            digest=content_digest({"playbook": data, "agents": used}
                                  if (used := used_agents(data, self.agents)) else data),
            source=self.doc.file,
            triggers=self.triggers(data.get("on", "manual")),
            inputs=ir.freeze(data.get("inputs", {})),
            memory=tuple(data.get("memory", ())),
            policy=ir.Policy(
                budget_usd=policy.get("budget_usd"),
                require_approval=tuple(policy.get("require_approval", ())),
                timeout_ms=parse_duration(policy.get("timeout", "")),
            ),
            steps=self.steps(data["steps"], ("steps",), ""),
            outputs=self.mapping(data.get("outputs", {}), ("outputs",)),
            on_failure=data.get("on_failure", "compensate"),
        )

    def triggers(self, on: Any) -> ir.Triggers:
        if not isinstance(on, dict):
            return ir.Triggers()
        events = on.get("event", ())
        schedules = on.get("schedule", ())
        return ir.Triggers(
            events=(events,) if isinstance(events, str) else tuple(events),
            condition=self.condition(on["if"], ("on", "if")) if "if" in on else None,
            schedules=(schedules,) if isinstance(schedules, str) else tuple(schedules),
        )

    def steps(self, steps: list[dict[str, Any]], path: JsonPath,
              parent: str) -> tuple[ir.Step, ...]:
        return tuple(self.step(step, (*path, i), parent) for i, step in enumerate(steps))

    def step(self, data: dict[str, Any], path: JsonPath, parent: str) -> ir.Step:
        step_path = f"{parent}/{data['id']}" if parent else data["id"]
        timeout = parse_duration(data.get("timeout", ""))
        return ir.Step(
            id=data["id"],
            path=step_path,
            span=self.doc.span(path),
            body=self.body(data, path, step_path),
            name=data.get("name"),
            condition=self.condition(data["if"], (*path, "if")) if "if" in data else None,
            retry=self.retry(data["retry"]) if "retry" in data else self.default_retry,
            timeout_ms=timeout if timeout is not None else self.default_timeout,
            idempotency_key=(self.value(data["idempotency_key"], (*path, "idempotency_key"))
                             if "idempotency_key" in data else None),
            compensate=(self.compensation(data["compensate"], (*path, "compensate"))
                        if "compensate" in data else None),
            continue_on_error=self.value(data.get("continue_on_error", False),
                                         (*path, "continue_on_error")),
            escalate=(ir.Escalate(data["escalate"]["after_attempts"],
                                  data["escalate"].get("message"))
                      if "escalate" in data else None),
            checkpoint=bool(data.get("checkpoint", False)),
            outputs=(self.mapping(data["outputs"], (*path, "outputs"))
                     if "outputs" in data else None),
            cache=bool(data.get("cache", False)),
        )

    def body(self, data: dict[str, Any], path: JsonPath, step_path: str) -> ir.Body:
        if "uses" in data:
            return ir.Uses(data["uses"], self.mapping(data.get("with", {}), (*path, "with")))
        if "llm" in data:
            return self.llm(data["llm"], (*path, "llm"))
        if "gate" in data:
            gate = data["gate"]
            p = (*path, "gate")
            return ir.Gate(
                message=self.value(gate["message"], (*p, "message")),
                show=self.value(gate["show"], (*p, "show")) if "show" in gate else None,
                timeout_ms=parse_duration(gate.get("timeout", "")),
                on_timeout=gate.get("on_timeout", "reject"),
            )
        if "wait" in data:
            wait = data["wait"]
            p = (*path, "wait")
            return ir.Wait(
                event=wait.get("event"),
                match=self.condition(wait["match"], (*p, "match")) if "match" in wait else None,
                duration_ms=parse_duration(wait.get("duration", "")),
                until=self.value(wait["until"], (*p, "until")) if "until" in wait else None,
                timeout_ms=parse_duration(wait.get("timeout", "")),
            )
        if "emit" in data:
            emit = data["emit"]
            return ir.Emit(emit["event"], self.value(emit.get("data"), (*path, "emit", "data")))
        if "parallel" in data:
            par = data["parallel"]
            return ir.Parallel(
                steps=self.steps(par["steps"], (*path, "parallel", "steps"), step_path),
                max_concurrency=par.get("max_concurrency"),
                fail_fast=par.get("fail_fast", True),
            )
        if "foreach" in data:
            each = data["foreach"]
            p = (*path, "foreach")
            return ir.Foreach(
                items=self.value(each["items"], (*p, "items")),
                steps=self.steps(each["steps"], (*p, "steps"), step_path),
                item_name=each.get("as", "item"),
                max_concurrency=each.get("max_concurrency", 1),
                fail_fast=each.get("fail_fast", True),
            )
        if "call" in data:
            return self.call(data["call"], (*path, "call"))
        if "agent" in data:
            given = data.get("with", {})
            agent = data["agent"]
            if isinstance(agent, str) and agent not in self.agents:
                # validated outside a workspace: the name stands for an agent not at hand
                definition = ir.AgentDef(name=agent, instructions="", tiers=(), tools=())
            elif isinstance(agent, str):
                found = self.agents[agent]
                definition = _Compiler(found).agent(found.data, (), agent)
            else:
                definition = self.agent(agent, (*path, "agent"), data["id"])
            return ir.Agent(
                agent=definition, task=self.value(given["task"], (*path, "with", "task")),
                context=(self.value(given["context"], (*path, "with", "context"))
                         if "context" in given else None))
        return ir.SetValues(self.mapping(data["set"], (*path, "set")))

    def llm(self, data: dict[str, Any], path: JsonPath) -> ir.Llm:
        tiers = self.tiers(data, path)
        return ir.Llm(
            prompt=self.value(data["prompt"], (*path, "prompt")),
            system=self.value(data["system"], (*path, "system")) if "system" in data else None,
            output_schema=ir.freeze(data["output"]) if "output" in data else None,
            tiers=tiers,
            cache=bool(data.get("cache", False)),
            temperature=data.get("temperature"),
            max_tokens=data.get("max_tokens"),
            validation_retries=data.get("validation_retries", 2),
        )

    def agent(self, data: dict[str, Any], path: JsonPath, name: str) -> ir.AgentDef:
        limits = data.get("limits", {})
        tools = tuple(ir.AgentTool(kind, str(tool[kind])) for tool in data.get("tools", ())
                      for kind in ("uses", "playbook", "memory", "mcp") if kind in tool)
        return ir.AgentDef(
            name=data.get("name", name),
            instructions=data["instructions"],
            tiers=self.tiers(data, path),
            tools=tools,
            output_schema=ir.freeze(data["output"]) if "output" in data else None,
            max_turns=limits.get("max_turns", 10),
            max_tool_calls=limits.get("max_tool_calls", 30),
            budget_usd=limits.get("budget_usd"),
            below_confidence=(data.get("escalate") or {}).get("below_confidence"),
            max_tool_errors=limits.get("max_tool_errors", 3),
            max_tokens=data.get("max_tokens"),
            temperature=data.get("temperature"),
        )

    def tiers(self, data: dict[str, Any], path: JsonPath) -> tuple[ir.Tier, ...]:
        if "tiers" in data:
            return tuple(
                ir.Tier(
                    model=t["model"],
                    accept=(self.condition(t["accept"], (*path, "tiers", i, "accept"))
                            if "accept" in t else None),
                    max_tokens=t.get("max_tokens"),
                )
                for i, t in enumerate(data["tiers"])
            )
        if "model" in data:
            return (ir.Tier(model=data["model"]),)
        return ()

    def call(self, data: dict[str, Any], path: JsonPath) -> ir.Call:
        return ir.Call(data["playbook"], self.mapping(data.get("with", {}), (*path, "with")))

    def compensation(self, data: dict[str, Any], path: JsonPath) -> ir.Compensation:
        body: ir.Uses | ir.Llm | ir.Call
        if "uses" in data:
            body = ir.Uses(data["uses"], self.mapping(data.get("with", {}), (*path, "with")))
        elif "llm" in data:
            body = self.llm(data["llm"], (*path, "llm"))
        else:
            body = self.call(data["call"], (*path, "call"))
        return ir.Compensation(
            body=body,
            retry=self.retry(data["retry"]) if "retry" in data else self.default_retry,
            timeout_ms=parse_duration(data.get("timeout", "")),
            span=self.doc.span(path),
        )

    @staticmethod
    def retry(data: Any) -> ir.Retry:
        if not isinstance(data, dict):
            return ir.Retry()
        base = ir.Retry()
        return ir.Retry(
            max_attempts=data.get("max_attempts", base.max_attempts),
            initial_delay_ms=parse_duration(data.get("initial_delay", "")) or base.initial_delay_ms,
            backoff=float(data.get("backoff", base.backoff)),
            max_delay_ms=parse_duration(data.get("max_delay", "")) or base.max_delay_ms,
            jitter=data.get("jitter", base.jitter),
            retry_on=tuple(data.get("retry_on", base.retry_on)),
        )

    def condition(self, value: Any, path: JsonPath) -> ir.Value:
        """``if``/``accept``/``match`` take a bare expression too, as GitHub Actions' ``if``."""
        if isinstance(value, str) and not has_expression(value):
            return ir.Expr(value.strip(), self.doc.span(path))
        return self.value(value, path)

    def mapping(self, data: dict[str, Any], path: JsonPath) -> ir.MapOf:
        return ir.MapOf(tuple((k, self.value(v, (*path, k))) for k, v in data.items()))

    def value(self, value: Any, path: JsonPath) -> ir.Value:
        if isinstance(value, dict):
            return self.mapping(value, path)
        if isinstance(value, list):
            return ir.ListOf(tuple(self.value(v, (*path, i)) for i, v in enumerate(value)))
        if not has_expression(value):
            return ir.Const(value)
        parts = split_template(value)
        if is_single_expression(parts):
            segment = next(p for p in parts if isinstance(p, Segment))
            return self.expr(segment, path)
        return ir.Interp(tuple(self.expr(p, path) if isinstance(p, Segment) else p
                               for p in parts))

    def expr(self, segment: Segment, path: JsonPath) -> ir.Expr:
        stripped = segment.source.lstrip()
        lead = len(segment.source) - len(stripped)
        return ir.Expr(stripped.rstrip(), locate(self.doc, path, segment.index, lead))
