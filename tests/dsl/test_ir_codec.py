"""The IR's JSON form: what is decoded equals what was compiled (the decoder fills objects
without their ``__init__`` when every field is there), an older layout gets the defaults of
the fields it lacks, and a decoded version is kept per workspace and digest."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
from aiosrun.dsl import ir
from aiosrun.dsl.ir_codec import cached_playbook, decode, decode_playbook, encode, forget_decoded
from aiosrun.dsl.loader import load_text
from aiosrun.dsl.validate import validate_document

TEMPLATES = ["customer-onboarding", "content-cadence", "billing-reconciliation"]


def _compiled(template: str) -> ir.Playbook:
    text = resources.files("aiosrun.playbooks").joinpath(f"{template}.yaml").read_text("utf-8")
    agents = Path(str(resources.files("aiosrun.runtime").joinpath("starter", "agents")))
    return validate_document(load_text(text, f"{template}.yaml"), agents_folder=agents)


@pytest.mark.parametrize("template", TEMPLATES)
def test_a_decoded_playbook_equals_the_compiled_one(template: str) -> None:
    playbook = _compiled(template)
    decoded = decode_playbook(json.loads(json.dumps(encode(playbook))))
    assert decoded == playbook
    assert hash(decoded.steps) == hash(playbook.steps)
    assert decoded.by_path == {step.path: step for step in playbook.walk()}
    assert encode(decoded) == encode(playbook)  # the index is no field


def test_an_older_layout_gets_the_defaults_of_missing_fields() -> None:
    retry = encode(ir.Retry())
    del retry[next(k for k in retry if k != "$")]
    assert decode(retry) == ir.Retry()
    with pytest.raises(ValueError, match="not an IR object"):
        decode({"$": "os.system"})


def test_a_version_is_decoded_once_per_workspace_and_digest() -> None:
    encoded = encode(_compiled(TEMPLATES[0]))
    calls: list[int] = []

    def source() -> ir.Playbook:
        calls.append(1)
        return decode_playbook(encoded)

    first = cached_playbook("/ws-a", "d1", source)
    assert cached_playbook("/ws-a", "d1", source) is first and len(calls) == 1
    assert cached_playbook("/ws-b", "d1", source) is not first and len(calls) == 2
    forget_decoded("/ws-a")
    assert cached_playbook("/ws-a", "d1", source) is not first and len(calls) == 3
