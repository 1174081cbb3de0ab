"""The compiler: an immutable IR with defaults applied and a hash that ignores layout."""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path

import pytest
from aiosrun.dsl import ir
from aiosrun.dsl.errors import PlaybookError
from aiosrun.dsl.loader import load_text
from aiosrun.dsl.validate import validate_document

SOURCE = """apiVersion: aiosrun/v1
kind: Playbook
name: shapes
inputs:
  x: {type: number}
  name: {type: string}
defaults:
  retry: {max_attempts: 3, initial_delay: 500ms}
  timeout: 10s
steps:
  - id: first   # a comment
    uses: debug.echo
    with:
      value: ${{ inputs.x }}
      text: "Hello ${{ inputs.name }}!"
      plain: 5
  - id: fan
    parallel:
      steps:
        - id: inner
          set: {v: 1}
          retry: {max_attempts: 1}
  - id: check
    if: steps.first.outputs.value == 1
    set: {done: true}
"""


def compile_text(text: str) -> ir.Playbook:
    return validate_document(load_text(text, "p.yaml"))


def test_ir_is_frozen_and_uses_tuples() -> None:
    playbook = compile_text(SOURCE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        playbook.name = "other"  # type: ignore[misc]
    assert isinstance(playbook.steps, tuple)
    assert [s.path for s in playbook.walk()] == ["first", "fan", "fan/inner", "check"]


def test_expressions_keep_type_or_interpolate() -> None:
    first = compile_text(SOURCE).steps[0]
    assert isinstance(first.body, ir.Uses)
    args = dict(first.body.args.items)
    assert args["value"] == ir.Expr("inputs.x", args["value"].span)  # type: ignore[union-attr]
    assert (args["value"].span.line, args["value"].span.col) == (14, 18)  # type: ignore[union-attr]
    text = args["text"]
    assert isinstance(text, ir.Interp)
    assert text.parts[0] == "Hello " and text.parts[2] == "!"
    assert args["plain"] == ir.Const(5)


def test_defaults_apply_unless_a_step_overrides() -> None:
    playbook = compile_text(SOURCE)
    first, _fan, inner, check = playbook.walk()
    assert first.retry.max_attempts == 3 and first.retry.initial_delay_ms == 500
    assert first.timeout_ms == 10_000
    assert inner.retry.max_attempts == 1
    assert isinstance(check.condition, ir.Expr)
    assert check.condition.source == "steps.first.outputs.value == 1"


def test_hash_ignores_comments_and_key_order_but_not_content() -> None:
    base = compile_text(SOURCE).digest
    reordered = SOURCE.replace("kind: Playbook\nname: shapes\n", "name: shapes\nkind: Playbook\n")
    commented = SOURCE.replace("  - id: first   # a comment", "  # intro\n  - id: first")
    assert compile_text(reordered).digest == base
    assert compile_text(commented).digest == base
    assert compile_text(SOURCE.replace("plain: 5", "plain: 6")).digest != base


def test_invalid_document_does_not_compile() -> None:
    with pytest.raises(PlaybookError):
        compile_text(SOURCE.replace("uses: debug.echo", "uses: debug"))


@pytest.mark.parametrize("template", ["customer-onboarding", "content-cadence",
                                      "billing-reconciliation"])
def test_templates_compile(template: str) -> None:
    text = resources.files("aiosrun.playbooks").joinpath(f"{template}.yaml").read_text("utf-8")
    agents = Path(str(resources.files("aiosrun.runtime").joinpath("starter", "agents")))
    playbook = validate_document(load_text(text, "p.yaml"), agents_folder=agents)
    assert playbook.name == template
    assert len(playbook.digest) == 64
