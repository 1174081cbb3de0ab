"""Settings that can never take effect are validation errors at their line."""

from __future__ import annotations

from aiosrun.dsl.errors import PlaybookError
from aiosrun.dsl.loader import load_text
from aiosrun.dsl.validate import validate_document

SOURCE = """apiVersion: aiosrun/v1
kind: Playbook
name: p
defaults:
  retry: {max_attempts: 4}
steps:
  - id: default_single_attempt
    uses: debug.echo
    retry: {initial_delay: 1s}
    escalate: {after_attempts: 2}
  - id: by_defaults
    uses: debug.echo
    escalate: {after_attempts: 4}
  - id: beyond_defaults
    uses: debug.echo
    escalate: {after_attempts: 5}
  - id: own_retry
    uses: debug.echo
    retry: {max_attempts: 3}
    escalate: {after_attempts: 3}
"""
NO_DEFAULTS = """apiVersion: aiosrun/v1
kind: Playbook
name: q
steps:
  - id: once
    uses: debug.echo
    escalate: {after_attempts: 3}
  - id: first_failure
    uses: debug.echo
    escalate: {after_attempts: 1}
"""


def problems(text: str) -> list[str]:
    try:
        validate_document(load_text(text, "p.yaml"))
    except PlaybookError as exc:
        return [d.format() for d in exc.diagnostics]
    return []


def test_an_escalation_after_more_attempts_than_the_step_makes_is_an_error() -> None:
    assert problems(SOURCE) == [
        "p.yaml:10:32: error: escalation after 2 attempts never happens: the step makes at "
        "most 1 (retry.max_attempts) [escalate]",
        "p.yaml:16:32: error: escalation after 5 attempts never happens: the step makes at "
        "most 4 (retry.max_attempts) [escalate]",
    ]
    assert problems(NO_DEFAULTS) == [
        "p.yaml:7:32: error: escalation after 3 attempts never happens: the step makes at "
        "most 1 (retry.max_attempts) [escalate]",
    ]


SHAPES = """apiVersion: aiosrun/v1
kind: Playbook
name: p
on: {event: order.placed}
steps:
  - id: paid
    wait: {event: invoice.paid, match: "${{ event.amount > 0 }}"}
  - id: totals
    set: {Amount: "${{ steps.paid.outputs.amount }}"}
  - id: review
    gate: {message: "Pay ${{ steps.totals.outputs.amount }} for ${{ event.order }}?"}
  - id: pause
    wait: {duration: 1m}
  - id: report
    uses: debug.echo
    with:
      value: "${{ steps.totals.outputs.amout }} ${{ steps.review.outputs.decison }}"
      other: "${{ steps.pause.outputs.event }} ${{ steps.review.outputs.comment }}"
"""


def test_validate_knows_output_names_where_the_playbook_fixes_them() -> None:
    assert problems(SHAPES) == [
        "p.yaml:17:40: error: step 'totals' has no output 'amout' (its outputs: Amount); "
        "did you mean 'Amount'? [reference]",
        "p.yaml:17:74: error: step 'review' has no output 'decison' (its outputs: comment, "
        "decided_at, decision); did you mean 'decision'? [reference]",
        "p.yaml:18:39: error: step 'pause' has no output 'event' (its outputs: none) "
        "[reference]",
    ]


def test_durations_past_ten_years_are_errors() -> None:
    text = """apiVersion: aiosrun/v1
kind: Playbook
name: p
steps:
  - id: pause
    wait: {duration: 999999999999999d}
    timeout: 3650d
"""
    assert problems(text) == [
        "p.yaml:6:22: error: 'duration' is longer than 3650d (ten years) [duration]"]
