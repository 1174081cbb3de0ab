"""The decoded-IR cache (``.aios/cache/ir/DIGEST.pickle``): a new process starts a version
from it; a cache that is missing, altered, torn, made for another record or another layout,
or that names a class outside the IR is decoded again from the log and written anew; a
writer killed while writing it leaves the log, and every later start, as they were."""

from __future__ import annotations

import hashlib
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiosrun.dsl import ir, ir_codec
from aiosrun.dsl.ir_codec import encode
from aiosrun.dsl.loader import load_text
from aiosrun.dsl.validate import validate_document
from aiosrun.runtime import ir_cache
from aiosrun.runtime.coordinator.runs import start_or_load
from aiosrun.runtime.log.eventlog import NewEvent
from aiosrun.runtime.workspace import Workspace


def _playbook(steps: int = 200) -> ir.Playbook:
    body = "".join(f"  - id: s{i}\n    set: {{v: {i}, w: 'x{i}'}}\n" for i in range(steps))
    return validate_document(load_text(
        f"apiVersion: aiosrun/v1\nkind: Playbook\nname: big\nsteps:\n{body}", "big.yaml"))


def _workspace(root: Path, playbook: ir.Playbook) -> Path:
    root.mkdir(exist_ok=True)
    (root / "aios.yaml").write_text("apiVersion: aiosrun/v1\nkind: Workspace\n")
    with Workspace(root) as ws:
        ws.log.append(NewEvent("PlaybookApplied", {
            "name": "big", "digest": playbook.digest, "source": "big.yaml", "commit": None,
            "ir": encode(playbook)}))
    return root


def _cache(root: Path, playbook: ir.Playbook) -> Path:
    return root / ".aios" / "cache" / "ir" / f"{playbook.digest}.pickle"


def _start(root: Path) -> ir.Playbook:
    """A run start in a workspace opened anew, with this process's decoded versions gone
    (as in a new process)."""
    ir_codec.forget_decoded(str(root))
    with Workspace(root) as ws:
        playbook, _ = start_or_load(ws, "big", {})
        return playbook


def _decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the decodes from the log's JSON."""
    calls: list[int] = []
    real = ir_codec.decode_playbook

    def counting(value: object) -> ir.Playbook:
        calls.append(1)
        return real(value)

    monkeypatch.setattr(ir_codec, "decode_playbook", counting)
    return calls


