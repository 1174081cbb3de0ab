"""DESIGN §8: kill -9 at any point, then `aiosrun resume`: the run reaches the same end state,
no completed step runs twice, no effect happens twice, and seq has no gap.

Real processes, real SIGKILL, at seeded random moments spread over the run's duration (and,
in the second test, during the resume as well): 20 kill points on the JSONL store and 6 on
PostgreSQL, each landing between the moment the run begins and the moment an uninterrupted
run would end. On PostgreSQL a killed process's lease row lapses after ``lease_timeout`` (1 s
here), so the resume waits for that instead of for the kernel to drop a ``flock``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from aiosrun.runtime.workspace import Workspace

from tests.support.leases import lease_held

from .conftest import _aiosrun_command

PLAYBOOK = """apiVersion: aiosrun/v1
kind: Playbook
name: crashy
steps:
  - id: first
    uses: files.append
    with: {path: out/effects.txt, line: first}
  - id: nap
    uses: debug.sleep
    with: {seconds: 0.05}
  - id: each
    foreach:
      items: [a, b, c, d, e]
      steps:
        - id: note
          uses: files.append
          with: {path: out/effects.txt, line: "item-${{ item }}"}
        - id: pause
          uses: debug.sleep
          with: {seconds: 0.02}
  - id: fan
    parallel:
      steps:
        - {id: p1, uses: files.append, with: {path: out/effects.txt, line: p1}}
        - {id: p2, uses: files.append, with: {path: out/effects.txt, line: p2}}
  - id: flaky
    uses: debug.fail
    with: {times: 2, error: transient, value: done}
    retry: {max_attempts: 3, initial_delay: 30ms, jitter: none}
  - id: last
    uses: files.append
    with: {path: out/effects.txt, line: "last ${{ steps.flaky.outputs.value }}"}
    checkpoint: true
outputs:
  flaky: ${{ steps.flaky.outputs.value }}
  notes: ${{ steps.each.outputs.*.note.path }}
"""
EFFECTS = ["first", "item-a", "item-b", "item-c", "item-d", "item-e", "p1", "p2", "last done"]
EXPECTED_OUTPUTS = {"flaky": "done", "notes": ["out/effects.txt"] * 5}


def cli(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*_aiosrun_command(), "--workspace", str(root), *args],
                          capture_output=True, text=True, timeout=120)
    if check:
        assert "Traceback" not in done.stderr, done.stderr
    return done


LEASE_TIMEOUT = 1.0
Template = tuple[Path, float, float]


def server_url(root: Path) -> str | None:
    """The PostgreSQL URL of the workspace's ``aios.yaml``, None for the JSONL store."""
    text = (root / "aios.yaml").read_text()
    return text.split('url: "', 1)[1].split('"', 1)[0] if 'url: "' in text else None


def has_lease(root: Path) -> bool:
    url = server_url(root)
    if url is None:
        return lease_held(root)
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            return conn.execute("SELECT 1 FROM aios_leases").fetchone() is not None
        except psycopg.errors.UndefinedTable:
            return False


def store_line(url: str | None) -> str:
    return "" if url is None else f'store: {{url: "{url}", lease_timeout: {LEASE_TIMEOUT:g}s}}\n'


@pytest.fixture(scope="module")
def templates() -> dict[str, Template]:
    """Each store's template, built on first use (:func:`template_of`) for the module."""
    return {}


