"""The command line's value parsing never fails but with its own positioned errors."""

from __future__ import annotations

import json

import click
from aiosrun.runtime.cli.parsing import InputError, parse_inputs, parse_json
from hypothesis import given
from hypothesis import strategies as st

TEXT = st.text(alphabet=st.characters(codec=None), max_size=60) | st.builds(
    lambda n, inner: "[" * n + inner + "]" * n, st.integers(0, 300), st.text(max_size=5))


@given(text=TEXT)
def test_parse_json_returns_text_safe_data_or_a_positioned_error(text: str) -> None:
    try:
        value = parse_json(text, "--data")
    except InputError as exc:
        assert str(exc).startswith("--data")
        return
    json.dumps(value, ensure_ascii=False).encode("utf-8")  # recordable as UTF-8


@given(pairs=st.lists(st.builds(lambda k, v: f"{k}={v}",
                                st.text(alphabet="ab.", min_size=1, max_size=6), TEXT),
                      max_size=5))
def test_parse_inputs_raises_only_usage_or_input_errors(pairs: list[str]) -> None:
    try:
        values = parse_inputs(tuple(pairs), None)
    except (click.BadParameter, InputError):
        return
    json.dumps(values, ensure_ascii=False).encode("utf-8")
