"""The expression memory limit bounds memory while evaluating: sizes are charged before a
string or an array is built, so hostile expressions stop at the limit with a small peak."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

NUMBERS = "fromJSON('[" + ",".join(["0"] * 4000) + "]')"
FEWER = "fromJSON('[" + ",".join(["0"] * 2000) + "]')"
WIDE = "format('" + "{0}" * 50 + "', format('" + "{0}" * 50 + "', '" + "x" * 100 + "'))"
# The peak is read from the child's own address space (VmHWM) when it exits: the kernel's
# ru_maxrss of a child also counts the pages of the parent it was forked from, so late in a
# long pytest session every child looked 300 MB big.
PEAK_REPORTING_CLI = """
import atexit, re, runpy, sys
def report(path=sys.argv.pop(1)):
    status = open('/proc/self/status').read()
    open(path, 'w').write(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1))
atexit.register(report)
sys.argv[0] = 'aiosrun'
runpy.run_module('aiosrun.runtime', run_name='__main__', alter_sys=True)
"""
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
    peak = tmp_path / "peak"
    process = subprocess.run([sys.executable, "-c", PEAK_REPORTING_CLI, str(peak), "eval",
                              expression], capture_output=True, text=True, timeout=60)
    assert process.returncode == 1, (process.stdout[:200], process.stderr[:200])
    assert "The maximum allowed memory size was exceeded" in process.stderr
    assert "Traceback" not in process.stderr
    peak_mb = int(peak.read_text()) / 1024
    assert peak_mb < 200, f"{name}: {peak_mb:.0f} MB"
