"""End-to-end tests run the installed ``aiosrun`` console script in a subprocess, as a user
would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

Runner = Callable[..., subprocess.CompletedProcess[str]]


def _aiosrun_command() -> list[str]:
    script = shutil.which("aiosrun", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "aiosrun.runtime"]


@pytest.fixture
def aiosrun(tmp_path: Path) -> Runner:
    def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        merged = {k: v for k, v in os.environ.items() if k != "AIOS_WORKSPACE"}
        merged.update(env or {})
        return subprocess.run([*_aiosrun_command(), *args], cwd=cwd or tmp_path, env=merged,
                              capture_output=True, text=True, input=input, timeout=60)

    return run
