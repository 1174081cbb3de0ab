"""``llm:`` steps: model tiers with ``accept``, the cache, cassettes, cost and budgets.

Each tier is one model call, recorded as ``ModelCalled`` (tier, model, tokens, cost, latency,
cached, accepted) before the next decision, with its answer: a run resumed after a crash
reuses the calls its interrupted attempt already paid for instead of paying twice. Budgets
are checked before a call against its worst case, never after the money is spent.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from aiosrun.adapters.base import PermanentError
from aiosrun.adapters.llm import (
    BudgetExceeded,
    InvalidAnswer,
    ModelAnswer,
    ModelRequest,
    ModelSpec,
    worst_case_cost,
)
from aiosrun.adapters.llm_tools import ChatRequest
from aiosrun.dsl import ir
from aiosrun.dsl.render import render
from aiosrun.dsl.values import truthy
from aiosrun.runtime.coordinator.frames import step_template
from aiosrun.runtime.coordinator.models import Models, model_spec, tiers_of

if TYPE_CHECKING:
    from aiosrun.runtime.coordinator.frames import Frame
    from aiosrun.runtime.coordinator.runner_base import RunnerBase as Runner


async def run_llm(runner: Runner, body: ir.Llm, frame: Frame, path: str, attempt: int) -> Any:
    """Try the tiers in order; the first accepted answer (or the last tier's) is the output."""
    contexts = runner.contexts(frame)
    prompt = _text(render(body.prompt, contexts))
    messages: list[tuple[str, str]] = []
    if body.system is not None:
        messages.append(("system", _text(render(body.system, contexts))))
    messages.append(("user", prompt))
    schema = ir.thaw(body.output_schema) if body.output_schema is not None else None
    models = runner.models
    tiers = tiers_of(body, runner.ws.settings.data)
    step_state = runner.state.steps.get(path)  # none for a compensation's model call
    earlier = {(c["attempt"], c["tier"]): c for c in (step_state.calls if step_state else [])}
    output: Any = None
    for number, tier in enumerate(tiers, 1):
        spec = _spec(runner, tier.model, path)
        request = ModelRequest(
            model=spec.model, messages=tuple(messages), schema=schema,
            max_tokens=tier.max_tokens or body.max_tokens or spec.max_tokens,
            temperature=body.temperature, validation_retries=body.validation_retries)
        last = number == len(tiers)
        done = earlier.get((attempt, number))
        if done is not None and not done.get("error"):
            output = done["output"]  # paid for before a crash: not asked again
            if last or done.get("accepted"):
                return output
            continue
        output, accepted = await _one_call(runner, models, spec, request, body, tier, contexts,
                                           path, attempt, number, last)
        if accepted:
            return output
    return output


async def _one_call(runner: Runner, models: Models, spec: ModelSpec, request: ModelRequest,
                    body: ir.Llm, tier: ir.Tier, contexts: dict[str, Any], path: str,
                    attempt: int, number: int, last: bool) -> tuple[Any, bool]:
    key = request.key()
    # recording fills cassettes, so it asks the model even when the cache knows the answer
    cached = models.cache.get(key) if body.cache and not runner.ws.record_models else None
    answer: ModelAnswer | None = cached
    error: Exception | None = None
    if answer is None:
        check_budget(runner, spec, request)
        try:
            answer = await models.call(spec, request,
                                       f"{runner.playbook.name}/{step_template(path)}")
        except InvalidAnswer as exc:
            error, answer = exc, ModelAnswer(None, exc.usage, exc.latency_ms)
    cost = 0.0 if cached is not None else spec.price.cost(answer.usage)
    accepted = error is None and (last or _accepts(tier, answer.output, contexts))
    runner.record("ModelCalled", path=path, attempt=attempt, tier=number, alias=spec.alias,
                  provider=spec.provider, model=spec.model,
                  input_tokens=answer.usage.input_tokens,
                  output_tokens=answer.usage.output_tokens, cost_usd=cost,
                  latency_ms=answer.latency_ms, cached=cached is not None, accepted=accepted,
                  key=key, output=answer.output,
                  **({"error": str(error)} if error is not None else {}))
    if error is not None:
        raise error
    if body.cache and cached is None:
        models.cache.put(key, runner.ws.masker.data(answer.output))
    return answer.output, accepted


def _spec(runner: Runner, alias: str, path: str) -> ModelSpec:
    """The alias's settings; in a playbook test whose case answers this step, an alias the
    copied workspace does not declare stands in (nothing is asked of any model)."""
    try:
        return model_spec(runner.ws, alias)
    except PermanentError:
        doubles = runner.ws.doubles
        if doubles is None or doubles.answer(path.rsplit("/", 1)[-1]) is None:
            raise
        return ModelSpec(alias=alias, provider="test", model=alias)


def _accepts(tier: ir.Tier, output: Any, contexts: dict[str, Any]) -> bool:
    if tier.accept is None:
        return True
    return truthy(render(tier.accept, {**contexts, "output": output}))


def check_budget(runner: Runner, spec: ModelSpec,
                 request: ModelRequest | ChatRequest) -> None:
    """Refuse a call whose worst case could take the run or the workspace over budget."""
    worst = request.worst_case_cost(spec) if isinstance(request, ChatRequest) \
        else worst_case_cost(spec, request)
    if worst <= 0:
        return
    where = f"model '{spec.alias}': this call could cost up to ${worst:.4f}"
    limit = runner.playbook.policy.budget_usd
    spent = runner.state.cost_usd
    if limit is not None and spent + worst > limit:
        raise BudgetExceeded(f"{where}; the run has spent ${spent:.4f} of its "
                             f"${limit:.4f} budget (policy.budget_usd)")
    budget = (runner.ws.settings.data.get("policy") or {}).get("budget") or {}
    if not budget:
        return
    spend = runner.ws.workspace_state().spend
    today = dt.datetime.now(dt.UTC)
    for name, period in (("daily_usd", f"{today:%Y-%m-%d}"), ("monthly_usd", f"{today:%Y-%m}")):
        cap = budget.get(name)
        if cap is None:
            continue
        used = sum(v for day, v in spend.items() if day.startswith(period))
        if used + worst > cap:
            raise BudgetExceeded(f"{where}; the workspace has spent ${used:.4f} of its "
                                 f"${float(cap):.4f} {name.removesuffix('_usd')} budget "
                                 "(aios.yaml policy.budget)")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    import json

    return json.dumps(value, ensure_ascii=False)
