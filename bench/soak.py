"""Crash soak: SIGKILL `aiosrun run`, `resume` and `approve` at random moments, over and over,
then check that nothing was lost, nothing happened twice and the log has no seq gap.

Each round copies a workspace with the playbook applied, and drives one run to its end the
way an operator would after crashes: `run` (killed at a random moment), `resume --all`
(killed too, sometimes), `approve` at the gate (killed too), and again until the run has
succeeded. Then it counts, for every effect the playbook makes (lines appended by
``files.append``, invoices in the billing ledger), how many are missing (lost) or extra
(doubled), whether any completed step succeeded twice, and the gaps in ``seq``.

    python bench/soak.py --rounds 40 --seed 7      # prints one JSON line of figures
    python bench/soak.py --store postgresql        # each round on a database of its own

With ``--store postgresql`` the rounds run on a throwaway PostgreSQL server that the soak
starts (Debian's ``postgresql`` package; ``--postgres URL`` names a running one to create
the databases on instead), with a lease timeout of 1 s: a killed process's lease row lasts
that long, so a `resume` right after a kill may find the run still held, and tries again
next pass.

The exit status is 1 if anything was lost or doubled or a seq gap was found.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PLAYBOOK = """apiVersion: aiosrun/v1
kind: Playbook
name: soak
steps:
  - {id: first, uses: files.append, with: {path: out/effects.txt, line: first}}
  - id: each
    foreach:
      items: [a, b, c, d]
      steps:
        - {id: note, uses: files.append, with: {path: out/effects.txt, line: "item-${{ item }}"}}
        - {id: pause, uses: debug.sleep, with: {seconds: 0.02}}
  - id: fan
    parallel:
      steps:
        - {id: p1, uses: files.append, with: {path: out/effects.txt, line: p1}}
        - {id: p2, uses: files.append, with: {path: out/effects.txt, line: p2}}
  - id: bill
    uses: billing.create_invoice
    with: {customer: acme, amount: 42}
  - {id: ask, gate: {message: "Go on?"}}
  - {id: after, uses: files.append, with: {path: out/effects.txt, line: after-gate}}
  - id: flaky
    uses: debug.fail
    with: {times: 1, error: transient, value: done}
    retry: {max_attempts: 3, initial_delay: 20ms, jitter: none}
  - {id: last, uses: files.append, with: {path: out/effects.txt, line: last}}
