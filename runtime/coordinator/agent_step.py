"""``agent:`` steps: the loop of model turns and tool calls, governed and durable.

Each turn is one model call, recorded as ``ModelCalled`` (with ``turn``) and its answer before
any tool it asks for runs; each tool call is a child step (:mod:`agent_tools`). The
conversation is never kept anywhere else: it is rebuilt from those records, so a loop resumed
after kill -9 or after a gate neither asks (nor pays) for a recorded answer again nor runs a
recorded tool call again. Limits (turns, tool calls, the agent's budget) are checked before
each call; reaching one, a final answer below ``escalate.below_confidence``, or tool errors in
a row hand the step to the operator with the transcript. ``retry`` continues the
conversation with fresh limits; ``skip`` answers for the agent; ``abort`` fails the step.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiosrun.adapters.base import NeedsHuman
from aiosrun.adapters.llm import ModelSpec
from aiosrun.adapters.llm_tools import ChatRequest
from aiosrun.dsl import ir
from aiosrun.dsl.diagnostics import schema_message
from aiosrun.dsl.render import render
from aiosrun.dsl.values import truthy
from aiosrun.runtime.coordinator.agent_tools import answer_text, call_tool, toolset
from aiosrun.runtime.coordinator.frames import step_template, text_of
from aiosrun.runtime.coordinator.llm_step import check_budget
from aiosrun.runtime.coordinator.models import default_alias, model_spec
from jsonschema import Draft202012Validator

if TYPE_CHECKING:
    from aiosrun.runtime.coordinator.frames import Frame
    from aiosrun.runtime.coordinator.runner_base import RunnerBase as Runner


class AgentEscalation(NeedsHuman):
    """The agent needs the operator; ``details`` is what the inbox shows."""

    def __init__(self, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.details = details


class _Loop:
    def __init__(self, runner: Runner, step: ir.Step, body: ir.Agent, frame: Frame,
                 path: str, attempt: int) -> None:
        self.runner, self.step, self.agent = runner, step, body.agent
        self.path, self.attempt = path, attempt
        contexts = runner.contexts(frame)
        self.contexts = contexts
        task = text_of(render(body.task, contexts))
        if body.context is not None:
            task += "\n\nContext:\n" + text_of(render(body.context, contexts))
        system = self.agent.instructions
        if self.agent.output_schema is not None:
            system += ("\n\nWhen you are done, answer with only a JSON object (no other text) "
                       "that fits this JSON Schema:\n"
                       + json.dumps(ir.thaw(self.agent.output_schema), sort_keys=True))
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": system},
                                               {"role": "user", "content": task}]
        self.tools = toolset(runner, self.agent)
        self.offered = tuple(t.offer() for t in self.tools.values())
        self.tiers = self.agent.tiers or (ir.Tier(default_alias(runner.ws.settings.data)),)
        self.tier = 0
        self.turn = 0
        self.errors_in_row = 0
        self.transcript: list[dict[str, Any]] = []

    def recorded(self) -> dict[int, dict[str, Any]]:
        state = self.runner.state.steps.get(self.path)
        return {int(c["turn"]): c for c in (state.calls if state else [])
                if c.get("turn") is not None and not c.get("error")}

    def used(self) -> tuple[int, int, float]:
        """Turns, tool calls and money of this attempt (``retry`` starts the count again)."""
        state = self.runner.state.steps.get(self.path)
        calls = [c for c in (state.calls if state else [])
                 if c.get("turn") is not None and c.get("attempt") == self.attempt]
        tool_calls = sum(len((c.get("output") or {}).get("tool_calls") or ()) for c in calls)
        return len(calls), tool_calls, sum(float(c.get("cost_usd") or 0) for c in calls)

    async def run(self) -> Any:
        while True:
            self.turn += 1
            answer = self.recorded().get(self.turn)
            if answer is None:
                answer = await self.ask()
            self.tier = int(answer.get("tier") or 1) - 1
            message = answer.get("output") or {}
            calls = list(message.get("tool_calls") or ())
            self.messages.append(_assistant(message))
            self.transcript.append({"turn": self.turn, "model": answer.get("alias"),
                                    "said": message.get("content"),
                                    "tool_calls": [{"name": c["name"],
                                                    "arguments": c["arguments"]}
                                                   for c in calls]})
            current = answer.get("attempt") == self.attempt
            if calls:
                await self.run_tools(calls, current)
                continue
            output, problem = self.final(message.get("content"))
            if problem is not None:
                self.messages.append({"role": "user", "content": problem})
                self.transcript.append({"turn": self.turn, "refused_answer": problem})
                continue
            if not current:  # the operator saw this answer and asked for another go
                self.messages.append({"role": "user", "content": (
                    "The operator did not take that answer and asks you to try again.")})
                continue
            tier = self.tiers[min(self.tier, len(self.tiers) - 1)]
            if self.tier + 1 < len(self.tiers) and not self.accepts(tier, output):
                self.tier += 1
                self.messages.append({"role": "user", "content": (
                    "That answer was not accepted. Check your work again and give the "
                    "final answer.")})
                continue
            floor = self.agent.below_confidence
            confidence = output.get("confidence") if isinstance(output, dict) else None
            if floor is not None and isinstance(confidence, (int, float)) \
                    and confidence < floor:
                self.escalate(f"the agent's confidence {confidence} is below {floor}",
                              output)
            return output

    async def ask(self) -> dict[str, Any]:
        """Check the limits, then one model call, recorded with its answer."""
        turns, tool_calls, spent = self.used()
        agent = self.agent
        if turns >= agent.max_turns:
            self.escalate(f"the agent reached its limit of {agent.max_turns} turns "
                          "(limits.max_turns)")
        if tool_calls >= agent.max_tool_calls:
            self.escalate(f"the agent reached its limit of {agent.max_tool_calls} tool calls "
                          "(limits.max_tool_calls)")
        tier = self.tiers[min(self.tier, len(self.tiers) - 1)]
        spec = model_spec(self.runner.ws, tier.model)
        request = ChatRequest(
            model=spec.model, messages=tuple(self.messages), tools=self.offered,
            max_tokens=tier.max_tokens or agent.max_tokens or spec.max_tokens,
            temperature=agent.temperature, turn=self.turn)
        worst = request.worst_case_cost(spec)
        if agent.budget_usd is not None and spent + worst > agent.budget_usd:
            self.escalate(f"the next turn could cost up to ${worst:.4f}; the agent has spent "
                          f"${spent:.4f} of its ${agent.budget_usd:.4f} (limits.budget_usd)")
        check_budget(self.runner, spec, request)  # the run's and the workspace's budgets
        return self.call(spec, request, await self.runner.models.call(
            spec, request, f"{self.runner.playbook.name}/{step_template(self.path)}"))

    def call(self, spec: ModelSpec, request: ChatRequest, answer: Any) -> dict[str, Any]:
        cost = spec.price.cost(answer.usage)
        self.runner.record(
            "ModelCalled", path=self.path, attempt=self.attempt, tier=self.tier + 1,
            turn=self.turn, alias=spec.alias, provider=spec.provider, model=spec.model,
            input_tokens=answer.usage.input_tokens, output_tokens=answer.usage.output_tokens,
            cost_usd=cost, latency_ms=answer.latency_ms, cached=False, accepted=True,
            key=request.key(), output=answer.output)
        return self.recorded()[self.turn]

    async def run_tools(self, calls: list[dict[str, Any]], current: bool) -> None:
        prefix = f"{self.path}/turn-{self.turn}/"
        seen: dict[str, int] = {}
        failed = 0
        for call in calls:
            name = str(call.get("name"))
            base = _child_id(name)
            seen[base] = seen.get(base, 0) + 1
            child = base if seen[base] == 1 else f"{base}-{seen[base]}"
            result = await call_tool(self.runner, self.step, self.tools, prefix, child, name,
                                     str(call.get("arguments") or ""))
            failed += not result["ok"]
            self.messages.append({"role": "tool", "tool_call_id": str(call.get("id")),
                                  "content": answer_text(result)})
            self.transcript.append({"turn": self.turn, "tool": name, "step": prefix + child,
                                    **result})
        if not current:  # an earlier attempt's turn: its escalation is behind us
            return
        self.errors_in_row = self.errors_in_row + 1 if failed == len(calls) else 0
        if self.errors_in_row >= self.agent.max_tool_errors:
            self.escalate(f"the agent's tool calls failed {self.errors_in_row} turns in a row "
                          "(limits.max_tool_errors)")

    def final(self, content: Any) -> tuple[Any, str | None]:
        """The final answer checked against ``output``, or what to tell the model."""
        schema = self.agent.output_schema
        if schema is None:
            return {"text": content or ""}, None
        text = str(content or "").strip()
        if text.startswith("```"):
            text = text.strip("`").removeprefix("json").strip()
        try:
            output = json.loads(text)
        except ValueError:
            return None, "Your final answer must be only a JSON object fitting the schema."
        problem = next(iter(Draft202012Validator(ir.thaw(schema)).iter_errors(output)), None)
        if problem is not None:
            where = "/".join(str(p) for p in problem.absolute_path) or "answer"
            return None, (f"Your final answer does not fit the schema: {where}: "
                          f"{schema_message(problem)}. Answer again.")
        return output, None

    def accepts(self, tier: ir.Tier, output: Any) -> bool:
        if tier.accept is None:
            return True
        return truthy(render(tier.accept, {**self.contexts, "output": output}))

    def escalate(self, reason: str, answer: Any = None) -> None:
        details = {"agent": self.agent.name, "reason": reason,
                   "transcript": self.transcript[-40:]}
        if answer is not None:
            details["answer"] = answer
        raise AgentEscalation(f"agent '{self.agent.name}': {reason}", details)


async def run_agent(runner: Runner, step: ir.Step, body: ir.Agent, frame: Frame, path: str,
                    attempt: int) -> Any:
    return await _Loop(runner, step, body, frame, path, attempt).run()


def _assistant(message: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    calls = message.get("tool_calls") or ()
    if calls:
        out["tool_calls"] = [{"id": c["id"], "type": "function",
                              "function": {"name": c["name"], "arguments": c["arguments"]}}
                             for c in calls]
    return out


def _child_id(name: str) -> str:
    """A tool name as a step id (which starts with a letter or '_')."""
    safe = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in name)[:60] or "_"
    return safe if safe[0].isalpha() or safe[0] == "_" else f"_{safe}"
