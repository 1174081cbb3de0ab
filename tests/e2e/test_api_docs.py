"""Every Python example of docs/api.md runs as written, in order, on a fresh workspace."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from .conftest import Runner

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text("utf-8"), flags=re.S)


def test_the_api_examples_run(aiosrun: Runner, tmp_path: Path) -> None:
    found = examples()
    assert len(found) >= 4
    assert aiosrun("init", "shop", "--no-git").returncode == 0
    env = {k: v for k, v in os.environ.items() if k != "AIOS_WORKSPACE"}
    outputs = []
    for number, code in enumerate(found, 1):
        script = tmp_path / f"example{number}.py"
        script.write_text(code, "utf-8")
        done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"example {number}:\n{done.stdout}\n{done.stderr}"
        outputs.append(done.stdout)
    assert "+ customer-onboarding" in outputs[0] and "succeeded" in outputs[0]
    assert "invalid:" in outputs[1] and "no open gate 'review'" in outputs[1]
    assert "waiting" in outputs[2] and "GateDecided" in outputs[2]
    assert "RunSucceeded" in outputs[2]
    assert "EUR" in outputs[3]
    status = aiosrun("runs", "--format", "json", cwd=tmp_path / "shop")
    assert status.returncode == 0
