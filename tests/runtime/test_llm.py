"""``llm:`` steps against a local server speaking the OpenAI chat-completions protocol.

openai, instructor and httpx run for real; only the paid endpoint is local. Token counts are
set by the server, so costs are known exactly: price * tokens / 1e6.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from aiosrun.runtime.coordinator.interpreter import Runner
from aiosrun.runtime.coordinator.runs import start_or_load
from aiosrun.runtime.log.projections import RunState
from aiosrun.runtime.workspace import Workspace

from tests.support.fake_openai import FakeOpenAI, Reply

from .conftest import Harness

WELCOME = """
inputs:
  name: {type: string}
policy: {budget_usd: 1}
steps:
  - id: welcome
    llm:
      prompt: Write a welcome for ${{ inputs.name }}
      output:
        type: object
        required: [subject, confidence]
        properties:
          subject: {type: string}
          confidence: {type: number}
      tiers:
        - model: small
          accept: ${{ output.confidence >= 0.8 }}
        - model: large
      cache: CACHE
"""

SMALL = (1.0, 2.0)  # USD per million input / output tokens
LARGE = (10.0, 30.0)


class LiveHarness(Harness):
    """A workspace whose models point at the fake endpoint, run on trio's real clock (a
    mock clock would jump over the time a request spends on the wire)."""

    def __init__(self, root: Path, base_url: str, extra: str = "") -> None:
        self.root = root
        (root / "aios.yaml").write_text(f"""apiVersion: aiosrun/v1
