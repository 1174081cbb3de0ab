"""`uses:` steps checked against a catalog of action schemas at validate."""

from __future__ import annotations

from aiosrun.dsl.loader import load_text
from aiosrun.dsl.validate import validate_document

CATALOG = {
    "mail.send": {"type": "object", "required": ["to"], "additionalProperties": False,
                  "properties": {"to": {"type": "string"}, "retries": {"type": "integer"}}},
    "mail.undo": {"type": "object"},
}
SOURCE = """apiVersion: aiosrun/v1
kind: Playbook
name: p
steps:
  - id: a
    uses: mail.sned
  - id: b
    uses: mial.send
  - id: c
    uses: mail.send
    with: {too: x, retries: many}
  - id: d
    uses: mail.send
    with: {to: "${{ 42 }}", retries: "${{ 'many' }}"}
    compensate: {uses: mail.nope}
"""


def test_actions_and_arguments_are_checked() -> None:
    from aiosrun.dsl.errors import PlaybookError

    try:
        validate_document(load_text(SOURCE, "p.yaml"), CATALOG)
    except PlaybookError as exc:
        lines = [d.format() for d in exc.diagnostics]
    else:
        raise AssertionError("accepted")
    assert lines == [
        "p.yaml:6:11: error: adapter 'mail' has no action 'sned'; did you mean 'send'? [adapter]",
        "p.yaml:8:11: error: unknown adapter 'mial'; did you mean 'mail'? [adapter]",
        "p.yaml:11:5: error: missing argument 'to' for mail.send [argument]",
        "p.yaml:11:12: error: unknown argument 'too' for mail.send; did you mean 'to'? [argument]",
        "p.yaml:11:29: error: argument 'retries' of mail.send: 'many' is not of type 'integer' "
        "[argument]",
        "p.yaml:15:24: error: adapter 'mail' has no action 'nope'; it has 'send', 'undo' "
        "[adapter]",
    ]
