"""Redaction of forgotten texts in the event log: real segments, two processes' logs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from aiosrun.runtime.log.eventlog import EventLog, NewEvent
from aiosrun.runtime.log.redaction import redact

TEXT = "Ada keeps the vault code 4471 in her notebook"

WRITER = """
import sys
from pathlib import Path
from aiosrun.runtime.log.eventlog import EventLog, NewEvent
log = EventLog(Path(sys.argv[1]), segment_bytes=int(sys.argv[2])).open()
for i in range(int(sys.argv[3])):
    log.append(NewEvent("Note", {"i": i, "text": "after the redaction"}, run="r1"))
log.close()
"""


def test_a_redacted_log_keeps_seq_checksums_and_other_writers(tmp_path: Path) -> None:
    folder = tmp_path / "log"
    writer = EventLog(folder, segment_bytes=2_000).open()  # small segments: several files
    for i in range(40):
        text = TEXT if i % 7 == 0 else f"note {i}"
        writer.append(NewEvent("Note", {"i": i, "text": text, "hits": [{"text": text}],
                                        f"{text}": "as a key too"}, run="r1"))
    assert len(writer.segments()) > 2
    other = EventLog(folder, segment_bytes=2_000).open()
    assert redact(other, [TEXT]) == 6
    other.close()
    writer.append(NewEvent("Note", {"i": 40, "text": "this process goes on"}, run="r1"))
    subprocess.run([sys.executable, "-c", WRITER, str(folder), "2000", "5"], check=True,
                   timeout=60)
    writer.close()
    for path in folder.rglob("*"):
        assert TEXT.encode() not in path.read_bytes(), path
    records = list(EventLog(folder).open().read())
    assert [r.seq for r in records] == list(range(1, 47))  # every CRC checked on the way
    assert records[7].data["hits"] == [{"text": "[forgotten]"}]
    assert records[8].data["text"] == "note 8"
    reopened = EventLog(folder).open()
    assert [r.seq for r in reopened.read()] == list(range(1, 47))
    assert redact(reopened, ["short"]) == 0  # too short to be told from other words
    reopened.close()


REDACTOR = """
import os, signal, sys
from pathlib import Path
from aiosrun.runtime.log.eventlog import EventLog
from aiosrun.runtime.log.redaction import redact
replace = os.replace
def committing(src, dst):
    replace(src, dst)
    if str(dst).endswith("rewrite.commit"):
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = committing
redact(EventLog(Path(sys.argv[1]), segment_bytes=2000).open(), [sys.argv[2]])
"""


def test_a_writer_that_appends_after_a_redactor_died_keeps_its_records(tmp_path: Path) -> None:
    folder = tmp_path / "log"
    writer = EventLog(folder, segment_bytes=100_000).open()  # one segment, held open
    for i in range(10):
        writer.append(NewEvent("Note", {"i": i, "text": TEXT if i % 3 == 0 else "plain"},
                               run="r1"))
    killed = subprocess.run([sys.executable, "-c", REDACTOR, str(folder), TEXT], timeout=60)
    assert killed.returncode == -9 and (folder / "rewrite.commit").exists()
    for i in range(10, 13):  # to the old file: the dead redactor never replaced it
        writer.append(NewEvent("Note", {"i": i, "text": "after the crash"}, run="r1"))
    writer.close()
    reopened = EventLog(folder).open()  # finishes the rewrite, carrying the three over
    records = list(reopened.read())
    assert [r.data["i"] for r in records] == list(range(13))
    assert [r.seq for r in records] == list(range(1, 14))
    assert records[3].data["text"] == "[forgotten]" and records[12].data["text"] == \
        "after the crash"
    assert not (folder / "rewrite.commit").exists()
    reopened.close()
    for path in folder.rglob("*"):
        assert TEXT.encode() not in path.read_bytes(), path
    assert [r.seq for r in EventLog(folder).open().read()] == list(range(1, 14))
