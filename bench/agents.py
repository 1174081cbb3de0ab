"""The agent loop's overhead, as numbers (no asserts), against a local OpenAI-compatible
endpoint, beside a bare openai tool-calling loop to the same server in the same process:

- per agent turn: what an ``agent:`` step costs beyond the model call (building the request,
  recording the answer, rebuilding the conversation, checking limits and budgets);
- per tool call: what a recorded child step costs beyond calling the tool (its records, the
  argument check, the adapter call, the fsync policy of the log).

Two runs of T turns, with 1 and with K tool calls per turn; the difference gives the cost
per tool call and the rest the cost per turn.

    python bench/agents.py [--turns 20] [--tools 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiosrun.runtime import Engine

from tests.support.fake_openai import FakeOpenAI, Reply

ECHO = {"type": "function", "function": {"name": "debug__echo", "description": "Echo.",
                                         "parameters": {"type": "object"}}}


def script(turns: int, per_turn: int) -> Any:
    def answer(request: dict[str, Any]) -> Reply:
        turn = 1 + sum(m["role"] == "assistant" for m in request["messages"])
        if turn > turns:
            return Reply("done", text=True, prompt_tokens=100, completion_tokens=5)
        return Reply(tool_calls=[("debug__echo", {"value": f"{turn}-{i}"})
                                 for i in range(per_turn)],
                     prompt_tokens=100, completion_tokens=20)
    return answer


async def bare_loop(base_url: str, turns: int) -> float:
    """The same conversation with openai alone; a tool call is a Python function call."""
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key="k", max_retries=0)
    for _ in range(3):  # the first answers with tool calls load openai's lazy models
        await client.chat.completions.create(model="warm", tools=[ECHO], messages=[
            {"role": "user", "content": "hi"}])
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You echo."},
                                      {"role": "user", "content": "Echo things."}]
    started = time.perf_counter()
    for _ in range(turns + 1):
        completion = await client.chat.completions.create(
            model="m", messages=messages, tools=[ECHO], max_tokens=100)
        message = completion.choices[0].message
        calls = message.tool_calls or []
        messages.append({"role": "assistant", "content": message.content, "tool_calls": [
            {"id": c.id, "type": "function", "function": {
                "name": c.function.name, "arguments": c.function.arguments}} for c in calls]})
        if not calls:
            break
        for call in calls:
            result = {"ok": True, "result": json.loads(call.function.arguments)}
            messages.append({"role": "tool", "tool_call_id": call.id,
                             "content": json.dumps(result)})
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed


def agent_loop(base_url: str, turns: int, per_turn: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "playbooks").mkdir()
        (root / "aios.yaml").write_text(
            "apiVersion: aiosrun/v1\nkind: Workspace\nname: bench\nmodels:\n"
            f"  small: {{provider: openai, model: m, base_url: '{base_url}', max_tokens: 100}}\n")
        (root / "playbooks" / "echo.yaml").write_text(f"""\
apiVersion: aiosrun/v1
kind: Playbook
name: echo
steps:
  - id: warm
    llm: {{model: small, prompt: hi}}
  - id: loop
    agent:
      instructions: You echo.
      model: small
      tools: [{{uses: debug.echo}}]
      limits: {{max_turns: {turns + 2}, max_tool_calls: {turns * per_turn + 1}}}
    with: {{task: Echo things.}}
""")

        async def main() -> float:
            async with Engine.open(root) as engine:
                await engine.apply()
                run = await engine.start("echo")
                assert run.status == "succeeded", run.error
                timeline = list(engine.ws.log.read_run(run.id))
                first = next(r for r in timeline if r.type == "StepStarted"
                             and r.data["path"] == "loop")
                last = next(r for r in timeline if r.type == "StepSucceeded"
                            and r.data["path"] == "loop")
                return _between(first.ts, last.ts)

        return trio.run(main)


def _between(start: str, end: str) -> float:
    from aiosrun.runtime import clock

    return (clock.parse(end) - clock.parse(start)).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--tools", type=int, default=5)
    args = parser.parse_args()
    turns, many = args.turns, args.tools
    results: dict[int, tuple[float, float]] = {}
    for per_turn in (1, many):
        bare = agent = float("inf")
        for _ in range(3):  # the best of three: the machine may be busy with something else
            with FakeOpenAI(script(turns, per_turn)) as api:
                bare = min(bare, trio.run(bare_loop, api.base_url, turns))
            with FakeOpenAI(script(turns, per_turn)) as api:
                agent = min(agent, agent_loop(api.base_url, turns, per_turn))
        results[per_turn] = (bare, agent)
        print(f"{turns} turns x {per_turn} tool call(s): bare openai loop {bare * 1000:8.1f} ms,"
              f" agent: step {agent * 1000:8.1f} ms")
    over_one = results[1][1] - results[1][0]
    over_many = results[many][1] - results[many][0]
    per_call = (over_many - over_one) / (turns * (many - 1))
    per_turn = over_one / turns - per_call
    print(f"overhead per tool call (a recorded child step): {per_call * 1000:7.2f} ms")
    print(f"overhead per agent turn (beyond the model call): {per_turn * 1000:7.2f} ms")
    print(f"bare model call, median of the loop:             "
          f"{results[1][0] / (turns + 1) * 1000:7.2f} ms")


if __name__ == "__main__":
    main()
