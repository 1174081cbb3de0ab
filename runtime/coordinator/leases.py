"""Who executes a run right now: an exclusive ``flock`` per run, and serve's lock.

The kernel drops a lock when its process dies, which is how ``resume`` tells a crashed run
from a running one, and how commands see that ``aiosrun serve`` dispatches for them.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class Lease:
    """An exclusive ``flock`` per run while a process executes it; the kernel drops it when the
    process dies, which is how ``resume`` tells a crashed run from a running one."""

    def __init__(self, folder: Path, run_id: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(folder / f"{run_id}.lock", os.O_RDWR | os.O_CREAT, 0o644)

    def try_acquire(self) -> bool:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)

    def close(self) -> None:
        """Give up a lease that was never acquired."""
        os.close(self.fd)


def serve_running(state_dir: Path) -> bool:
    """Whether `aiosrun serve` holds the workspace (then it dispatches events and timers)."""
    path = state_dir / "serve.lock"
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
