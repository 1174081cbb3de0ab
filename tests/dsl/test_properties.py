"""Property tests: no input, however odd, makes the loader or validator raise anything but the
project's own diagnostics."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from aiosrun.dsl.compile import compile_playbook
from aiosrun.dsl.errors import PlaybookError
from aiosrun.dsl.loader import load_bytes, load_text
from aiosrun.dsl.validate import validate_files
from hypothesis import given
from hypothesis import strategies as st

TEMPLATE = load_text(
    resources.files("aiosrun.playbooks").joinpath("customer-onboarding.yaml").read_text("utf-8"),
    "t.yaml",
).data

yaml_chars = st.sampled_from([*list("abc:-[]{},&*!|>'\"#%@`?\t\n \\0123456789${}."), "${{", "}}"])
yaml_like = st.lists(yaml_chars, max_size=120).map("".join)


def check_all(doc_text: str) -> None:
    """Validation of any text must end in a result, with only our diagnostics."""
    try:
        doc = load_text(doc_text, "p.yaml")
    except PlaybookError as exc:
        assert exc.diagnostics
        for d in exc.diagnostics:
            assert d.line >= 1 and d.col >= 1
        return
    from aiosrun.dsl.check import check_playbook
    from aiosrun.dsl.schema import check_schema

    problems = check_schema(doc, "playbook") + check_playbook(doc)
    for d in problems:
        assert d.line >= 1 and d.col >= 1 and d.message
    if not problems:
        compile_playbook(doc)


@given(yaml_like)
def test_random_yaml_like_text(text: str) -> None:
    check_all(text)


@given(st.binary(max_size=200))
def test_random_bytes(raw: bytes) -> None:
    try:
        load_bytes(raw, "b.yaml")
    except PlaybookError as exc:
        assert exc.diagnostics


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False)
    | st.text(max_size=8) | st.just("${{ inputs.x }}") | st.just("1s"),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=10,
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            found += paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += paths(v, (*prefix, i))
    return found


ALL_PATHS = paths(TEMPLATE)[1:]


@given(st.sampled_from(ALL_PATHS), json_values, st.booleans())
def test_mutated_template(path: tuple[Any, ...], value: Any, delete: bool) -> None:
    data = json.loads(json.dumps(TEMPLATE))
    target = data
    for part in path[:-1]:
        target = target[part]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    check_all(json.dumps(data))  # JSON is YAML


@given(yaml_like)
def test_validate_files_never_raises(tmp_path_factory: Any, text: str) -> None:
    folder: Path = tmp_path_factory.mktemp("p")
    (folder / "x.yaml").write_text(text, encoding="utf-8")
    result = validate_files([folder / "x.yaml"])
    assert result.ok == (not result.diagnostics)