kind: Workspace
models:
  small:
    provider: openai
    model: cheap-1
    base_url: {base_url}
    api_key: ${{{{ secrets.LLM_KEY }}}}
    price: {{input: {SMALL[0]}, output: {SMALL[1]}}}
    max_tokens: 100
  large:
    provider: openai
    model: big-1
    base_url: {base_url}
    api_key: ${{{{ secrets.LLM_KEY }}}}
    price: {{input: {LARGE[0]}, output: {LARGE[1]}}}
    max_tokens: 100
  json:
    provider: openai
    model: json-1
    mode: json
    base_url: {base_url}
    api_key: ${{{{ secrets.LLM_KEY }}}}
  replayed:
    provider: replay
    model: cheap-1
    base_url: {base_url}
    api_key: ${{{{ secrets.LLM_KEY }}}}
{extra}""")
        (root / ".env").write_text("LLM_KEY=sk-local-test-key\n")
        self.ws = Workspace(root)
        self.times = []

    def execute(self, playbook: Any, state: RunState) -> RunState:
        result: RunState = trio.run(Runner(self.ws, playbook, state).execute)
        return result

    def calls(self, run: RunState) -> list[dict[str, Any]]:
        return [r.data for r in self.ws.log.read_run(run.id) if r.type == "ModelCalled"]


Answers = dict[str, list[Reply]]


@pytest.fixture
def endpoint() -> Iterator[tuple[FakeOpenAI, Answers]]:
    """The fake endpoint; tests queue replies per model name (the last one repeats)."""
    answers: Answers = {}

    def script(request: dict[str, Any]) -> Reply:
        queue = answers[request["model"]]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    with FakeOpenAI(script) as api:
        yield api, answers


@pytest.fixture
def live(tmp_path: Path, endpoint: tuple[FakeOpenAI, Answers]) -> Iterator[
        Callable[..., LiveHarness]]:
    made: list[LiveHarness] = []

    def make(extra: str = "") -> LiveHarness:
        made.append(LiveHarness(tmp_path, endpoint[0].base_url, extra))
        return made[-1]

    yield make
    for h in made:
        h.ws.close()


def cost(price: tuple[float, float], prompt: int, completion: int) -> float:
    return (prompt * price[0] + completion * price[1]) / 1_000_000


def test_tiers_escalate_until_accepted_and_cost_is_exact(live: Callable[..., LiveHarness],
                                                         endpoint: tuple[FakeOpenAI,
                                                                         Answers]) -> None:
    api, answers = endpoint
    answers["cheap-1"] = [Reply({"subject": "hey", "confidence": 0.4}, 300, 40)]
    answers["big-1"] = [Reply({"subject": "Welcome, Ada", "confidence": 0.97}, 310, 55)]
    h = live()
    run = h.run(WELCOME.replace("CACHE", "false"), {"name": "Ada"})
    assert run.status == "succeeded", run.error
    assert run.steps["welcome"].outputs == {"subject": "Welcome, Ada", "confidence": 0.97}
    calls = h.calls(run)
    assert [(c["tier"], c["alias"], c["model"], c["accepted"], c["cached"]) for c in calls] == [
        (1, "small", "cheap-1", False, False), (2, "large", "big-1", True, False)]
    assert [(c["input_tokens"], c["output_tokens"]) for c in calls] == [(300, 40), (310, 55)]
    expected = cost(SMALL, 300, 40) + cost(LARGE, 310, 55)
    assert run.cost_usd == pytest.approx(expected, abs=1e-12)
    assert all(c["latency_ms"] > 0 for c in calls)
    sent = [r["body"] for r in api.requests]
    assert [b["model"] for b in sent] == ["cheap-1", "big-1"]
    assert sent[0]["messages"][-1]["content"] == "Write a welcome for Ada"
    assert sent[0]["tools"][0]["function"]["parameters"]["required"] == ["confidence",
                                                                        "subject"]
    assert sent[0]["max_tokens"] == 100
    assert api.requests[0]["headers"]["authorization"] == "Bearer sk-local-test-key"
    log_text = "".join(p.read_text() for p in (h.root / ".aios").rglob("*") if p.is_file())
    assert "sk-local-test-key" not in log_text


def test_an_accepted_first_tier_stops_the_cascade(live: Callable[..., LiveHarness],
                                                  endpoint: tuple[FakeOpenAI, Answers]) -> None:
    api, answers = endpoint
    answers["cheap-1"] = [Reply({"subject": "Welcome!", "confidence": 0.9}, 200, 20)]
    answers["big-1"] = [Reply({"subject": "unused", "confidence": 1.0})]
    h = live()
    run = h.run(WELCOME.replace("CACHE", "false"), {"name": "Ada"})
    assert run.steps["welcome"].outputs["subject"] == "Welcome!"
    assert [r["body"]["model"] for r in api.requests] == ["cheap-1"]
    assert run.cost_usd == pytest.approx(cost(SMALL, 200, 20), abs=1e-12)


def test_the_cache_answers_identical_requests_for_free(live: Callable[..., LiveHarness],
                                                       endpoint: tuple[FakeOpenAI,
                                                                       Answers]) -> None:
    api, answers = endpoint
    answers["cheap-1"] = [Reply({"subject": "hey", "confidence": 0.4}, 300, 40)]
    answers["big-1"] = [Reply({"subject": "Welcome", "confidence": 0.97}, 310, 55)]
    h = live()
    first = h.run(WELCOME.replace("CACHE", "true"), {"name": "Ada"})
    assert len(api.requests) == 2 and first.cost_usd > 0
    second = h.run(WELCOME.replace("CACHE", "true"), {"name": "Ada"})
    assert len(api.requests) == 2  # nothing new was asked
    assert second.steps["welcome"].outputs == first.steps["welcome"].outputs
    assert second.cost_usd == 0
    assert [(c["cached"], c["cost_usd"]) for c in h.calls(second)] == [(True, 0.0), (True, 0.0)]
    third = h.run(WELCOME.replace("CACHE", "true"), {"name": "Grace"})  # another prompt
    assert len(api.requests) == 4 and third.cost_usd > 0


def test_validation_retries_are_paid_for_and_then_fail(live: Callable[..., LiveHarness],
                                                       endpoint: tuple[FakeOpenAI,
                                                                       Answers]) -> None:
    api, answers = endpoint
    answers["cheap-1"] = [Reply({"subject": "no confidence"}, 100, 10),
                          Reply({"subject": "fixed", "confidence": 0.9}, 150, 12)]
    h = live()
    run = h.run(WELCOME.replace("CACHE", "false"), {"name": "Ada"})
    assert run.steps["welcome"].outputs == {"subject": "fixed", "confidence": 0.9}
    retry = api.requests[1]["body"]["messages"]
    assert "'confidence' is a required property" in retry[-1]["content"]
    assert run.cost_usd == pytest.approx(cost(SMALL, 250, 22), abs=1e-12)

    answers["cheap-1"] = [Reply({"subject": 7}, 100, 10)]
    strict = WELCOME.replace("CACHE", "false").replace(
        "    llm:", "    llm:\n      validation_retries: 1")
    failed = h.run(strict, {"name": "Bob"})
    step = failed.steps["welcome"]
    assert step.status == "failed" and step.error is not None
    assert step.error["class"] == "validation"
    assert "after 2 attempts" in step.error["message"]
    assert "subject: 7 is not of type 'string'" in step.error["message"]
    assert failed.cost_usd == pytest.approx(cost(SMALL, 200, 20), abs=1e-12)


def test_budgets_refuse_a_call_before_it_is_made(live: Callable[..., LiveHarness],
                                                 endpoint: tuple[FakeOpenAI, Answers]) -> None:
    api, answers = endpoint
    answers["cheap-1"] = [Reply({"subject": "hey", "confidence": 0.4}, 300, 40)]
    answers["big-1"] = [Reply({"subject": "Welcome", "confidence": 0.97}, 310, 55)]
    h = live()
    # the small tier's worst case (3 attempts of 100 tokens at $2/M, plus the prompt) fits in
    # a cent; the large tier's (3 * 100 at $30/M and more) does not
    run = h.run(WELCOME.replace("CACHE", "false").replace("budget_usd: 1", "budget_usd: 0.01"),
                {"name": "Ada"})
    step = run.steps["welcome"]
    assert step.status == "failed" and step.error is not None
    assert step.error["class"] == "budget"
    assert "policy.budget_usd" in step.error["message"]
    assert [r["body"]["model"] for r in api.requests] == ["cheap-1"]  # large never asked
    assert run.status == "compensated"


def test_the_workspace_daily_budget_counts_every_run(tmp_path: Path, live: Callable[
        ..., LiveHarness], endpoint: tuple[FakeOpenAI, Answers]) -> None:
    api, answers = endpoint
    answers["cheap-1"] = [Reply({"subject": "ok", "confidence": 0.9}, 1000, 100)]
    h = live("policy:\n  budget: {daily_usd: 0.004}\n")
    first = h.run(WELCOME.replace("CACHE", "false"), {"name": "Ada"})
    assert first.status == "succeeded"  # worst case about $0.0007 of $0.004
    spent = first.cost_usd
    runs = [h.run(WELCOME.replace("CACHE", "false"), {"name": f"n{i}"}) for i in range(6)]
    refused = [r for r in runs if r.status != "succeeded"]
    assert refused, "the daily budget never refused a call"
    error = refused[0].steps["welcome"].error
    assert error is not None and error["class"] == "budget"
    assert "daily budget" in error["message"]
    total = spent + sum(r.cost_usd for r in runs)
    assert total <= 0.004
    assert len(api.requests) == 1 + sum(r.status == "succeeded" for r in runs)


def test_plain_text_and_json_mode(live: Callable[..., LiveHarness],
                                  endpoint: tuple[FakeOpenAI, Answers]) -> None:
    api, answers = endpoint
    answers["cheap-1"] = [Reply("Dear Ada, welcome aboard.", 20, 6)]
    answers["json-1"] = [Reply({"value": ["vip", "eu"]}, 20, 6)]  # arrays travel wrapped
    h = live()
    run = h.run("""
