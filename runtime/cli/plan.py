"""``aiosrun plan``: a playbook's steps, gates, model tiers and worst-case cost, before a run.

Registered on the group in :mod:`cli`; heavy imports stay inside the command.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from aiosrun.runtime.cli.app import Context, cli
from aiosrun.runtime.cli.render import FORMAT, session


@cli.command()
@click.argument("target", metavar="PLAYBOOK")
@FORMAT
@click.pass_obj
def plan(obj: Context, target: str, fmt: str) -> None:
    """Show what one run of PLAYBOOK (an applied name or a file) would do: its steps, its
    gates (policy approval gates included), its model tiers and the worst-case model cost."""
    from aiosrun.dsl.errors import PlaybookError

    path = Path(target)
    is_file = path.suffix in (".yaml", ".yml") and path.is_file()
    try:
        if obj.workspace() is None and is_file:
            result = _plan_without_workspace(obj, path)
        else:
            result = session(obj, lambda engine: engine.plan(target)).to_json()
    except PlaybookError as exc:
        click.echo(str(exc))
        sys.exit(1)
    if fmt == "json":
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    for line in render_plan(result):
        click.echo(line)


def usd(amount: float) -> str:
    """Dollars exactly as written, with cents at least: 0.5 -> 0.50, 0.005 -> 0.005."""
    whole, _, cents = f"{amount:.9f}".rstrip("0").partition(".")
    return f"{whole}.{cents.ljust(2, '0')}"


def _plan_without_workspace(obj: Context, path: Path) -> dict[str, Any]:
    """A playbook file's plan with no workspace around it: every setting at its default."""
    from aiosrun.runtime.engine import Engine

    return Engine.plan_file(path, obj.catalog()).to_json()


def render_plan(plan: dict[str, Any]) -> list[str]:
    lines = [f"playbook {plan['playbook']} ({plan['version']})", "", "steps:"]
    gated = {g["gate"].removesuffix("#approval") for g in plan["gates"] if g["kind"] == "policy"}
    for step in plan["steps"]:
        what = step.get("action") or step["kind"]
        if step["kind"] == "llm":
            what = f"llm  tiers: {' -> '.join(step['tiers'])}" + ("  (cached)" * step["cache"])
        extra = "  [approval gate]" if step["path"] in gated else ""
        if step.get("compensate"):
            extra += f"  undo: {step['compensate']}"
        lines.append(f"  {'  ' * step['depth']}{step['id']}: {what}{extra}")
    lines += ["", "gates:"]
    for gate in plan["gates"] or [{"gate": "(none)", "kind": "", "message": ""}]:
        why = f" (policy: {gate['pattern']})" if gate["kind"] == "policy" else ""
        lines.append(f"  {gate['gate']}{why}  {gate['message']}".rstrip())
    lines += ["", "model calls (worst case):"]
    for call in plan["models"] or [{"step": "(none)"}]:
        if "agent" in call:
            bound = (f"<= ${call['worst_case_usd']:.6f} (limits.budget_usd)"
                     if call["worst_case_usd"] is not None else "no limits.budget_usd: "
                     "bounded only by the run's budgets")
            lines.append(f"  {call['step']} agent {call['agent']}: at most "
                         f"{call['max_turns']} turns, {bound}"
                         + ("  per foreach item" if call["per_item"] else ""))
        elif "error" in call:
            lines.append(f"  {call['step']} tier {call['tier']}: {call['error']}")
        elif "alias" in call:
            lines.append(
                f"  {call['step']} tier {call['tier']} {call['alias']} ({call['provider']} "
                f"{call['model']}): {call['attempts']} attempt(s), <= {call['input_tokens']} in "
                f"+ {call['output_tokens']} out tokens, <= ${call['worst_case_usd']:.6f}"
                + ("  per foreach item" if call["per_item"] else ""))
        else:
            lines.append(f"  {call['step']}")
    budget = plan["budget_usd"]
    lines += ["", f"worst-case model cost of one run: ${plan['worst_case_usd']:.6f}"
              + (f" (budget ${usd(budget)})" if budget is not None else "")]
    if plan["worst_case_per_foreach_item_usd"]:
        lines.append(f"  plus ${plan['worst_case_per_foreach_item_usd']:.6f} per foreach item")
    lines.append(f"  assuming {plan['assumptions']}")
    return lines
