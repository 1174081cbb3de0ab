"""LoCoMo conversations as memory items and evidence-retrieval questions.

The construction is the held-out measure of ``../shared/memory-eval/README.md``, reproduced
exactly so that figures on the development split compare with the held-out ones: one domain
per conversation, one ``episodic`` item per turn (id ``c<file>-<dia_id>``, text
``"<speaker>: <text>"`` plus ``" [shares <caption>]"``, metadata ``{"when": <session
date>}``), and one question per QA entry with ``category != 5`` and a non-empty evidence
list. ``aiosrun memory eval`` reads the same files.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosrun.runtime.memory.shard import MemoryItem

SESSION = re.compile(r"session_(\d+)")
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}


@dataclass(frozen=True)
class Question:
    query: str
    evidence: tuple[str, ...]
    domain: str
    category: int


@dataclass(frozen=True)
class Conversation:
    name: str
    domain: str
    items: tuple[MemoryItem, ...]
    questions: tuple[Question, ...]


class LocomoFormatError(ValueError):
    """A file that is not a LoCoMo conversation (the message says where)."""


def load(path: Path) -> Conversation:
    """One LoCoMo file (``{"conversation": ..., "qa": ...}``, or the conversation's keys at
    the top level beside ``qa``)."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise LocomoFormatError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("qa"), list):
        raise LocomoFormatError(f"{path}: expected a LoCoMo object with a `qa` list")
    conversation = data.get("conversation", data)
    name = path.stem
    domain = "c" + re.sub(r"[^a-z0-9_-]", "-", name.lower())
    items: list[MemoryItem] = []
    for key in sorted((k for k in conversation if SESSION.fullmatch(k)),
                      key=lambda k: int(k.split("_")[1])):
        when = str(conversation.get(f"{key}_date_time", ""))
        for turn in conversation[key] if isinstance(conversation[key], list) else [None]:
            if not isinstance(turn, dict) or "dia_id" not in turn:
                raise LocomoFormatError(f"{path}: {key}: a turn without `dia_id`")
            text = f"{turn.get('speaker', '')}: {turn.get('text', '')}"
            if turn.get("blip_caption"):
                text += f" [shares {turn['blip_caption']}]"
            items.append(MemoryItem(id=f"c{name}-{turn['dia_id']}", domain=domain, text=text,
                                    layer="episodic", metadata={"when": when},
                                    time=session_millis(when)))
    try:
        questions = [Question(str(q["question"]), tuple(f"c{name}-{e}" for e in q["evidence"]),
                              domain, int(q["category"]))
                     for q in data["qa"] if isinstance(q, dict) and q.get("category") != 5
                     and isinstance(q.get("evidence"), list) and q["evidence"] and "question" in q]
    except (KeyError, TypeError, ValueError) as exc:
        raise LocomoFormatError(f"{path}: a `qa` entry without a usable `category` "
                                f"({exc})") from None
    return Conversation(name, domain, tuple(items), tuple(questions))


def session_millis(when: str) -> int:
    """``7:48 pm on 21 May, 2023`` as epoch milliseconds (UTC); 0 when it does not parse.
    The item's ``time`` is the moment it was said, as for any remembered item."""
    try:
        moment = dt.datetime.strptime(when.strip(), "%I:%M %p on %d %B, %Y")
    except ValueError:
        return 0
    return int(moment.replace(tzinfo=dt.UTC).timestamp() * 1000)


def load_all(paths: Sequence[Path]) -> list[Conversation]:
    """Every ``*.json`` in the folders given, and the files given."""
    files: list[Path] = []
    for path in paths:
        files += sorted(path.glob("*.json")) if path.is_dir() else [path]
    return [load(f) for f in files]


def is_locomo(path: Path) -> bool:
    """Whether ``aiosrun memory eval`` was given LoCoMo data rather than a qrels file."""
    if path.is_dir():
        return True
    if path.suffix != ".json":
        return False
    try:
        data: Any = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and "qa" in data
