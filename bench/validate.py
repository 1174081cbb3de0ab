"""How fast validation and start-up are, as the operator feels them (whole processes).

Prints the wall time of `aiosrun validate` over 200 generated playbooks and of a cold
`aiosrun --version` (median of several runs). Targets on the reference machine (2 cores):
under 2 s and under 250 ms. Numbers only; nothing is asserted.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

PLAYBOOKS = 200
RUNS = 7


def aiosrun() -> list[str]:
    script = shutil.which("aiosrun", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "aiosrun.runtime"]


def generate(folder: Path) -> None:
    """200 playbooks shaped like the templates, each with its own name."""
    templates = [resources.files("aiosrun.playbooks").joinpath(name).read_text("utf-8")
                 for name in ("customer-onboarding.yaml", "content-cadence.yaml",
                              "billing-reconciliation.yaml")]
    for i in range(PLAYBOOKS):
        text = templates[i % len(templates)]
        name = text.split("\nname: ", 1)[1].split("\n", 1)[0]
        (folder / f"p{i:03}.yaml").write_text(text.replace(f"\nname: {name}\n",
                                                           f"\nname: {name}-{i}\n"))


def timed(args: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(args, cwd=cwd, capture_output=True, check=False)
    return time.perf_counter() - started


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        generate(folder)
        cmd = aiosrun()
        done = subprocess.run([*cmd, "validate", "."], cwd=folder, capture_output=True,
                              text=True)
        print(f"validate check: exit {done.returncode}, {done.stderr.strip()}")
        validate = [timed([*cmd, "validate", "."], folder) for _ in range(RUNS)]
        version = [timed([*cmd, "--version"], folder) for _ in range(RUNS)]
        python = [timed([sys.executable, "-c", "pass"], folder) for _ in range(RUNS)]
    print(f"validate {PLAYBOOKS} playbooks: median {statistics.median(validate):.3f} s "
          f"(min {min(validate):.3f}, max {max(validate):.3f}; target < 2 s)")
    print(f"cold aiosrun --version:    median {statistics.median(version) * 1000:.0f} ms "
          f"(min {min(version) * 1000:.0f}, max {max(version) * 1000:.0f}; target < 250 ms)")
    print(f"bare python start-up:      median {statistics.median(python) * 1000:.0f} ms "
          "(the floor under both)")


if __name__ == "__main__":
    main()
