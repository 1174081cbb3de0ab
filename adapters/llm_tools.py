"""Model calls with tools, for agents: the OpenAI chat-completions tool-calling protocol.

An agent's turn is one request carrying the whole conversation (system, user, assistant turns
with their tool calls, and the tools' answers) and the tools it may call; the answer is an
assistant message: text, tool calls, or both. Answers travel as plain JSON
(``{"content", "tool_calls": [{"id", "name", "arguments"}]}``) so they can be recorded in the
event log and in cassettes, and a resumed loop rebuilds the conversation from them.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .llm import ModelAnswer, ModelSpec, Usage, api_error, estimate_tokens, worst_case_usage


@dataclass(frozen=True)
class ChatRequest:
    """One agent turn: the conversation so far and the tools on offer."""

    model: str
    messages: tuple[Mapping[str, Any], ...]
    tools: tuple[Mapping[str, Any], ...]
    max_tokens: int
    temperature: float | None = None
    turn: int = 0  # which turn of the loop (hand-written cassette entries may match on it)
    schema: Mapping[str, Any] | None = None  # unused: answers are checked by the loop

    def key(self) -> str:
        canonical = json.dumps(
            {"model": self.model, "messages": list(self.messages), "tools": list(self.tools),
             "max_tokens": self.max_tokens, "temperature": self.temperature},
            sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def worst_case_cost(self, spec: ModelSpec) -> float:
        prompt = estimate_tokens(json.dumps([list(self.messages), list(self.tools)],
                                            default=_plain))
        return spec.price.cost(worst_case_usage(prompt, self.max_tokens, 1))


async def call_chat(spec: ModelSpec, request: ChatRequest, client: Any) -> ModelAnswer:
    """One turn through openai; errors in the same classes as :func:`call_openai`."""
    import openai

    params: dict[str, Any] = {"model": spec.model, "messages": _plain(request.messages),
                              "max_tokens": request.max_tokens}
    if request.tools:
        params["tools"] = _plain(request.tools)
    if request.temperature is not None:
        params["temperature"] = request.temperature
    started = time.perf_counter()
    try:
        completion = await client.chat.completions.create(**params)
    except openai.OpenAIError as exc:
        raise api_error(spec.alias, exc) from None
    message = completion.choices[0].message
    calls = [{"id": call.id, "name": call.function.name, "arguments": call.function.arguments}
             for call in message.tool_calls or () if getattr(call, "function", None)]
    usage = completion.usage
    return ModelAnswer(
        {"content": message.content, "tool_calls": calls},
        Usage(int(getattr(usage, "prompt_tokens", 0) or 0),
              int(getattr(usage, "completion_tokens", 0) or 0)),
        round((time.perf_counter() - started) * 1000, 3))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
