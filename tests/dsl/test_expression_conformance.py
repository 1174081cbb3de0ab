"""GitHub's own expression test data (../shared/conformance/gha-expressions) as our suite.

Every case must pass by kind and value (results) or error kind (errors); the exact error
messages are scored separately and must match too. A summary per file is printed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from aiosrun.dsl import ExpressionError, evaluate

DATA = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "gha-expressions"
FILES = sorted(DATA.glob("*.json")) if DATA.is_dir() else []

pytestmark = pytest.mark.skipif(
    not FILES, reason=f"conformance data not found at {DATA} (it lives in ../shared)")


def cases() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in FILES:
        for group, items in json.loads(path.read_text("utf-8")).items():
            for i, case in enumerate(items):
                found.append((f"{path.stem}/{group}/{i}", case))
    return found


CASES = cases()


def kind_of(value: Any) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, (int, float)):
        return "Number"
    if isinstance(value, str):
        return "String"
    return "Array" if isinstance(value, list) else "Object"


def same(actual: Any, expected: Any, kind: str) -> bool:
    if isinstance(expected, bool) or expected is None:
        return actual is expected
    if kind == "Number":
        number = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}.get(
            expected, expected)  # type: ignore[call-overload]
        if isinstance(actual, bool) or not isinstance(actual, (int, float)):
            return False
        return (math.isnan(actual) and math.isnan(number)) or float(actual) == float(number)
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(
            same(a, e, kind_of(e)) for a, e in zip(actual, expected, strict=True))
    if isinstance(expected, dict):
        return isinstance(actual, dict) and list(actual) == list(expected) and all(
            same(actual[k], expected[k], kind_of(expected[k])) for k in expected)
    return bool(actual == expected)


def run_case(case: dict[str, Any]) -> tuple[bool, bool]:
    """(passes by kind/value, error message matches exactly)."""
    contexts = case.get("contexts") or {}
    if "err" in case:
        try:
            evaluate(case["expr"], contexts)
        except ExpressionError as exc:
            return exc.kind == case["err"]["kind"], exc.message == case["err"]["value"]
        return False, False
    result = evaluate(case["expr"], contexts)
    expected = case["result"]
    return (kind_of(result) == expected["kind"]
            and same(result, expected["value"], expected["kind"])), True


@pytest.mark.parametrize(("name", "case"), CASES, ids=[name for name, _ in CASES])
def test_case(name: str, case: dict[str, Any]) -> None:
    passed, message_matches = run_case(case)
    assert passed, f"{case['expr']!r}: expected {case.get('result') or case.get('err')}"
    assert message_matches, f"message differs for {case['expr']!r}: {case['err']['value']!r}"


def test_score(capsys: pytest.CaptureFixture[str]) -> None:
    lines = []
    total = passed = errors = exact = 0
    for path in FILES:
        file_cases = [c for name, c in CASES if name.startswith(path.stem + "/")]
        results = []
        for case in file_cases:
            try:
                results.append((case, *run_case(case)))
            except Exception:  # a wrong exception counts as a failure in the score
                results.append((case, False, False))
        file_errors = [r for r in results if "err" in r[0]]
        ok = sum(r[1] for r in results)
        ok_messages = sum(r[2] for r in file_errors)
        lines.append(f"{path.name:34} {ok:4}/{len(results):<4} messages "
                     f"{ok_messages}/{len(file_errors)}")
        total += len(results)
        passed += ok
        errors += len(file_errors)
        exact += ok_messages
    lines.append(f"{'total':34} {passed:4}/{total:<4} messages {exact}/{errors}")
    with capsys.disabled():
        print("\nexpression conformance (kind+value / exact error messages):")
        print("\n".join(lines))
    assert total == 1020
    assert passed == total and exact == errors
