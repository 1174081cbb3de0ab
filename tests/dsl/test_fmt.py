"""fmt: canonical, comment-preserving, idempotent, and never destroys a file it cannot read."""

from __future__ import annotations

from importlib import resources

import pytest
from aiosrun.dsl.errors import PlaybookError
from aiosrun.dsl.fmt import format_text
from aiosrun.dsl.loader import load_text

MESSY = """# yaml-language-server: $schema=../schemas/playbook.schema.json
apiVersion: aiosrun/v1     # the format
kind: Playbook
name: messy
steps:
- id: a   # first step
  uses: debug.echo
  with: {value: 'single',   other: "double"}
- id: b
  llm:
        prompt: |
          line one ${{ inputs.x }}
          line two
        tiers:
        -   model: small
"""


def test_format_normalises_indentation_and_keeps_comments() -> None:
    out = format_text(MESSY, "m.yaml")
    assert "\n  - id: a # first step\n" in out
    assert "# yaml-language-server: $schema=../schemas/playbook.schema.json\n" in out
    assert "# the format" in out
    assert "        - model: small\n" in out
    assert "'single'" in out and '"double"' in out


def test_format_preserves_data() -> None:
    assert load_text(format_text(MESSY, "m.yaml"), "m.yaml").data == load_text(MESSY, "m").data


def test_format_is_idempotent() -> None:
    once = format_text(MESSY, "m.yaml")
    assert format_text(once, "m.yaml") == once


@pytest.mark.parametrize("template", ["customer-onboarding", "content-cadence",
                                      "billing-reconciliation"])
def test_templates_are_canonical(template: str) -> None:
    text = resources.files("aiosrun.playbooks").joinpath(f"{template}.yaml").read_text("utf-8")
    assert format_text(text, template) == text


def test_unreadable_input_is_refused() -> None:
    with pytest.raises(PlaybookError):
        format_text("a: 1\na: 2\n", "dup.yaml")
