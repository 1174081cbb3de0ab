"""The expression memory limit bounds memory while evaluating: sizes are charged before a
string or an array is built, so hostile expressions stop at the limit with a small peak."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .conftest import _aiosrun_command

NUMBERS = "fromJSON('[" + ",".join(["0"] * 4000) + "]')"
FEWER = "fromJSON('[" + ",".join(["0"] * 2000) + "]')"
WIDE = "format('" + "{0}" * 50 + "', format('" + "{0}" * 50 + "', '" + "x" * 100 + "'))"
HOSTILE = {
    "join by a huge separator": f"join({NUMBERS}, {WIDE})",
    "nested joins": f"join({FEWER}, join({FEWER}, join({FEWER}, 'xxxxxxxxxxxxxxxx')))",
    "nested formats": "format('" + "{0}" * 255 + "', format('" + "{0}" * 255 + "', '"
                      + "x" * 1000 + "'))",
    "toJSON of a fan-out": f"toJSON(fromJSON(format('[{{0}}]', join({NUMBERS}, ', '))))"
                           f" == join(fromJSON('[1]').*, {WIDE})",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_expressions_stop_at_the_limit_with_a_small_peak(name: str,
                                                                 tmp_path: Path) -> None:
    expression = HOSTILE[name]
    assert len(expression) < 17_000
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
        process = subprocess.Popen([*_aiosrun_command(), "eval", expression], stdout=out,
                                   stderr=err)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own peak memory
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = (tmp_path / "err").read_text()
    assert process.returncode == 1, ((tmp_path / "out").read_text()[:200], stderr[:200])
    assert "The maximum allowed memory size was exceeded" in stderr
    assert "Traceback" not in stderr
    assert usage.ru_maxrss / 1024 < 200, f"{name}: {usage.ru_maxrss / 1024:.0f} MB"
