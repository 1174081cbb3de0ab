"""Speed of playbook tests (``aiosrun test``), as numbers (no asserts).

One case of a ten-step playbook, run in-process the way ``aiosrun test`` runs it (a copy of
the workspace, the playbook applied from its IR, doubles, the virtual clock), beside the
same ten steps executed by the Engine on a workspace that is already open, in the same run.
Goal: a case under 50 ms, so a hundred cases take seconds.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import trio
import trio.testing
from aiosrun.runtime import Engine
from aiosrun.runtime.testing.runner import run_case
from aiosrun.runtime.testing.suite import load_tests

STEPS = 10
CASES = 20


def make_workspace(root: Path) -> None:
    (root / "playbooks").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "aios.yaml").write_text("apiVersion: aiosrun/v1\nkind: Workspace\n")
    body = "".join(f"  - id: s{i}\n    uses: debug.echo\n    with: {{value: {i}}}\n"
                   for i in range(STEPS - 1))
    body += "  - id: pay\n    uses: billing.create_invoice\n    with: {customer: a, amount: 1}\n"
    (root / "playbooks" / "ten.yaml").write_text(
        f"apiVersion: aiosrun/v1\nkind: Playbook\nname: ten\nsteps:\n{body}")
    (root / "tests" / "ten.yaml").write_text(
        "apiVersion: aiosrun/v1\nkind: Test\nplaybook: ten\ncases:\n"
        "  - name: ten steps\n    mocks: {billing.create_invoice: {outputs: {id: INV-1}}}\n"
        "    expect: {status: succeeded, calls: {debug.echo: 9}}\n")


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "ws"
        make_workspace(root)
        docs, playbooks = load_tests(root, [root / "tests" / "ten.yaml"])

        async def cases() -> list[float]:
            took = []
            for _ in range(CASES):
                began = time.perf_counter()
                result = await run_case(root, docs[0], 0, playbooks)
                took.append(time.perf_counter() - began)
                assert result.passed, result.failures
            return took

        ours = trio.run(cases, clock=trio.testing.MockClock(autojump_threshold=0))

        async def plain() -> list[float]:
            took = []
            async with Engine.open(root) as engine:
                await engine.apply()
                for _ in range(CASES):
                    began = time.perf_counter()
                    await engine.start("ten")
                    took.append(time.perf_counter() - began)
            return took

        bare = trio.run(plain)
    print(f"one test case of a {STEPS}-step playbook:     {statistics.median(ours) * 1000:7.1f} ms "
          f"median, {max(ours) * 1000:.1f} ms max [goal < 50 ms]")
    print(f"the same run on an open workspace:        {statistics.median(bare) * 1000:7.1f} ms "
          "median (the floor: executing the steps)")
    print(f"a hundred cases:                          {statistics.median(ours) * 100:7.1f} s")


if __name__ == "__main__":
    main()
