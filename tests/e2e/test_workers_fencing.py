"""DESIGN section 15: a worker that stalls past its lease (SIGSTOP) while executing a run,
whose run another worker takes over and finishes, appends nothing for it when it wakes
(SIGCONT): the appending statement checks the lease's token. No step is recorded twice, the
effect after the stalled step happens once, and the stalled worker says why it gave up."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

from aiosrun.runtime.workspace import Workspace

from tests.support.receivers import http_receiver, wait_for

from .conftest import _aiosrun_command
from .test_workers import count, serve

PLAYBOOK = """\
apiVersion: aiosrun/v1
kind: Playbook
name: stall
on: {event: job.queued}
steps:
  - id: nap
    uses: debug.sleep
    with: {seconds: 3}
  - id: post
    uses: http.request
    with: {method: POST, url: "http://127.0.0.1:PORT/done", json: {job: one}}
  - id: after
    uses: debug.echo
    with: {value: done}
"""


def workspace(root: Path, url: str, port: int) -> Path:
    (root / "playbooks").mkdir(parents=True)
    (root / "aios.yaml").write_text(
        "apiVersion: aiosrun/v1\nkind: Workspace\n"
        f'store: {{url: "{url}", lease_timeout: 2s}}\n'
        f'adapters: {{http: {{allow_hosts: ["127.0.0.1:{port}"]}}}}\n')
    (root / "playbooks" / "stall.yaml").write_text(PLAYBOOK.replace("PORT", str(port)))
    return root


def aiosrun(root: Path, *args: str, code: int = 0) -> None:
    done = subprocess.run([*_aiosrun_command(), "--workspace", str(root), *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == code, done.stdout + done.stderr


def test_a_stalled_worker_cannot_append_for_a_run_taken_over(postgres_url: str,
                                                             tmp_path: Path) -> None:
    with http_receiver() as receiver:
        first = workspace(tmp_path / "machine-a", postgres_url, receiver.port)
        second = workspace(tmp_path / "machine-b", postgres_url, receiver.port)
        aiosrun(first, "apply")
        stalled = serve(first, "a")
        workers = [stalled]
        try:
            wait_for(lambda: count(postgres_url, "SELECT count(*) FROM aios_workers") == 1,
                     60, "worker a to register")
            aiosrun(first, "emit", "job.queued", "--id", "job-1")  # worker a executes it
            napping = ("SELECT count(*) FROM aios_events WHERE type = 'StepStarted' AND "
                       "line LIKE '%\"path\":\"nap\"%'")
            wait_for(lambda: count(postgres_url, napping) == 1, 60, "worker a to start nap")
            os.kill(stalled.pid, signal.SIGSTOP)  # inside nap, holding the run's lease
            workers.append(serve(second, "b"))
            wait_for(lambda: count(postgres_url, "SELECT count(*) FROM aios_events WHERE "
                                   "type = 'RunSucceeded'") == 1, 120,
                     "worker b to take the run over and finish it")
            assert count(postgres_url, "SELECT count(*) FROM aios_leases") == 0
            os.kill(stalled.pid, signal.SIGCONT)  # nap ends at once: its record is refused
            wait_for(lambda: "given up" in (first / "a.log").read_text(), 60,
                     "worker a to give the run up")
            assert stalled.poll() is None  # it gave up the run, not its work
        finally:
            for worker in workers:
                if worker.poll() is None:
                    os.kill(worker.pid, signal.SIGCONT)
                    worker.send_signal(signal.SIGTERM)
                    worker.wait(timeout=60)
        said = (first / "a.log").read_text()
        assert "another worker has taken this run over" in said, said
        assert len(receiver.posts) == 1  # the effect after the stalled step: once
    ws = Workspace(second)
    try:
        records = list(ws.log.read())
    finally:
        ws.close()
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    done_steps = Counter(r.data["path"] for r in records if r.type == "StepSucceeded")
    assert done_steps == {"nap": 1, "post": 1, "after": 1}  # no second step record
    assert Counter(r.data["path"] for r in records if r.type == "StepStarted")["nap"] == 2
    assert [r.type for r in records if r.type.startswith("Run")] == ["RunStarted",
                                                                     "RunSucceeded"]
