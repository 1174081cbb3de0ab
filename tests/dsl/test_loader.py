"""The loader: positions, and every kind of bad input becomes one positioned diagnostic."""

from __future__ import annotations

import time

import pytest
from aiosrun.dsl.diagnostics import Span
from aiosrun.dsl.errors import PlaybookError
from aiosrun.dsl.loader import MAX_NODES, load_bytes, load_text


def only_diagnostic(source: str | bytes) -> tuple[int, int, str]:
    with pytest.raises(PlaybookError) as info:
        if isinstance(source, bytes):
            load_bytes(source, "f.yaml")
        else:
            load_text(source, "f.yaml")
    (diagnostic,) = info.value.diagnostics
    return diagnostic.line, diagnostic.col, diagnostic.code


def pos(span: Span) -> tuple[int, int]:
    return (span.line, span.col)


def test_positions_of_keys_and_values() -> None:
    doc = load_text("a: 1\nb:\n  - x\n  - {k: v}\n", "f.yaml")
    assert doc.data == {"a": 1, "b": ["x", {"k": "v"}]}
    assert pos(doc.span(("a",), key=True)) == (1, 1)
    assert pos(doc.span(("a",))) == (1, 4)
    assert pos(doc.span(("b", 1))) == (4, 5)
    assert pos(doc.span(("b", 1, "k"))) == (4, 9)
    assert pos(doc.span(("b", 1, "missing"))) == (4, 5)  # falls back to the nearest parent


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("a: [1, 2\n", (2, 1, "yaml-syntax")),
        ("a: 1\nb: 2\na: 3\n", (3, 1, "duplicate-key")),
        ("a:\n\tb: 1\n", (2, 1, "tab")),
        ("", (1, 1, "empty-file")),
        ("# just a comment\n", (1, 1, "empty-file")),
        ("- a\n", (1, 1, "root-not-mapping")),
        ("just text\n", (1, 1, "root-not-mapping")),
        ("a: 1\n---\nb: 2\n", (2, 1, "yaml-syntax")),
        ("x: *undefined\n", (1, 4, "yaml-syntax")),
        ("1: one\n", (1, 1, "key-type")),
        ("a: !custom value\n", (1, 4, "yaml-tag")),
        ("a: " + "[" * 80 + "]" * 80 + "\n", (1, 68, "too-deep")),
        ("a: b\x00\n", (1, 5, "encoding")),
    ],
)
def test_rejections_are_positioned(source: str, expected: tuple[int, int, str]) -> None:
    assert only_diagnostic(source) == expected


@pytest.mark.parametrize("source", ['a: "\\ud800"\n', 'k: 1\n"\\udc00": 1\n', "[" * 1200])
def test_lone_surrogates_and_deep_nesting_fail_positioned(source: str) -> None:
    """Whichever parser catches these (libyaml or the pure-Python fallback), the result is one
    positioned error, never a crash or a string that cannot be encoded later."""
    line, col, code = only_diagnostic(source)
    assert code in {"yaml-syntax", "encoding", "too-deep"}
    assert line >= 1 and col >= 1


def test_invalid_utf8_points_at_the_byte() -> None:
    assert only_diagnostic(b"a: 1\nname: caf\xe9\n") == (2, 10, "encoding")


def test_bom_is_accepted() -> None:
    assert load_bytes(b"\xef\xbb\xbfa: 1\n", "f.yaml").data == {"a": 1}


def test_yaml_12_keeps_on_and_yes_as_strings() -> None:
    doc = load_text("on: yes\ndate: 2026-01-02\n", "f.yaml")
    assert doc.data == {"on": "yes", "date": "2026-01-02"}


def test_aliases_within_the_limit_work() -> None:
    doc = load_text("base: &r {max_attempts: 3}\none: *r\ntwo: *r\n", "f.yaml")
    assert doc.data["one"] == doc.data["two"] == {"max_attempts": 3}


def test_billion_laughs_fails_fast() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    started = time.perf_counter()
    with pytest.raises(PlaybookError) as info:
        load_text("\n".join(lines) + "\n", "bomb.yaml")
    assert time.perf_counter() - started < 5
    assert info.value.diagnostics[0].code == "alias-limit"
    assert str(MAX_NODES) in info.value.diagnostics[0].message


def test_oversized_file_is_refused() -> None:
    _line, _col, code = only_diagnostic(b"a: " + b"x" * (3 * 1024 * 1024))
    assert code == "file-too-large"