steps:
  - id: note
    llm: {model: small, system: Be brief., prompt: Greet Ada}
  - id: tags
    llm:
      model: json
      prompt: Tag ${{ steps.note.outputs.text }}
      output: {type: array, items: {type: string}}
""")
    assert run.status == "succeeded", run.error
    assert run.steps["note"].outputs == {"text": "Dear Ada, welcome aboard."}
    assert run.steps["tags"].outputs == ["vip", "eu"]
    plain, tagged = (r["body"] for r in api.requests)
    assert "tools" not in plain and "response_format" not in plain
    assert plain["messages"] == [{"role": "system", "content": "Be brief."},
                                 {"role": "user", "content": "Greet Ada"}]
    assert "tools" not in tagged
    assert "Tag Dear Ada, welcome aboard." in json.dumps(tagged["messages"])


def test_server_errors_go_through_the_step_retry_policy(live: Callable[..., LiveHarness],
                                                       endpoint: tuple[FakeOpenAI,
                                                                       Answers]) -> None:
    api, answers = endpoint
    answers["cheap-1"] = [Reply(status=503),
                          Reply(status=429, headers={"Retry-After": "0.3"}),
                          Reply({"text": "x"}, 10, 2)]
    h = live()
    run = h.run("""
steps:
  - id: draft
    retry: {max_attempts: 3, initial_delay: 10ms, jitter: none}
    llm: {model: small, prompt: hi}
