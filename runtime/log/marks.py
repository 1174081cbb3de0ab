"""The marks of runs.idx's checkpointed prefix (seals, watermarks, clean closes), kept parsed.

Every command's open used to find and parse them in the whole prefix: on a workspace of
1,000,000 records, three byte searches over 5 MB and some 1,700 lines, 20 ms of each
``status`` or ``inbox``. ``runs.marks`` holds what that parse gives for the first ``size``
bytes of runs.idx (whose CRC32 it names), so an open parses only the marks written since.

It is derived and trusted only as far as it checks out: its own checksum (:func:`sign`), its
layout version, and the CRC32 of the runs.idx bytes it covers, computed by the open anyway
(runs.checkpoint's check). Missing, torn, altered, of another layout or of other bytes (a
rewritten index), it is ignored and written anew; an older aiosrun never reads it.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosrun.runtime.log.storage import sign, unsign

MARKS = "runs.marks"
_LAYOUT = 1


@dataclass
class Marks:
    """What parsing the marks of runs.idx's first ``size`` bytes (CRC32 ``crc``, ``lines``
    lines) from nothing gives."""

    size: int
    crc: int
    lines: int
    indexed_seq: int
    closed_seq: int
    seals: dict[str, tuple[int, int]]
    sealed_stat: dict[str, tuple[int, int, int]]
    hints: dict[str, tuple[list[int], list[int]]]


def load_marks(folder: Path) -> Marks | None:
    """The saved marks, or None when there are none that check out."""
    try:
        text = unsign((folder / MARKS).read_text("utf-8").rstrip("\n"))
        if text is None:
            return None
        obj: dict[str, Any] = json.loads(text)
        if obj.get("layout") != _LAYOUT:
            return None
        return Marks(
            int(obj["size"]), int(obj["crc"]), int(obj["lines"]), int(obj["indexed_seq"]),
            int(obj["closed_seq"]),
            {str(k): (int(v[0]), int(v[1])) for k, v in obj["seals"].items()},
            {str(k): (int(v[0]), int(v[1]), int(v[2])) for k, v in obj["sealed_stat"].items()},
            {str(k): ([int(s) for s in v[0]], [int(o) for o in v[1]])
             for k, v in obj["hints"].items()})
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None


def save_marks(folder: Path, marks: Marks) -> None:
    """Write them whole or not at all (a temporary file renamed over); a failure only costs
    the next open a parse."""
    body = json.dumps({"layout": _LAYOUT, "size": marks.size, "crc": marks.crc,
                       "lines": marks.lines, "indexed_seq": marks.indexed_seq,
                       "closed_seq": marks.closed_seq, "seals": marks.seals,
                       "sealed_stat": marks.sealed_stat, "hints": marks.hints},
                      separators=(",", ":"))
    path = folder / MARKS
    temporary = path.with_name(f".{MARKS}.{os.getpid()}.tmp")
    try:
        temporary.write_text(sign(body) + "\n", "utf-8")
        temporary.replace(path)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink()
