"""The files adapter: it may not write what runs or governs the workspace, never follows a
symlink (not even one swapped in while it works), and appends once per key, decided by key."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from aiosrun.adapters.base import PermanentError
from aiosrun.adapters.files import FilesAdapter

from .conftest import call

FILES = FilesAdapter()
GOVERNING = ["adapters/evil.py", "aios.yaml", ".env", ".env.local", "playbooks/p.yaml",
             "agents/a.yaml", ".git/hooks/pre-commit", ".aios/log/x.jsonl",
             "./adapters/x.py", "Playbooks/p.yaml"]


@pytest.mark.parametrize("path", GOVERNING)
def test_what_runs_or_governs_the_workspace_is_not_written(tmp_path: Path, path: str) -> None:
    (tmp_path / "aios.yaml").write_text("apiVersion: aiosrun/v1\nkind: Workspace\n")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    for action, args in (("write", {"content": "x"}), ("append", {"line": "x"}),
                         ("delete", {})):
        with pytest.raises(PermanentError, match=r"own state|runs or governs"):
            call(FILES, action, {"path": path, **args}, tmp_path, key=f"{action}:{path}")
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "aios.yaml").read_text().startswith("apiVersion")


def test_governing_files_can_still_be_read(tmp_path: Path) -> None:
    (tmp_path / "aios.yaml").write_text("kind: Workspace\n")
    assert call(FILES, "read", {"path": "aios.yaml"}, tmp_path) == {"content": "kind: Workspace\n"}


def test_symlinks_are_never_followed(tmp_path: Path) -> None:
    root, outside = tmp_path / "ws", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (root / "link").symlink_to(outside)
    (root / "file-link.txt").symlink_to(outside / "secret.txt")
    for action, args in (("write", {"path": "link/new.txt", "content": "x"}),
                         ("append", {"path": "link/secret.txt", "line": "x"}),
                         ("append", {"path": "file-link.txt", "line": "x"}),
                         ("read", {"path": "link/secret.txt"}),
                         ("read", {"path": "file-link.txt"})):
        with pytest.raises(PermanentError, match="symlink"):
            call(FILES, action, args, root, key=f"{action}:{args['path']}")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "secret"


def test_a_symlink_swapped_in_while_writing_never_leads_outside(tmp_path: Path) -> None:
    """The check-then-open race: a thread swaps the folder for a symlink to outside, over and
    over, while the adapter writes into it; nothing may ever land outside."""
    root, outside = tmp_path / "ws", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    folder, parked = root / "sub", root / "parked"
    folder.mkdir()
    stop = threading.Event()

    swaps = []

    def swap() -> None:
        for _ in range(20_000):
            if stop.is_set():
                return
            try:
                os.rename(folder, parked)
            except OSError:
                continue
            with contextlib.suppress(FileExistsError):  # the adapter may make it meanwhile
                folder.symlink_to(outside)
            swaps.append(1)
            for _ in range(1000):  # put the real folder back
                if folder.is_symlink():
                    folder.unlink()
                else:
                    shutil.rmtree(folder, ignore_errors=True)
                try:
                    os.rename(parked, folder)
                    break
                except OSError:
                    continue

    swapper = threading.Thread(target=swap)
    swapper.start()
    refused = 0
    try:
        for i in range(300):
            for action, args in (("write", {"content": "x"}), ("append", {"line": "x"})):
                try:
                    call(FILES, action, {"path": f"sub/f{i}.txt", **args}, root,
                         key=f"{action}{i}")
                except (PermanentError, FileNotFoundError):
                    refused += 1
    finally:
        stop.set()
        swapper.join()
    assert list(outside.iterdir()) == []
    assert len(swaps) > 100 and refused < 600  # the race was really run: some writes got through


KILLED = """
import os, sys, trio
from pathlib import Path
from aiosrun.adapters.base import CallContext
from aiosrun.adapters.files import FilesAdapter
calls = []
real_fsync = os.fsync
def fsync(fd):
    real_fsync(fd)
    calls.append(fd)
    if len(calls) == int(sys.argv[3]):
        os._exit(9)  # as a SIGKILL right after that write became durable
os.fsync = fsync
root = Path(sys.argv[1])
ctx = CallContext(idempotency_key=sys.argv[2], run_id="r", step_id="s", step_path="s",
                  attempt=1, workspace=root, state_dir=root / ".aios")
trio.run(FilesAdapter().call, "append", {"path": "notes.txt", "line": "same"}, ctx)
"""


def _killed(root: Path, key: str, after_fsyncs: int) -> None:
    """Append as ``key`` in a process that dies after its n-th fsync: 1 is right after the
    intent was recorded (nothing appended), 2 right after the line was appended."""
    done = subprocess.run([sys.executable, "-c", KILLED, str(root), key, str(after_fsyncs)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 9, done.stderr


def test_two_keys_appending_the_same_line_both_land(tmp_path: Path) -> None:
    _killed(tmp_path, "a", 1)  # a was killed before appending
    call(FILES, "append", {"path": "notes.txt", "line": "same"}, tmp_path, key="b")
    call(FILES, "append", {"path": "notes.txt", "line": "same"}, tmp_path, key="a")  # resume
    assert (tmp_path / "notes.txt").read_text() == "same\nsame\n"
    call(FILES, "append", {"path": "notes.txt", "line": "same"}, tmp_path, key="a")
    call(FILES, "append", {"path": "notes.txt", "line": "same"}, tmp_path, key="b")
    assert (tmp_path / "notes.txt").read_text() == "same\nsame\n"  # and each once


def test_an_append_that_happened_before_the_crash_is_kept_once(tmp_path: Path) -> None:
    _killed(tmp_path, "a", 2)  # a appended, then was killed before recording it done
    assert (tmp_path / "notes.txt").read_text() == "same\n"
    call(FILES, "append", {"path": "notes.txt", "line": "same"}, tmp_path, key="b")
    call(FILES, "append", {"path": "notes.txt", "line": "same"}, tmp_path, key="a")
    assert (tmp_path / "notes.txt").read_text() == "same\nsame\n"
    states = [json.loads(line)["state"] for line in
              (tmp_path / ".aios" / "effects" / "files.jsonl").read_text().splitlines()]
    assert states.count("done") == 2
