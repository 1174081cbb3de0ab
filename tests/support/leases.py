"""Whether some process holds a run's lease in a JSONL workspace, as the kernel sees it."""

from __future__ import annotations

import fcntl
import os
import struct
from pathlib import Path

FLOCK = "hhqqi4x"


def lease_held(root: Path) -> bool:
    """True while another open file holds a lock on any byte of ``.aios/runs.lock``."""
    path = root / ".aios" / "runs.lock"
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        probe = struct.pack(FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        answer = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, probe)
        return struct.unpack(FLOCK, answer)[0] != fcntl.F_UNLCK
    finally:
        os.close(fd)
