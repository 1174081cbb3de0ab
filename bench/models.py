"""Model steps, as numbers (no asserts), against a local OpenAI-compatible endpoint:

- per-step overhead of an ``llm:`` step: its time minus a bare openai call to the same server;
- cache-hit latency of a ``cache: true`` step;
- a cascade simulation: a cheap tier whose answers are accepted at a given rate, an expensive
  tier for the rest; prints the cost, the acceptance and the saving against the expensive
  model alone.

    python bench/models.py [--steps 50] [--items 200] [--accept-rate 0.7]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiosrun.dsl.ir_codec import encode
from aiosrun.dsl.loader import load_text
from aiosrun.dsl.validate import validate_document
from aiosrun.runtime.coordinator.interpreter import Runner
from aiosrun.runtime.coordinator.runs import start_or_load
from aiosrun.runtime.log.eventlog import NewEvent
from aiosrun.runtime.workspace import Workspace

from tests.support.fake_openai import FakeOpenAI, Reply

SMALL_PRICE = (0.15, 0.60)  # USD per million tokens, input / output
LARGE_PRICE = (2.50, 10.00)


def workspace(root: Path, base_url: str) -> Workspace:
    (root / "aios.yaml").write_text(f"""apiVersion: aiosrun/v1
kind: Workspace
models:
  small: {{provider: openai, model: small-1, base_url: "{base_url}", api_key: k,
          price: {{input: {SMALL_PRICE[0]}, output: {SMALL_PRICE[1]}}}, max_tokens: 300}}
  large: {{provider: openai, model: large-1, base_url: "{base_url}", api_key: k,
          price: {{input: {LARGE_PRICE[0]}, output: {LARGE_PRICE[1]}}}, max_tokens: 300}}
""")
    return Workspace(root)


def run(ws: Workspace, name: str, body: str, inputs: dict[str, Any] | None = None) -> Any:
    text = f"apiVersion: aiosrun/v1\nkind: Playbook\nname: {name}\n{body}"
    playbook = validate_document(load_text(text, name))
    ws.log.append(NewEvent("PlaybookApplied", {"name": name, "digest": playbook.digest,
                                               "source": name, "ir": encode(playbook)}))
    playbook, state = start_or_load(ws, name, inputs or {})
    return trio.run(Runner(ws, playbook, state).execute)


def answer(request: dict[str, Any], accept_rate: float) -> Reply:
    """Cheap-tier confidence is a hash of the prompt, so the rate holds across runs."""
    prompt = request["messages"][-1]["content"]
    if request["model"] == "small-1":
        digest = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        confidence = 0.9 if digest < accept_rate else 0.3
        return Reply({"title": "draft", "confidence": confidence}, 400, 120)
    if request.get("tools") or request.get("response_format"):
        return Reply({"title": "final", "confidence": 0.99}, 400, 150)
    return Reply("a plain answer", 50, 10)


def overhead(api: FakeOpenAI, steps: int) -> None:
    import openai

    async def bare() -> float:
        client = openai.AsyncOpenAI(base_url=api.base_url, api_key="k", max_retries=0)
        timings = []
        for i in range(steps):
            started = time.perf_counter()
            await client.chat.completions.create(
                model="plain", messages=[{"role": "user", "content": f"hi {i}"}], max_tokens=5)
            timings.append(time.perf_counter() - started)
        await client.close()
        return statistics.median(timings)

    raw = trio.run(bare)
    body = "steps:\n" + "".join(
        f"  - id: s{i}\n    llm: {{model: small, prompt: 'hello {i}'}}\n" for i in range(steps))
    with tempfile.TemporaryDirectory() as tmp, workspace(Path(tmp), api.base_url) as ws:
        started = time.perf_counter()
        final = run(ws, "plain", body)
        per_step = (time.perf_counter() - started) / steps
        assert final.status == "succeeded", final.error
    print(f"bare openai call to the local endpoint:   {raw * 1000:>8.2f} ms (median)")
    print(f"llm: step (plain text), whole step:       {per_step * 1000:>8.2f} ms")
    print(f"  aiosrun's overhead per step:            {(per_step - raw) * 1000:>8.2f} ms "
          "(recording, state, instructor)")


def cache_hits(api: FakeOpenAI, steps: int) -> None:
    body = "steps:\n" + "".join(
        f"  - id: s{i}\n    llm: {{model: small, prompt: 'cached {i}', cache: true,\n"
        "           output: {type: object}}\n" for i in range(steps))
    with tempfile.TemporaryDirectory() as tmp, workspace(Path(tmp), api.base_url) as ws:
        started = time.perf_counter()
        run(ws, "cached", body)
        cold = (time.perf_counter() - started) / steps
        asked = len(api.requests)
        started = time.perf_counter()
        final = run(ws, "cached", body)
        warm = (time.perf_counter() - started) / steps
        assert final.cost_usd == 0 and len(api.requests) == asked
    print(f"cache: true, first run (miss):            {cold * 1000:>8.2f} ms per step")
    print(f"cache: true, second run (hit):            {warm * 1000:>8.2f} ms per step")


def cascade(api: FakeOpenAI, items: int, accept_rate: float) -> None:
    body = """inputs:
  topics: {type: array}
steps:
  - id: drafts
    foreach:
      items: ${{ inputs.topics }}
      max_concurrency: 8
      steps:
        - id: post
          llm:
            prompt: Write a post about ${{ item }}
            output: {type: object, required: [title, confidence]}
            tiers:
              - model: small
                accept: ${{ output.confidence >= 0.8 }}
              - model: large
"""
    topics = [f"topic {i}" for i in range(items)]
    with tempfile.TemporaryDirectory() as tmp, workspace(Path(tmp), api.base_url) as ws:
        started = time.perf_counter()
        final = run(ws, "cascade", body, {"topics": topics})
        elapsed = time.perf_counter() - started
        calls = [r.data for r in ws.log.read_run(final.id) if r.type == "ModelCalled"]
    first = [c for c in calls if c["tier"] == 1]
    accepted = sum(c["accepted"] for c in first)
    large_only = items * (400 * LARGE_PRICE[0] + 150 * LARGE_PRICE[1]) / 1e6
    print(f"cascade of {items} drafts, target accept rate {accept_rate:.0%}:")
    print(f"  accepted at the small tier:             {accepted / items:>8.1%}")
    print(f"  cost with tiers:                        ${final.cost_usd:>9.5f}")
    print(f"  cost with the large model alone:        ${large_only:>9.5f}")
    print(f"  saving:                                 {1 - final.cost_usd / large_only:>8.1%}")
    print(f"  wall time (8 concurrent):               {elapsed:>8.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--accept-rate", type=float, default=0.7)
    args = parser.parse_args()
    with FakeOpenAI(lambda request: answer(request, args.accept_rate)) as api:
        overhead(api, args.steps)
        cache_hits(api, args.steps)
        cascade(api, args.items, args.accept_rate)


if __name__ == "__main__":
    main()
