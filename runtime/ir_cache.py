"""Decoded playbook versions kept on disk: ``.aios/cache/ir/DIGEST.pickle``, one per version.

A run start in a new process decoded its version's IR from the log's JSON (a 20,000-step
playbook: a 11 MB record, a few hundred thousand objects), the larger part of the start. A
pickle of the decoded IR loads in a fraction of that. The log stays the truth: a file is
derived from its record and written whole (a temporary file renamed), and one that is
missing, unreadable, altered (its SHA-256), or made for another record, another aiosrun
or another IR layout is decoded again from the log and written anew. Loading accepts the
IR's own classes only, never an arbitrary name (a pickle can otherwise call anything).
"""

from __future__ import annotations

import contextlib
import copyreg
import functools
import hashlib
import io
import os
import pickle
import re
import sys
import threading
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from aiosrun.dsl import ir
from aiosrun.dsl.ir_codec import ir_classes, long_lived

FOLDER = Path("cache") / "ir"  # under .aios
_DIGEST = re.compile(r"[0-9a-f]{16,128}")
_ALLOWED = {(cls.__module__, cls.__qualname__): cls for cls in ir_classes()}


@functools.cache
def _layout() -> str:
    """The IR's classes and their fields: a pickle restores fields by name, so one made
    before a field was added or renamed must not load."""
    shape = sorted((cls.__qualname__, tuple(f.name for f in fields(cls)) if is_dataclass(cls)
                    else ()) for cls in ir_classes())
    return hashlib.sha256(repr(shape).encode()).hexdigest()[:16]


def _stamp(digest: str, seq: int) -> bytes:
    # the package is loaded (this module is in it); importing it here would be a cycle
    version = getattr(sys.modules.get("aiosrun.runtime"), "__version__", "unknown")
    return f"aiosrun-ir {version} layout={_layout()} digest={digest} seq={seq}".encode()


def _path(state_dir: Path, digest: str) -> Path | None:
    return state_dir / FOLDER / f"{digest}.pickle" if _DIGEST.fullmatch(digest) else None


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        cls = _ALLOWED.get((module, name))
        if cls is None:
            raise pickle.UnpicklingError(f"not an IR class: {module}.{name}")
        return cls


def _frozen_dict(value: ir.FrozenDict) -> tuple[Any, ...]:
    # its cached hash is of this process's string hashes: never stored
    return ir.FrozenDict, (dict(value.items()),)


_TABLE = {**copyreg.dispatch_table, ir.FrozenDict: _frozen_dict}


def load(state_dir: Path, digest: str, seq: int) -> ir.Playbook | None:
    """The cached decoded version, None when there is none fit to use (the caller decodes
    it from the log and :func:`save` s it). Loaded as the decoder builds (``long_lived``)."""
    path = _path(state_dir, digest)
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError:
        return None
    head, _, body = data.partition(b"\n")
    stamp, _, checksum = head.rpartition(b" sha256=")
    if stamp != _stamp(digest, seq) or checksum != hashlib.sha256(body).hexdigest().encode():
        return None
    try:
        with long_lived():
            playbook = _Unpickler(io.BytesIO(body)).load()
    except Exception:  # a checksum that matches bytes pickle refuses: decode it again
        return None
    return playbook if isinstance(playbook, ir.Playbook) else None


def save(state_dir: Path, digest: str, seq: int, playbook: ir.Playbook) -> None:
    """Write the cache file whole or not at all (a read-only or full disk leaves none). No
    fsync: a file a power cut left torn fails its checksum and is written again."""
    path = _path(state_dir, digest)
    if path is None:
        return
    out = io.BytesIO()
    pickler = pickle.Pickler(out, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _TABLE
    pickler.dump(playbook)
    body = out.getvalue()
    # one per writer: two threads of one process (serve's workers) may write it at once
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for left in path.parent.glob(f".{path.name}.*.tmp"):  # a writer killed mid-write
            left.unlink(missing_ok=True)
        temporary.write_bytes(_stamp(digest, seq) + b" sha256=" +
                              hashlib.sha256(body).hexdigest().encode() + b"\n" + body)
        temporary.replace(path)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink()