def test_a_new_process_starts_the_version_from_the_cache(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    compiled = _playbook()
    root = _workspace(tmp_path / "ws", compiled)
    decodes = _decodes(monkeypatch)
    assert not _cache(root, compiled).exists()
    assert _start(root) == compiled and len(decodes) == 1  # missing: decoded, then cached
    assert _cache(root, compiled).is_file()
    assert _start(root) == compiled and len(decodes) == 1  # read from the cache


def _frozen_dicts(value: object) -> list[ir.FrozenDict]:
    if isinstance(value, ir.FrozenDict):
        return [value, *(d for v in value.values() for d in _frozen_dicts(v))]
    if isinstance(value, tuple):
        return [d for v in value for d in _frozen_dicts(v)]
    if hasattr(value, "__dataclass_fields__"):
        return [d for name in value.__dataclass_fields__ for d in
                _frozen_dicts(getattr(value, name))]
    return []


def test_a_hash_this_process_computed_is_not_stored(tmp_path: Path) -> None:
    """String hashes differ between processes: a mapping's cached hash must not outlive it."""
    compiled = _playbook(3)
    found = _frozen_dicts(compiled)
    assert found and all(hash(d) for d in found)
    ir_cache.save(tmp_path, compiled.digest, 1, compiled)
    loaded = ir_cache.load(tmp_path, compiled.digest, 1)
    assert loaded == compiled
    assert all(d._hash is None for d in _frozen_dicts(loaded))


@pytest.mark.parametrize("damage", ["edited value", "flipped byte", "torn", "empty",
                                    "not a pickle"])
def test_an_altered_or_torn_cache_is_decoded_again_and_rewritten(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str) -> None:
    compiled = _playbook()
    root = _workspace(tmp_path / "ws", compiled)
    _start(root)
    path = _cache(root, compiled)
    data = path.read_bytes()
    if damage == "edited value":  # still a pickle of a playbook, of another one
        assert data.count(b"\x8c\x03x17") == 1  # the text 'x17', as pickle holds it
        data = data.replace(b"\x8c\x03x17", b"\x8c\x03y17")
    elif damage == "flipped byte":
        data = data[:-100] + bytes([data[-100] ^ 1]) + data[-99:]
    elif damage == "torn":
        data = data[:len(data) // 2]
    elif damage == "empty":
        data = b""
    else:
        head, _, _ = data.partition(b"\n")
        body = b"not a pickle"
        stamp = head.rpartition(b" sha256=")[0]
        data = stamp + b" sha256=" + hashlib.sha256(body).hexdigest().encode() + b"\n" + body
    path.write_bytes(data)
    decodes = _decodes(monkeypatch)
    assert _start(root) == compiled and len(decodes) == 1
    assert ir_cache.load(root / ".aios", compiled.digest, 1) == compiled  # written anew


def test_a_cache_of_another_record_or_layout_is_stale(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = _playbook()
    root = _workspace(tmp_path / "ws", compiled)
    _start(root)
    path = _cache(root, compiled)
    good = path.read_bytes()
    for old, new in ((b" seq=1 ", b" seq=7 "), (b"layout=", b"layout=0"),
                     (b"aiosrun-ir ", b"aiosrun-ir 0.0.1-")):
        assert old in good
        path.write_bytes(good.replace(old, new, 1))
        decodes = _decodes(monkeypatch)
        assert _start(root) == compiled and len(decodes) == 1, new
        assert path.read_bytes().partition(b"\n")[0] == good.partition(b"\n")[0]  # anew


class _Boom:
    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, ("touch pwned",))


def test_a_cache_naming_a_class_outside_the_ir_is_refused_unrun(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checksum is no defence against whoever can write the file: loading builds the
    IR's classes only."""
    compiled = _playbook()
    root = _workspace(tmp_path / "ws", compiled)
    _start(root)
    path = _cache(root, compiled)
    stamp = path.read_bytes().partition(b"\n")[0].rpartition(b" sha256=")[0]
    body = pickle.dumps(_Boom())
    path.write_bytes(stamp + b" sha256=" + hashlib.sha256(body).hexdigest().encode() + b"\n"
                     + body)
    monkeypatch.chdir(tmp_path)
    decodes = _decodes(monkeypatch)
    assert _start(root) == compiled and len(decodes) == 1
    assert not (tmp_path / "pwned").exists()


def test_a_read_only_workspace_starts_without_writing_a_cache(tmp_path: Path) -> None:
    compiled = _playbook()
    root = _workspace(tmp_path / "ws", compiled)
    ir_codec.forget_decoded(str(root))
    with Workspace(root) as ws:
        ws.log.read_only = True  # as a read-only mount opens
        assert ws.playbook(compiled.digest) == compiled
    assert not _cache(root, compiled).exists()


def test_a_small_version_gets_no_cache(tmp_path: Path) -> None:
    """It decodes in about the time its cache file would load."""
    compiled = _playbook(5)
    root = _workspace(tmp_path / "ws", compiled)
    assert _start(root) == compiled
    assert not _cache(root, compiled).parent.exists()


def test_a_version_read_from_the_workspace_snapshot_is_cached_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The snapshot keeps the IR out: the start fetches it from its record by seq."""
    compiled = _playbook()
    root = _workspace(tmp_path / "ws", compiled)
    with Workspace(root) as ws:
        ws.save_workspace_snapshot(every=0)
    with Workspace(root) as ws:
        assert ws.workspace_state(copy=False).versions[compiled.digest].ir is None
    decodes = _decodes(monkeypatch)
    assert _start(root) == compiled and _start(root) == compiled and len(decodes) == 1
    assert _cache(root, compiled).is_file()


def test_apply_decodes_and_caches_the_version_it_records(tmp_path: Path) -> None:
    import trio
    from aiosrun.runtime import Engine

    compiled = _playbook()
    root = tmp_path / "ws"
    (root / "playbooks").mkdir(parents=True)
    (root / "aios.yaml").write_text("apiVersion: aiosrun/v1\nkind: Workspace\n")
    body = "".join(f"  - id: s{i}\n    set: {{v: {i}, w: 'x{i}'}}\n" for i in range(200))
    (root / "playbooks" / "big.yaml").write_text(
        f"apiVersion: aiosrun/v1\nkind: Playbook\nname: big\nsteps:\n{body}")

    async def apply() -> None:
        async with Engine.open(root) as engine:
            await engine.apply()

    trio.run(apply)
    with Workspace(root) as ws:
        digest = ws.workspace_state().current["big"]
        cached = ir_cache.load(root / ".aios", digest, 1)
    assert cached is not None and len(cached.steps) == len(compiled.steps) == 200


_WRITER = """
import sys
from pathlib import Path
from aiosrun.runtime import ir_cache
from aiosrun.runtime.workspace import Workspace
root = Path(sys.argv[1])
with Workspace(root) as ws:
    playbook = ws.playbook(sys.argv[2])
    while True:
        ir_cache.save(root / ".aios", sys.argv[2], 1, playbook)
"""


def test_a_writer_killed_while_writing_the_cache_leaves_starts_whole(tmp_path: Path) -> None:
    """SIGKILL while the cache file is being written (its temporary file is there): the
    cache reads as the whole earlier file or as none, the next start gets the version right
    and its write clears what the killed writer left."""
    compiled = _playbook(2000)
    root = _workspace(tmp_path / "ws", compiled)
    folder = _cache(root, compiled).parent
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(root), compiled.digest])
    try:
        deadline = time.monotonic() + 60
        while not (folder.is_dir() and list(folder.glob(".*.tmp"))):
            assert writer.poll() is None and time.monotonic() < deadline
        writer.send_signal(signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait()
    left = list(folder.glob(".*.tmp"))
    cached = ir_cache.load(root / ".aios", compiled.digest, 1)
    assert cached is None or cached == compiled
    assert _start(root) == compiled
    _cache(root, compiled).unlink()
    assert _start(root) == compiled  # decoded, written again
    assert not [p for p in left if p.exists()]
    assert ir_cache.load(root / ".aios", compiled.digest, 1) == compiled
