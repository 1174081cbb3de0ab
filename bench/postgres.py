"""The PostgreSQL store, as numbers (no asserts):

- steps/s of triggered runs executed by 1, 2 and 4 ``aiosrun serve`` workers sharing one
  PostgreSQL database (fsync on), beside one worker on the JSONL store on the same machine;
- resume time after a worker's death: from the SIGKILL of a run's executor until another
  worker has taken the run over (the lease timeout, default 15 s, plus one check);
- appends per second of 1 and 3 processes appending at once, each append one statement (as
  a step's records are) or a transaction under the appenders' advisory lock (as guarded
  appends are): why only the guarded ones take it (docs/decisions.md).

The server is a throwaway cluster started in a temporary folder (tests/support/postgres.py).

    python bench/postgres.py [--runs 200] [--steps 5] [--workers 1,2,4] [--lease 15]
                             [--only-resume] [--only-appends]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.postgres import PostgresServer

EMIT = """\
import sys
import trio
from aiosrun.runtime import Engine

async def main() -> None:
    async with Engine.open(sys.argv[1]) as engine:
        for n in range(int(sys.argv[2])):
            await engine.emit("bench.go", {"n": n}, id=f"go-{n}")

trio.run(main)
"""


def playbook(steps: int) -> str:
    body = "".join(f"  - id: s{i}\n    uses: debug.echo\n    with: {{value: {i}}}\n"
                   for i in range(steps))
    return ("apiVersion: aiosrun/v1\nkind: Playbook\nname: bench\non: {event: bench.go}\n"
            f"steps:\n{body}")


SLEEPER = """\
apiVersion: aiosrun/v1
kind: Playbook
name: sleeper
steps:
  - id: nap
    uses: debug.sleep
    with: {seconds: 3}
"""


def aiosrun(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "aiosrun.runtime", "--workspace", str(root), *args]


def workspace(root: Path, store: str, steps: int) -> Path:
    (root / "playbooks").mkdir(parents=True)
    (root / "aios.yaml").write_text("apiVersion: aiosrun/v1\nkind: Workspace\n" + store)
    (root / "playbooks" / "bench.yaml").write_text(playbook(steps))
    (root / "playbooks" / "sleeper.yaml").write_text(SLEEPER)
    return root


def succeeded(root: Path) -> int:
    from aiosrun.runtime.workspace import Workspace

    ws = Workspace(root)
    try:
        return sum(1 for r in ws.log.read() if r.type == "RunSucceeded")
    finally:
        ws.close()


def started(root: Path, times: int = 1) -> bool:
    """Whether the log holds ``times`` StepStarted records (a second: taken over)."""
    from aiosrun.runtime.workspace import Workspace

    ws = Workspace(root)
    try:
        return sum(r.type == "StepStarted" for r in ws.log.read()) >= times
    finally:
        ws.close()


def throughput(roots: list[Path], runs: int, steps: int, scratch: Path) -> float:
    """steps/s of ``runs`` triggered runs, from the first emit to the last success."""
    subprocess.run(aiosrun(roots[0], "apply"), check=True, capture_output=True)
    workers = [subprocess.Popen(aiosrun(root, "serve", "--interval", "0.1"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for root in roots]
    try:
        time.sleep(3)  # the workers are up
        script = scratch / "emit.py"
        script.write_text(textwrap.dedent(EMIT))
        started = time.monotonic()
        subprocess.run([sys.executable, str(script), str(roots[0]), str(runs)], check=True)
        deadline = started + 1800
        while succeeded(roots[0]) < runs and time.monotonic() < deadline:
            time.sleep(0.25)
        elapsed = time.monotonic() - started
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
    return runs * steps / elapsed


def resume_time(url: str, lease: float, scratch: Path) -> float:
    """Seconds from the SIGKILL of a run's executor until another worker has taken the run
    over (the interrupted step started again)."""
    store = f'store: {{url: "{url}", lease_timeout: {lease:g}s}}\n'
    root = workspace(scratch / "resume", store, 1)
    subprocess.run(aiosrun(root, "apply"), check=True, capture_output=True)
    worker = subprocess.Popen(aiosrun(root, "serve", "--interval", "0.2"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        runner = subprocess.Popen(aiosrun(root, "run", "sleeper"), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not started(root) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # inside the 3 s nap
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait()
        killed = time.monotonic()
        while not started(root, 2) and time.monotonic() - killed < lease * 4 + 60:
            time.sleep(0.05)
        return time.monotonic() - killed
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)


def _appender(url: str, locked: bool, count: int, rates: Any) -> None:
    from aiosrun.runtime.log.eventlog import NewEvent
    from aiosrun.runtime.log.pglog import PgLog, connect

    log = PgLog(connect(url, None, "bench"), "bench").open()
    event = NewEvent("Bench", {"pad": "x" * 200})
    started = time.perf_counter()
    for _ in range(count):
        log.append_many([event], guard=(lambda: True) if locked else None)
    rates.put(count / (time.perf_counter() - started))
    log.close()


def append_modes(server: PostgresServer, count: int = 300) -> None:
    """The two ways an append is numbered, alone and with three appenders at once, taken in
    turn twice (a fresh database each)."""
    import multiprocessing

    for processes in (1, 3):
        for locked in (False, True, False, True):
            rates: Any = multiprocessing.Queue()
            url = server.database()
            workers = [multiprocessing.Process(target=_appender,
                                               args=(url, locked, count, rates))
                       for _ in range(processes)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            total = sum(rates.get() for _ in workers)
            how = "advisory lock" if locked else "one statement"
            print(f"appends, {processes} process{'es' if processes > 1 else ''}, {how}: "
                  f"{total:,.0f} /s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--only-resume", action="store_true")
    parser.add_argument("--only-appends", action="store_true")
    parser.add_argument("--lease", type=float, default=15.0)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="aiosrun-bench-pg-"))
    if args.only_appends:
        with PostgresServer(durable=True) as server:
            append_modes(server)
        return
    print(f"{args.runs} triggered runs of {args.steps} debug.echo steps, "
          f"{os.cpu_count()} cores")
    if not args.only_resume:
        jsonl = workspace(scratch / "jsonl", "", args.steps)
        print(f"jsonl, 1 worker: {throughput([jsonl], args.runs, args.steps, scratch):,.0f} "
              "steps/s")
    with PostgresServer(durable=True) as server:
        for count in (int(n) for n in args.workers.split(",") if not args.only_resume):
            store = f'store: {{url: "{server.database()}"}}\n'
            roots = [workspace(scratch / f"pg{count}-{i}", store, args.steps)
                     for i in range(count)]
            rate = throughput(roots, args.runs, args.steps, scratch)
            print(f"postgresql, {count} worker{'s' if count > 1 else ''}: {rate:,.0f} steps/s")
        seconds = resume_time(server.database(), args.lease, scratch)
        print(f"taken over after a SIGKILLed executor (lease_timeout {args.lease:g}s): "
              f"{seconds:.1f} s")
        if not args.only_resume:
            append_modes(server)


if __name__ == "__main__":
    main()
