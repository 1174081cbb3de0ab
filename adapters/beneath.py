"""Opening files strictly beneath the workspace, for the ``files`` adapter.

A check of the resolved path followed by an ``open`` of the name leaves a window: a symlink
swapped in between leads the open outside. Here every component is opened relative to its
folder's descriptor with ``O_NOFOLLOW``, so nothing is resolved twice and no symlink is
followed at all; ``..`` and absolute paths are refused before anything is opened.

Writes (write, append, delete) are also refused in what runs or governs the workspace: its
adapters' code (the next ``validate`` imports it), ``aios.yaml`` (the http allow-list),
``.env``, ``playbooks/``, ``agents/``, ``.git/`` and aiosrun's own state, so an argument a
model wrote cannot plant code or open a door.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from .base import PermanentError

PROTECTED = frozenset({"adapters", "aios.yaml", ".env", "playbooks", "agents", ".git"})
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


def parts_of(relative: str) -> list[str]:
    """The components of a workspace-relative path; refuses absolute paths and ``..``."""
    if relative.startswith("/") or Path(relative).is_absolute():
        raise PermanentError(f"'{relative}': absolute paths are refused; give a path relative "
                             "to the workspace")
    parts = [part for part in relative.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise PermanentError(f"'{relative}' is outside the workspace; files stay inside it "
                             "('..' is refused)")
    if not parts or "\0" in relative:
        raise PermanentError(f"'{relative}' does not name a file in the workspace")
    return parts


def check_writable(parts: list[str], relative: str, state_dir: str) -> None:
    first = parts[0].casefold()
    if first == state_dir.casefold():
        raise PermanentError(f"'{relative}' is aiosrun's own state; playbooks cannot write it")
    if first in PROTECTED or first.startswith(".env"):
        raise PermanentError(f"'{relative}' is in {parts[0]}, which runs or governs the "
                             "workspace (code, settings, secrets, history); playbooks "
                             "cannot write, append to or delete it")


@contextlib.contextmanager
def parent_folder(root: Path, parts: list[str], relative: str, *,
                  create: bool) -> Iterator[int]:
    """A descriptor of the folder holding the last component, reached without following
    any symlink (and, with ``create``, making missing folders on the way)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in parts[:-1]:
            try:
                child = os.open(name, _DIRECTORY, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise PermanentError(f"'{relative}' does not exist") from None
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o755, dir_fd=fd)
                child = _open_folder(name, fd, relative)
            except OSError as exc:
                raise _refusal(relative, name, exc) from None
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _open_folder(name: str, fd: int, relative: str) -> int:
    try:
        return os.open(name, _DIRECTORY, dir_fd=fd)
    except OSError as exc:
        raise _refusal(relative, name, exc) from None


def _refusal(relative: str, name: str, exc: OSError) -> PermanentError:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        return PermanentError(f"'{relative}': '{name}' is a symlink or not a folder; files "
                              "never follows symlinks")
    if exc.errno == errno.ENOENT:
        return PermanentError(f"'{relative}' does not exist")
    return PermanentError(f"'{relative}': {exc.strerror or exc}")


def open_file(root: Path, parts: list[str], relative: str, flags: int,
              *, create_parents: bool = False) -> int:
    """Open the file itself (never a symlink in its place)."""
    with parent_folder(root, parts, relative, create=create_parents) as folder:
        try:
            return os.open(parts[-1], flags | os.O_NOFOLLOW, 0o644, dir_fd=folder)
        except OSError as exc:
            raise _refusal(relative, parts[-1], exc) from None


def read_bytes(root: Path, parts: list[str], relative: str) -> bytes:
    fd = open_file(root, parts, relative, os.O_RDONLY)
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def write_atomically(root: Path, parts: list[str], relative: str, data: bytes) -> None:
    """A temporary file beside the target, then a rename over it (a rename replaces a
    symlink there instead of following it)."""
    with parent_folder(root, parts, relative, create=True) as folder:
        temporary = f".{parts[-1]}.{os.getpid()}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644,
                     dir_fd=folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, parts[-1], src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=folder)
            raise


def delete(root: Path, parts: list[str], relative: str) -> bool:
    """Remove the entry (a symlink itself, never what it points to); False if absent."""
    try:
        with parent_folder(root, parts, relative, create=False) as folder:
            os.unlink(parts[-1], dir_fd=folder)
            return True
    except FileNotFoundError:
        return False
    except PermanentError as exc:
        if "does not exist" in str(exc):
            return False
        raise
    except OSError as exc:
        raise _refusal(relative, parts[-1], exc) from None