"""
EFFECTS = ["first", "item-a", "item-b", "item-c", "item-d", "p1", "p2", "after-gate", "last"]
LEASE_TIMEOUT = "1s"


def command() -> list[str]:
    script = shutil.which("aiosrun", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "aiosrun.runtime"]


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*command(), "--workspace", str(root), *args], capture_output=True,
                          text=True, timeout=300)
    if "Traceback" in done.stderr or "internal error" in done.stderr:
        raise RuntimeError(f"aiosrun {' '.join(args)} crashed: {done.stderr}")
    return done


def killed(root: Path, delay: float, *args: str) -> bool:
    """Start a command and SIGKILL it after ``delay`` seconds; True if it was still alive."""
    process = subprocess.Popen([*command(), "--workspace", str(root), *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    alive = process.poll() is None
    if alive:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=120)
    return alive


class Workspaces:
    """Fresh workspaces with the playbook applied: copies of one template on the JSONL
    store, each on a new database with PostgreSQL (its state is there, not in the folder)."""

    def __init__(self, folder: Path, database: Any = None) -> None:
        self.folder = folder
        self.database = database  # () -> a new database's URL, for PostgreSQL
        self.template = None if database else self._applied(folder / "template")

    def _applied(self, root: Path) -> Path:
        store = "" if self.database is None else \
            f'store: {{url: "{self.database()}", lease_timeout: {LEASE_TIMEOUT}}}\n'
        (root / "playbooks").mkdir(parents=True)
        (root / "aios.yaml").write_text("apiVersion: aiosrun/v1\nkind: Workspace\n" + store)
        (root / "playbooks" / "soak.yaml").write_text(PLAYBOOK)
        if cli(root, "apply").returncode != 0:
            raise RuntimeError("the soak playbook does not apply")
        return root

    def new(self, root: Path) -> Path:
        if self.template is None:
            return self._applied(root)
        shutil.copytree(self.template, root)
        return root


def spans(workspaces: Workspaces) -> tuple[float, float]:
    """How long `run` (to the gate) and `approve` (to the end) take uninterrupted: kills are
    spread over those spans."""
    trial = workspaces.new(workspaces.folder / "trial")
    started = time.monotonic()
    cli(trial, "run", "soak")
    to_gate = time.monotonic() - started
    started = time.monotonic()
    cli(trial, "approve")
    to_end = time.monotonic() - started
    shutil.rmtree(trial)
    return to_gate, to_end


def state(root: Path) -> dict[str, Any] | None:
    listed = json.loads(cli(root, "runs", "--format", "json").stdout or "[]")
    return listed[0] if listed else None


def one_round(root: Path, rng: random.Random, to_gate: float,
              to_end: float) -> dict[str, int]:
    kills = 0
    for _ in range(50):  # bounded: each pass moves the run on or settles it
        run = state(root)
        if run is None:
            if rng.random() < 0.8:
                kills += killed(root, rng.uniform(0, to_gate * 1.1), "run", "soak")
            else:
                cli(root, "run", "soak")
        elif run["status"] == "succeeded":
            break
        elif run["status"] == "waiting":
            if rng.random() < 0.7:
                kills += killed(root, rng.uniform(0, to_end * 1.1), "approve")
            else:
                cli(root, "approve")
        elif rng.random() < 0.5:
            kills += killed(root, rng.uniform(0, to_gate * 1.1), "resume", "--all")
        else:
            cli(root, "resume", "--all")
    else:
        raise RuntimeError(f"{root}: the run did not reach its end in 50 passes")
    return {"kills": kills, **check(root)}


def check(root: Path) -> dict[str, int]:
    """What the round left, read from whichever store the workspace names."""
    from aiosrun.runtime.workspace import Workspace

    effects = root / "out" / "effects.txt"
    seen = Counter(effects.read_text().splitlines() if effects.exists() else [])
    wanted = Counter(EFFECTS)
    ws = Workspace(root)
    try:
        with ws.store.journal("billing/ledger") as entries:  # a file, or rows of the store
            invoices = sum(entry.get("kind") == "invoice" for entry in entries)
        records = list(ws.log.read())
    finally:
        ws.close()
    lost = sum((wanted - seen).values()) + max(1 - invoices, 0)
    doubled = sum((seen - wanted).values()) + max(invoices - 1, 0)
    seqs = [record.seq for record in records]
    succeeded = Counter(r.data["path"] for r in records if r.type == "StepSucceeded")
    gaps = sum(1 for a, b in itertools.pairwise(seqs) if b != a + 1)
    gaps += 0 if not seqs or seqs[0] == 1 else 1
    return {"lost": lost, "doubled": doubled, "seq_gaps": gaps,
            "steps_twice": sum(1 for count in succeeded.values() if count > 1)}


def soak(rounds: int, seed: int, store: str = "jsonl",
         postgres: str | None = None) -> dict[str, Any]:
    rng = random.Random(seed)
    totals = Counter({"kills": 0, "lost": 0, "doubled": 0, "seq_gaps": 0, "steps_twice": 0})
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="aiosrun-soak-") as folder, \
            contextlib.ExitStack() as stack:
        database = None
        if store == "postgresql":
            database = new_database(postgres) if postgres else \
                stack.enter_context(throwaway_server()).database
        workspaces = Workspaces(Path(folder), database)
        to_gate, to_end = spans(workspaces)
        for number in range(rounds):
            root = workspaces.new(Path(folder) / f"round{number}")
            totals.update(one_round(root, rng, to_gate, to_end))
            shutil.rmtree(root)
    return {"rounds": rounds, "seed": seed, "store": store, **totals,
            "seconds": round(time.monotonic() - started, 1)}


def throwaway_server() -> Any:
    from tests.support.postgres import PostgresServer

    return PostgresServer()


def new_database(url: str) -> Any:
    """A function making a new database on the server of ``url``, returning its URL."""
    def make() -> str:
        import secrets

        import psycopg

        name = f"soak_{secrets.token_hex(6)}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return url.rsplit("/", 1)[0] + f"/{name}"

    return make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40, help="runs driven to their end")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--store", choices=["jsonl", "postgresql"], default="jsonl")
    parser.add_argument("--postgres", metavar="URL",
                        help="a PostgreSQL server to create the databases on (default: start "
                             "a throwaway one)")
    options = parser.parse_args()
    figures = soak(options.rounds, options.seed, options.store, options.postgres)
    print(json.dumps(figures))
    bad = figures["lost"] or figures["doubled"] or figures["seq_gaps"] or figures["steps_twice"]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