""")
    assert run.status == "succeeded", run.error
    history = run.steps["draft"].history
    assert [x["error_class"] for x in history] == ["transient", "rate_limit"]
    assert history[1]["retry_in"] >= 0.3  # Retry-After honoured
    assert len(api.requests) == 3  # openai's own retries are off


def test_replay_answers_from_the_cassette_and_record_fills_it(
        live: Callable[..., LiveHarness], endpoint: tuple[FakeOpenAI, Answers]) -> None:
    api, answers = endpoint
    answers["cheap-1"] = [Reply({"subject": "recorded", "confidence": 0.9}, 50, 5)]
    body = WELCOME.replace("CACHE", "false").replace(
        "tiers:\n        - model: small\n          accept: ${{ output.confidence >= 0.8 }}\n"
        "        - model: large", "model: replayed")
    h = live()
    missing = h.run(body, {"name": "Ada"})
    error = missing.steps["welcome"].error
    assert error is not None and "no recorded answer" in error["message"]
    assert "cassettes/replayed.jsonl" in error["message"]
    assert api.requests == []  # replay never calls without --record

    h.ws.record_models = True
    recorded = h.run(body, {"name": "Ada"})
    secretive = h.run(body.replace("Write a welcome for", "Key ${{ secrets.LLM_KEY }} for"),
                      {"name": "Ada"})
    assert secretive.steps["welcome"].status == "succeeded"
    assert recorded.steps["welcome"].outputs["subject"] == "recorded"
    lines = (h.root / "cassettes" / "replayed.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["output"]["subject"] == "recorded"
    assert "Key *** for Ada" in lines[1]  # a secret in a prompt is masked in the cassette
    assert all("sk-local-test-key" not in line for line in lines)

    h.ws.record_models = False
    answers["cheap-1"] = [Reply(status=500)]  # the endpoint is not asked any more
    replayed = h.run(body, {"name": "Ada"})
    assert replayed.steps["welcome"].outputs == recorded.steps["welcome"].outputs
    assert len(api.requests) == 2


class Crash(BaseException):
    pass


def test_a_resumed_attempt_does_not_pay_twice_for_a_tier(tmp_path: Path, live: Callable[
        ..., LiveHarness], endpoint: tuple[FakeOpenAI, Answers]) -> None:
    api, answers = endpoint
    answers["cheap-1"] = [Reply({"subject": "hey", "confidence": 0.4}, 300, 40)]
    answers["big-1"] = [Reply({"subject": "Welcome", "confidence": 0.97}, 310, 55)]
    h = live()
    h.add(WELCOME.replace("CACHE", "false"))
    playbook, state = start_or_load(h.ws, "t", {"name": "Ada"})

    def crash_after_first_call(record: Any, _state: RunState) -> None:
        if record.type == "ModelCalled":
            raise Crash

    with pytest.raises(Crash):
        trio.run(Runner(h.ws, playbook, state, crash_after_first_call).execute)
    assert [r["body"]["model"] for r in api.requests] == ["cheap-1"]
    again = h.ws.run_state(state.id)
    final = h.execute(playbook, again)
    assert final.status == "succeeded"
    assert [r["body"]["model"] for r in api.requests] == ["cheap-1", "big-1"]
    assert final.cost_usd == pytest.approx(cost(SMALL, 300, 40) + cost(LARGE, 310, 55),
                                           abs=1e-12)


def test_an_llm_compensation_is_a_recorded_model_call(live: Callable[..., LiveHarness],
                                                      endpoint: tuple[FakeOpenAI,
                                                                      Answers]) -> None:
    api, answers = endpoint
    answers["cheap-1"] = [Reply("Sorry, your order was cancelled.", 30, 8)]
    h = live()
    run = h.run("""
steps:
  - id: order
    uses: debug.echo
    with: {value: 42}
    compensate:
      llm: {model: small, prompt: "Apologize for order ${{ steps.order.outputs.value }}"}
  - id: boom
    uses: debug.fail
    with: {times: 1, error: permanent}
""")
    assert run.status == "compensated"
    assert api.requests[0]["body"]["messages"][-1]["content"] == "Apologize for order 42"
    [call] = h.calls(run)
    assert call["path"] == "order#compensate" and call["output"] == {
        "text": "Sorry, your order was cancelled."}
    assert run.cost_usd == pytest.approx(cost(SMALL, 30, 8), abs=1e-12)


def test_a_failed_model_call_reads_as_aiosrun_and_keeps_its_duration(
        live: Callable[..., LiveHarness], endpoint: tuple[FakeOpenAI, Answers]) -> None:
    api, answers = endpoint
    answers["json-1"] = [Reply("this is not JSON at all", 20, 6)]
    h = live()
    run = h.run("""
steps:
  - id: tags
    llm:
      model: json
      prompt: Tag Ada
      validation_retries: 1
      output: {type: object, required: [tags], properties: {tags: {type: array}}}
""")
    step = run.steps["tags"]
    assert step.status == "failed" and step.error is not None
    assert step.error["message"] == (
        "model 'json': no answer fitting the output schema after 2 attempts: the answer is "
        "not JSON (expected ident at line 1 column 2)")
    (call,) = [r.data for r in h.ws.log.read() if r.type == "ModelCalled"]
    assert call["latency_ms"] > 0 and len(api.requests) == 2
