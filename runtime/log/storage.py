"""Writing files so that a full disk never leaves half a record: the helpers the event log and
the adapters' ledgers share.

``os.write`` may write fewer bytes than asked (a disk filling up, a signal); a record written
half, with the next one after it, makes a JSON-lines file unreadable. :func:`append_all`
writes everything or, on failure, cuts the file back to where it was and raises
:class:`StorageFull` (no space) or :class:`StorageError`: the file is as before the call.
"""

from __future__ import annotations

import contextlib
import errno
import os
import zlib

from aiosrun.dsl.errors import AiosrunError

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class StorageError(AiosrunError):
    """A write failed; nothing of it was kept."""


class StorageFull(StorageError):
    pass


def refusal(path: object, exc: OSError) -> StorageError:
    """The error to show for a failed write of ``path``: a clear refusal, not a crash."""
    if exc.errno in _NO_SPACE:
        return StorageFull(f"{path}: no space left on device, nothing was recorded; free "
                           "some space, then `aiosrun resume` finishes what was started")
    return StorageError(f"{path}: cannot write ({exc.strerror or exc}), nothing was recorded")


def write_all(fd: int, payload: bytes) -> None:
    """Write every byte or raise ``OSError``; a zero-length write counts as a full disk."""
    view = memoryview(payload)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def append_all(fd: int, payload: bytes, size: int, path: object, *, sync: bool = False) -> None:
    """Append ``payload`` to the file open on ``fd`` (whose length is ``size``) in full, or
    cut it back to ``size`` and raise :class:`StorageError`."""
    try:
        write_all(fd, payload)
        if sync:
            os.fsync(fd)
    except OSError as exc:
        cut_back(fd, size)
        raise refusal(path, exc) from None


def cut_back(fd: int, size: int) -> None:
    """Drop what a failed write left past ``size`` (freeing blocks never needs space)."""
    with contextlib.suppress(OSError):  # nothing more to do; a reader cuts a torn tail
        os.ftruncate(fd, size)


def sign(text: str) -> str:
    """``text`` with its CRC32, so an edited line of a derived file is noticed."""
    return f"{text} #{zlib.crc32(text.encode('utf-8')):08x}"


def unsign(line: str) -> str | None:
    """The text of a line made by :func:`sign`, or None when it was altered."""
    text, sep, crc = line.rpartition(" #")
    if not sep or len(crc) != 8:
        return None
    try:
        expected = int(crc, 16)
    except ValueError:
        return None
    return text if zlib.crc32(text.encode("utf-8")) == expected else None
