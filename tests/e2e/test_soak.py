"""The crash soak, bounded: a few runs driven to their end through SIGKILLed `run`, `resume`
and `approve` processes lose nothing, do nothing twice and leave no seq gap, on either store
(`bench/soak.py --rounds N [--store postgresql]` is the long version). On PostgreSQL the
round has a database of its own on the session's server, and one round (seed 11 kills three
to four commands in it) keeps the variant within the suite's budget."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


def test_a_short_soak_loses_and_doubles_nothing(store: str,
                                                request: pytest.FixtureRequest) -> None:
    rounds, options = 3, ["--store", "jsonl"]
    if store:
        rounds, options = 1, ["--store", "postgresql",
                              "--postgres", request.getfixturevalue("postgres_server").url]
    done = subprocess.run([sys.executable, str(SOAK), "--rounds", str(rounds), "--seed", "11",
                           *options], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(done.stdout.splitlines()[-1])
    assert figures["rounds"] == rounds and figures["kills"] >= 1, figures
    assert (figures["lost"], figures["doubled"], figures["seq_gaps"],
            figures["steps_twice"]) == (0, 0, 0, 0), figures
