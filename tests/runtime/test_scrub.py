"""What counts as a copy of a forgotten text (runtime/log/scrub.py)."""

from __future__ import annotations

import base64
import json

from aiosrun.runtime.log.scrub import PLACEHOLDER, Scrubber
from hypothesis import given, settings
from hypothesis import strategies as st

NOTE = 'Quentin keeps his "spare" key under the blue flowerpot by the door'


def test_every_form_and_cut_of_a_long_text_is_replaced() -> None:
    scrub = Scrubber([NOTE])
    assert scrub.text(f"said: {NOTE}!") == f"said: {PLACEHOLDER}!"
    assert scrub.text(json.dumps({"text": NOTE})) == f'{{"text": "{PLACEHOLDER}"}}'
    assert NOTE[:20] not in scrub.text(json.dumps(NOTE, ensure_ascii=True))
    assert scrub.text(base64.b64encode(NOTE.encode()).decode()) == PLACEHOLDER
    # cut: at a string's end, before a cut marker, or its end after one
    assert scrub.text(f"note: {NOTE[:40]}") == f"note: {PLACEHOLDER}"
    assert scrub.text(f"a: {NOTE[:30]}…; b: 2") == f"a: {PLACEHOLDER}; b: 2"
    assert scrub.text(f"...{NOTE[-25:]} (end)") == f"{PLACEHOLDER} (end)"
    # a shared beginning that goes on differently is not a copy
    other = "Quentin keeps his \"spare\" key in the car"
    assert scrub.text(other) == other


def test_short_texts_match_whole_words_or_whole_strings() -> None:
    scrub = Scrubber(["Pixel", "42"])
    assert scrub.text("my cat Pixel sleeps") == f"my cat {PLACEHOLDER} sleeps"
    assert scrub.text("Pixelated screens") == "Pixelated screens"
    assert scrub.text("42") == PLACEHOLDER
    assert scrub.text("retry in 42 s") == "retry in 42 s"  # too short to tell apart


def test_structure_of_a_record_is_kept() -> None:
    scrub = Scrubber(["succeeded quietly", "email"])
    data = {"path": "email", "status": "succeeded quietly", "outputs": {"email": "email me",
                                                                      "path": "email"}}
    assert scrub.data(data, record=True) == {
        "path": "email", "status": "succeeded quietly",
        "outputs": {PLACEHOLDER: f"{PLACEHOLDER} me", "path": PLACEHOLDER}}


@settings(max_examples=150, deadline=None)
@given(st.text(min_size=8, max_size=60).filter(
    lambda t: t.strip() == t and "[" not in t and "]" not in t),
       st.text(max_size=20), st.text(max_size=20))
def test_no_copy_survives_in_any_json_encoding(text: str, before: str, after: str) -> None:
    scrub = Scrubber([text])
    value = {"outputs": [before + text + after, {"json": json.dumps(before + text)}]}
    line = json.dumps(value, ensure_ascii=False).encode()
    assert scrub.may_hold(line)
    cleaned = scrub.data(value, record=True)
    for form in (text, json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]):
        assert form not in json.dumps(cleaned, ensure_ascii=False)
        assert form not in json.dumps(cleaned)
