"""The crash soak, bounded: a few runs driven to their end through SIGKILLed `run`, `resume`
and `approve` processes lose nothing, do nothing twice and leave no seq gap
(`bench/soak.py --rounds N` is the long version)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


def test_a_short_soak_loses_and_doubles_nothing() -> None:
    done = subprocess.run([sys.executable, str(SOAK), "--rounds", "3", "--seed", "11"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(done.stdout.splitlines()[-1])
    assert figures["rounds"] == 3 and figures["kills"] >= 1, figures
    assert (figures["lost"], figures["doubled"], figures["seq_gaps"],
            figures["steps_twice"]) == (0, 0, 0, 0), figures
