"""`aiosrun eval` and the expression checks of `aiosrun validate`, as an operator uses them."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import Runner


def test_eval_prints_json(aiosrun: Runner, tmp_path: Path) -> None:
    (tmp_path / "ctx.yaml").write_text(
        "steps:\n  score:\n    outputs: {confidence: 0.91}\ninputs:\n  name: Ada\n")
    done = aiosrun("eval", "steps.score.outputs.confidence >= 0.8", "--contexts", "ctx.yaml")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) is True
    templated = aiosrun("eval", "Hi ${{ inputs.name }} (${{ steps.score.outputs }})",
                        "--contexts", "ctx.yaml")
    assert json.loads(templated.stdout) == "Hi Ada (Object)"
    data = aiosrun("eval", "fromJSON('{\"a\": [1, 2.5]}')")
    assert json.loads(data.stdout) == {"a": [1, 2.5]}


def test_eval_error_is_positioned(aiosrun: Runner) -> None:
    done = aiosrun("eval", "1 == = 2")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == ("error: Unexpected symbol: '='. Located at position 6 within "
                        "expression: 1 == = 2")
    assert lines[1:] == ["  1 == = 2", "       ^"]


def test_eval_unknown_context_names_the_available_ones(aiosrun: Runner, tmp_path: Path) -> None:
    (tmp_path / "ctx.json").write_text('{"inputs": {}}')
    done = aiosrun("eval", "input.x", "--contexts", "ctx.json")
    assert done.returncode == 1
    assert "Unrecognized named-value: 'input'" in done.stderr
    assert "available here: inputs" in done.stderr


def test_eval_bad_contexts_file(aiosrun: Runner, tmp_path: Path) -> None:
    (tmp_path / "ctx.yaml").write_text("a: [1\n")
    done = aiosrun("eval", "a", "--contexts", "ctx.yaml")
    assert done.returncode == 1
    assert "ctx.yaml:2:1" in done.stderr


def test_validate_points_into_block_scalars(aiosrun: Runner, tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "apiVersion: aiosrun/v1\nkind: Playbook\nname: p\nsteps:\n  - id: draft\n"
        "    llm:\n      prompt: |\n        First line\n        Then ${{ inptus.name }}\n")
    done = aiosrun("validate", "p.yaml")
    assert done.returncode == 1
    assert done.stdout.startswith("p.yaml:9:18: error: unknown context 'inptus'")
