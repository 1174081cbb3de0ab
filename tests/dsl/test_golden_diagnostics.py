"""Each bad playbook in golden/ yields exactly the diagnostics in its .expected file."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiosrun.dsl.validate import validate_files

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(GOLDEN.glob("*.yaml"))


def test_every_case_has_an_expectation() -> None:
    assert CASES
    for case in CASES:
        assert case.with_suffix(".expected").is_file(), case.name


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_diagnostics_match(case: Path) -> None:
    expected = case.with_suffix(".expected").read_text("utf-8").splitlines()
    result = validate_files([case], display_root=GOLDEN)
    assert [d.format() for d in result.diagnostics] == expected
    assert not result.playbooks
