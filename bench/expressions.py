"""Expression speed: evaluations per second of a cached, typical playbook condition (target
150,000/s on the reference machine; the reference evaluator beside it), interpolation of a
prompt, and parse throughput of uncached expressions. Numbers only; nothing is asserted.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiosrun.dsl import ir
from aiosrun.dsl.diagnostics import Span
from aiosrun.dsl.expressions import evaluate, parse
from aiosrun.dsl.render import render

CONDITION = "steps.score.outputs.confidence >= 0.8 && inputs.customer.plan == 'pro'"
CONTEXTS = {
    "inputs": {"customer": {"email": "ada@example.com", "name": "Ada", "plan": "pro"}},
    "steps": {"score": {"outputs": {"confidence": 0.91, "subject": "Welcome"},
                        "outcome": "success"},
              "history": {"outputs": {"hits": [{"text": f"note {i}"} for i in range(5)]}}},
    "run": {"id": "r1", "playbook": "customer-onboarding", "attempt": 1},
    "vars": {"owner_email": "me@example.com"},
    "secrets": {}, "env": {}, "event": {},
}
SPAN = Span("bench", 1, 1)
PROMPT = ir.Interp(("Write a welcome email for ", ir.Expr("inputs.customer.name", SPAN),
                    " on the ", ir.Expr("inputs.customer.plan", SPAN), " plan. Known: ",
                    ir.Expr("toJSON(steps.history.outputs.hits)", SPAN)))


def rate(label: str, work: Callable[[], object], seconds: float = 1.0) -> None:
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for _ in range(200):
            work()
        count += 200
    elapsed = time.perf_counter() - started
    print(f"{label:55} {count / elapsed:>10,.0f} /s  ({elapsed / count * 1e6:.1f} us each)")


def main() -> None:
    assert evaluate(CONDITION, CONTEXTS) is True
    rate("evaluate(cached typical condition)  [target 150,000/s]",
         lambda: evaluate(CONDITION, CONTEXTS))
    names = frozenset(CONTEXTS)
    expression = parse(CONDITION, names)
    from aiosrun.dsl.expressions import Scope

    rate("compiled closure only (no cache lookup)",
         lambda: expression.run(Scope(CONTEXTS, CONDITION)))
    from aiosrun.dsl.evaluator import compile_reference

    assert expression.ast is not None
    reference = compile_reference(expression.ast, CONDITION)
    rate("reference closures (the tests' oracle)", lambda: reference(Scope(CONTEXTS, CONDITION)))
    rate("render an interpolated prompt (3 expressions)", lambda: render(PROMPT, CONTEXTS))
    counter = iter(range(10**9))
    rate("parse uncached (distinct texts, lark LALR)",
         lambda: parse(f"{CONDITION} || inputs.n == {next(counter)}", names))


if __name__ == "__main__":
    main()