def template_of(templates: dict[str, Template], kind: str, request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> Template:
    if kind not in templates:
        url = None
        if kind == "postgresql":
            url = request.getfixturevalue("postgres_server").database()
        templates[kind] = make_template(tmp_path_factory, url)
    return templates[kind]


def fresh(source: Path, tmp_path: Path) -> Path:
    """A copy of the template workspace (and of its database, on PostgreSQL)."""
    root = tmp_path / "ws"
    shutil.copytree(source, root)
    url = server_url(source)
    if url is not None:
        base, _, name = url.rpartition("/")
        copy = f"{name}_{tmp_path.name[-20:].replace('-', '_').lower()}"
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{name}"')
        (root / "aios.yaml").write_text("apiVersion: aiosrun/v1\nkind: Workspace\n"
                                        + store_line(f"{base}/{copy}"))
    return root


def make_template(tmp_path_factory: pytest.TempPathFactory, url: str | None) -> Template:
    """A workspace with the playbook applied, and when (after the process starts) an
    uninterrupted run begins and ends: kills are spread over that window, not start-up."""
    root = tmp_path_factory.mktemp("template")
    (root / "aios.yaml").write_text("apiVersion: aiosrun/v1\nkind: Workspace\n"
                                    + store_line(url))
    (root / "playbooks").mkdir()
    (root / "playbooks" / "crashy.yaml").write_text(PLAYBOOK)
    assert cli(root, "apply").returncode == 0
    baseline = fresh(root, root.parent / f"baseline-{root.name}")
    started = time.monotonic()
    process = subprocess.Popen([*_aiosrun_command(), "--workspace", str(baseline), "run",
                                "crashy", "--format", "json"], stdout=subprocess.PIPE, text=True)
    while not has_lease(baseline) and process.poll() is None:
        time.sleep(0.002)
    begins = time.monotonic() - started
    out, _ = process.communicate(timeout=120)
    ends = time.monotonic() - started
    assert process.returncode == 0, out
    assert json.loads(out)["outputs"] == EXPECTED_OUTPUTS
    assert sorted((baseline / "out" / "effects.txt").read_text().splitlines()) == sorted(EFFECTS)
    return root, begins, ends


def kill_at(command: list[str], delay: float) -> int:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    return process.wait(timeout=60)


def run_ids(root: Path) -> list[str]:
    listed = json.loads(cli(root, "runs", "--format", "json").stdout)
    return [r["id"] for r in listed]


def check_end_state(root: Path) -> None:
    ids = run_ids(root)
    assert len(ids) == 1, ids
    status = json.loads(cli(root, "status", ids[0], "--format", "json").stdout)
    assert status["status"] == "succeeded", status
    assert status["outputs"] == EXPECTED_OUTPUTS
    lines = (root / "out" / "effects.txt").read_text().splitlines()
    assert Counter(lines) == Counter(EFFECTS), lines  # every effect exactly once
    assert lines[0] == "first" and lines[1:6] == EFFECTS[1:6] and lines[-1] == "last done"
    ws = Workspace(root)
    records = list(ws.log.read())
    ws.close()
    assert [r.seq for r in records] == list(range(1, len(records) + 1))  # no gap
    succeeded = Counter(r.data["path"] for r in records if r.type == "StepSucceeded")
    assert set(succeeded.values()) == {1}  # no completed step ran twice


def settle(root: Path) -> None:
    """What an operator does after a crash: resume (or start the run if it never began)."""
    if not run_ids(root):
        assert cli(root, "run", "crashy").returncode == 0
        return
    for _ in range(60):  # PostgreSQL: until the killed process's lease has lapsed
        done = cli(root, "resume", "--all")
        assert done.returncode == 0, done.stderr
        if "being executed by another process" not in done.stdout + done.stderr:
            return
        time.sleep(LEASE_TIMEOUT / 4)
    raise AssertionError("the run's lease never lapsed")


KILLS = [("jsonl", seed) for seed in range(15)] + [("postgresql", seed) for seed in range(4)]
DOUBLE_KILLS = [("jsonl", seed) for seed in range(100, 105)] + [
    ("postgresql", seed) for seed in range(100, 102)]


@pytest.mark.parametrize(("kind", "seed"), KILLS)
def test_kill_during_run_then_resume(templates: dict[str, Template], kind: str, seed: int,
                                     tmp_path: Path, request: pytest.FixtureRequest,
                                     tmp_path_factory: pytest.TempPathFactory) -> None:
    source, begins, ends = template_of(templates, kind, request, tmp_path_factory)
    root = fresh(source, tmp_path)
    delay = random.Random(seed).uniform(begins, ends)
    kill_at([*_aiosrun_command(), "--workspace", str(root), "run", "crashy"], delay)
    settle(root)
    check_end_state(root)


@pytest.mark.parametrize(("kind", "seed"), DOUBLE_KILLS)
def test_kill_during_run_and_during_resume(templates: dict[str, Template], kind: str,
                                           seed: int, tmp_path: Path,
                                           request: pytest.FixtureRequest,
                                           tmp_path_factory: pytest.TempPathFactory) -> None:
    source, begins, ends = template_of(templates, kind, request, tmp_path_factory)
    root = fresh(source, tmp_path)
    rng = random.Random(seed)
    kill_at([*_aiosrun_command(), "--workspace", str(root), "run", "crashy"],
            rng.uniform(begins, ends))
    if run_ids(root):
        if kind == "postgresql":
            time.sleep(LEASE_TIMEOUT + 0.3)  # the killed run's lease lapses first
        kill_at([*_aiosrun_command(), "--workspace", str(root), "resume", "--all"],
                rng.uniform(begins, ends))
    settle(root)
    check_end_state(root)


def test_resume_of_a_finished_run_changes_nothing(templates: dict[str, Template],
                                                  tmp_path: Path, request: pytest.FixtureRequest,
                                                  tmp_path_factory: pytest.TempPathFactory
                                                  ) -> None:
    source, _, _ = template_of(templates, "jsonl", request, tmp_path_factory)
    root = fresh(source, tmp_path)
    assert cli(root, "run", "crashy").returncode == 0
    before = (root / ".aios" / "log" / "000000000001.jsonl").read_bytes()
    (run_id,) = run_ids(root)
    assert cli(root, "resume", run_id).returncode == 0
    assert (root / ".aios" / "log" / "000000000001.jsonl").read_bytes() == before


@pytest.mark.parametrize("seed", range(200, 203))
def test_kill_with_fsync_always_then_resume(templates: dict[str, Template], tmp_path: Path,
                                            seed: int, request: pytest.FixtureRequest,
                                            tmp_path_factory: pytest.TempPathFactory) -> None:
    """``fsync: always`` makes a step's start durable with the step's end (one fsync per
    step boundary): a kill between the two still resumes to every effect once."""
    source, begins, ends = template_of(templates, "jsonl", request, tmp_path_factory)
    root = fresh(source, tmp_path)
    (root / "aios.yaml").write_text("apiVersion: aiosrun/v1\nkind: Workspace\n"
                                    "log: {fsync: always}\n")
    delay = random.Random(seed).uniform(begins, ends)
    kill_at([*_aiosrun_command(), "--workspace", str(root), "run", "crashy"], delay)
    settle(root)
    check_end_state(root)
