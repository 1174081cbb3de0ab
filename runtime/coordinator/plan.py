"""What one run of a playbook would do, before it runs: steps, gates, model tiers and the
worst-case model cost (``aiosrun plan``).

Prompts are only known at run time, so a prompt is estimated from its template: the literal
text as it stands and each ``${{ }}`` counted as :data:`INTERPOLATION_TOKENS` tokens. Every
tier is assumed to be called (no answer accepted early), each with all its validation
retries and answers at ``max_tokens``: the same worst case the budget check uses at run time.
A step inside ``foreach`` runs once per item, which the plan cannot know: such steps are
priced per item and left out of the total, which says so.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

from aiosrun.adapters.base import PermanentError
from aiosrun.adapters.llm import estimate_tokens, worst_case_usage
from aiosrun.dsl import ir
from aiosrun.runtime.coordinator.models import model_settings, spec_from, tiers_of

INTERPOLATION_TOKENS = 500


def plan_of(playbook: ir.Playbook, settings: dict[str, Any], root: Path) -> dict[str, Any]:
    approval = tuple((settings.get("policy") or {}).get("require_approval") or ()) \
        + playbook.policy.require_approval
    steps: list[dict[str, Any]] = []
    gates: list[dict[str, Any]] = []
    models: list[dict[str, Any]] = []
    total = 0.0
    per_item = 0.0

    def visit(step: ir.Step, depth: int, in_foreach: bool) -> None:
        nonlocal total, per_item
        body = step.body
        row: dict[str, Any] = {"id": step.id, "path": step.path, "depth": depth,
                               "kind": _kind(body)}
        if isinstance(body, ir.Uses):
            row["action"] = body.action
            matched = next((p for p in approval if fnmatch.fnmatchcase(body.action, p)), None)
            if matched is not None:
                gates.append({"gate": f"{step.path}#approval", "kind": "policy",
                              "message": f"Approve {body.action}?", "pattern": matched})
        elif isinstance(body, ir.Gate):
            gates.append({"gate": step.path, "kind": "gate", "message": _template(body.message),
                          "timeout_ms": body.timeout_ms, "on_timeout": body.on_timeout})
        elif isinstance(body, ir.Llm):
            tiers = []
            for number, tier in enumerate(tiers_of(body, settings), 1):
                priced = _price_tier(body, tier, settings, root)
                priced.update(step=step.path, tier=number, per_item=in_foreach)
                tiers.append(priced)
                models.append(priced)
                if in_foreach:
                    per_item += priced["worst_case_usd"]
                else:
                    total += priced["worst_case_usd"]
            row["tiers"] = [t["alias"] for t in tiers]
            row["cache"] = body.cache
        elif isinstance(body, ir.Agent):
            row["agent"] = body.agent.name
            row["tools"] = [f"{t.kind}:{t.target}" for t in body.agent.tools]
            row["budget_usd"] = body.agent.budget_usd
            # the loop checks its budget against each call's worst case: it never spends more
            worst = body.agent.budget_usd
            models.append({"step": step.path, "agent": body.agent.name,
                           "max_turns": body.agent.max_turns, "worst_case_usd": worst,
                           "per_item": in_foreach})
            if worst is not None:
                if in_foreach:
                    per_item += worst
                else:
                    total += worst
        if step.compensate is not None and isinstance(step.compensate.body, ir.Uses):
            row["compensate"] = step.compensate.body.action
        steps.append(row)
        if isinstance(body, (ir.Parallel, ir.Foreach)):
            for child in body.steps:
                visit(child, depth + 1, in_foreach or isinstance(body, ir.Foreach))

    for step in playbook.steps:
        visit(step, 0, False)
    return {"playbook": playbook.name, "version": playbook.digest[:12], "steps": steps,
            "gates": gates, "models": models, "worst_case_usd": round(total, 6),
            "worst_case_per_foreach_item_usd": round(per_item, 6),
            "budget_usd": playbook.policy.budget_usd,
            "assumptions": f"each ${{{{ }}}} in a prompt counted as {INTERPOLATION_TOKENS} "
                           "tokens; every tier called with all its validation retries"}


def _price_tier(body: ir.Llm, tier: ir.Tier, settings: dict[str, Any],
                root: Path) -> dict[str, Any]:
    try:
        spec = spec_from(tier.model, model_settings(settings, tier.model), root)
    except PermanentError as exc:
        return {"alias": tier.model, "error": str(exc), "worst_case_usd": 0.0}
    prompt = _prompt_tokens(body.prompt) + (_prompt_tokens(body.system) if body.system else 0)
    if body.output_schema is not None:
        prompt += estimate_tokens(json.dumps(ir.thaw(body.output_schema)))
    max_tokens = tier.max_tokens or body.max_tokens or spec.max_tokens
    attempts = body.validation_retries + 1 if body.output_schema is not None else 1
    usage = worst_case_usage(prompt, max_tokens, attempts)
    return {"alias": tier.model, "provider": spec.provider, "model": spec.model,
            "price": {"input": spec.price.input, "output": spec.price.output},
            "max_tokens": max_tokens, "attempts": attempts,
            "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
            "accept": tier.accept is not None, "worst_case_usd": spec.price.cost(usage)}


def _prompt_tokens(value: ir.Value | None) -> int:
    if isinstance(value, ir.Const):
        return estimate_tokens(str(value.value))
    if isinstance(value, ir.Interp):
        literal = "".join(p for p in value.parts if isinstance(p, str))
        expressions = sum(1 for p in value.parts if not isinstance(p, str))
        return estimate_tokens(literal) + expressions * INTERPOLATION_TOKENS
    return INTERPOLATION_TOKENS


def _template(value: ir.Value) -> str:
    if isinstance(value, ir.Const):
        return str(value.value)
    if isinstance(value, ir.Interp):
        return "".join(p if isinstance(p, str) else f"${{{{ {p.source} }}}}"
                       for p in value.parts)
    if isinstance(value, ir.Expr):
        return f"${{{{ {value.source} }}}}"
    return "…"


def _kind(body: ir.Body) -> str:
    return {ir.Uses: "uses", ir.Llm: "llm", ir.Gate: "gate", ir.Wait: "wait", ir.Emit: "emit",
            ir.Parallel: "parallel", ir.Foreach: "foreach", ir.Call: "call",
            ir.SetValues: "set", ir.Agent: "agent"}[type(body)]
