"""One memory shard per domain: a journal, a Tantivy index and a usearch index, kept in step.

``.aios/memory/DOMAIN/`` holds

- ``journal.jsonl``: the durable record of the items (``add`` and ``drop`` lines). It is
  written and fsynced first; the two indexes are derived from it.
- ``tantivy/``: text (BM25, English stemming), id, layer, source, metadata, time, and the
  item's integer ``key``, which is also its key in
- ``vectors.usearch``: the item's embedding (unit length, inner product: cosine; bf16).
- ``state.json``: how far into the journal both indexes are (``offset``), the next key and
  the embedder's fingerprint, replaced atomically after both indexes are saved.

A crash anywhere leaves the indexes at or ahead of ``state.json``; opening the shard replays
the journal from ``offset``, and replaying is idempotent (an add deletes the id first), so
the two indexes never disagree for long enough to be seen. ``forget`` erases for good: it
rewrites the journal without the items, rebuilds the Tantivy index (so no segment keeps the
text) and copies the remaining vectors into a new usearch index; ``forget.pending`` makes a
crash in the middle finish the job at the next open. Writers hold an exclusive ``flock``;
readers do not lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from aiosrun.runtime.memory.embedders import Embedder

LAYERS = ("working", "episodic", "knowledge")
BATCH = 4096
SCHEMA = 2  # 2: facts (``fact``, ``valid_to``); an index of an older schema is made again
OPEN = 2**62  # ``valid_to`` of a fact nothing superseded yet


@dataclass(frozen=True)
class MemoryItem:
    id: str
    domain: str
    text: str
    layer: str = "knowledge"
    metadata: Mapping[str, Any] = field(default_factory=dict)
    time: int = 0  # epoch milliseconds
    source: str = ""
    key: str | None = None  # a fact's key: a later item with the same key supersedes it
    valid_to: int | None = None  # derived: when a later item with the key superseded it

    def to_json(self) -> dict[str, Any]:
        # by hand: dataclasses.asdict deep-copies every value (a tenth of a bulk add)
        data = {"id": self.id, "domain": self.domain, "text": self.text, "layer": self.layer,
                "metadata": dict(self.metadata), "time": self.time, "source": self.source}
        if self.key is not None:
            data["key"] = self.key
        return data


@dataclass
class Ranked:
    """One retriever's hit in a shard."""

    key: int
    score: float


class Shard:
    def __init__(self, folder: Path, domain: str, embedder: Embedder) -> None:
        self.folder = folder
        self.domain = domain
        self.embedder = embedder
        folder.mkdir(parents=True, exist_ok=True)
        self.journal = folder / "journal.jsonl"
        self.state_path = folder / "state.json"
        self.vectors_path = folder / "vectors.usearch"
        self.pending_path = folder / "forget.pending"
        self.state: dict[str, Any] = {}
        self._state_mtime = 0.0
        self._index: Any = None
        self._schema: Any = None
        self._vectors: Any = None
        self._closed: set[int] | None = None
        self._recent: dict[int, Any] = {}  # key -> document of the last BM25 hits
        with self.locked():
            self._load()
            self._recover()

    # ---- opening and recovery ---------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        fd = os.open(self.folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _load(self) -> None:
        import tantivy

        try:
            self.state = json.loads(self.state_path.read_text("utf-8"))
            self._state_mtime = self.state_path.stat().st_mtime
        except (OSError, ValueError):
            self.state = {"offset": 0, "next_key": 1, "embedder": None, "schema": SCHEMA}
        self._schema = _schema()
        self._closed = None
        self._recent = {}
        if self.state.get("schema", 1) != SCHEMA:
            import shutil

            shutil.rmtree(self.folder / "tantivy", ignore_errors=True)
        (self.folder / "tantivy").mkdir(exist_ok=True)
        self._index = tantivy.Index(self._schema, path=str(self.folder / "tantivy"))
        self._vectors = self._open_vectors()

    def _open_vectors(self) -> Any:
        index = self._fresh_vectors()
        if self.vectors_path.exists() and self.state.get("embedder") == self.embedder.fingerprint:
            index.load(str(self.vectors_path))
        return index

    def _recover(self) -> None:
        if self.state.get("schema", 1) != SCHEMA:
            self.state["schema"] = SCHEMA  # the index was dropped in _load: made again
            self._cut_torn_tail()
            self._reindex(list(self._read_journal()), reuse_vectors=True)
        if self.pending_path.exists():
            ids = set(json.loads(self.pending_path.read_text("utf-8"))["ids"])
            self._erase(ids)
            self.pending_path.unlink()
        if self.state.get("embedder") not in (None, self.embedder.fingerprint):
            self.rebuild()  # another embedder: every vector is made again
            return
        size = self._cut_torn_tail()
        if size > self.state["offset"]:
            self._replay(size)
        elif self.state.get("embedder") is None:
            self._save_state(size)

    def _cut_torn_tail(self) -> int:
        """A write that a crash cut short never returned: its bytes are dropped, so the next
        append starts on a line of its own."""
        if not self.journal.exists():
            return 0
        with self.journal.open("r+b") as journal:
            size = journal.seek(0, os.SEEK_END)
            if size == 0:
                return 0
            journal.seek(max(0, size - 1))
            if journal.read(1) == b"\n":
                return size
            data = self.journal.read_bytes()
            end = data.rfind(b"\n") + 1
            journal.truncate(end)
            journal.flush()
            os.fsync(journal.fileno())
            return end

    def refresh(self) -> None:
        """Pick up what another process wrote since this shard was loaded."""
        try:
            mtime = self.state_path.stat().st_mtime
        except OSError:
            return
        if mtime != self._state_mtime:
            with self.locked():
                self._load()
                self._recover()
        self._index.reload()

    # ---- the journal -------------------------------------------------------------------

    def _read_journal(self, offset: int = 0) -> Iterator[dict[str, Any]]:
        if not self.journal.exists():
            return
        with self.journal.open("rb") as source:
            source.seek(offset)
            for line in source:
                if not line.endswith(b"\n"):
                    break  # a torn last line: its write never returned, nothing to apply
                yield json.loads(line)

    def _append(self, entries: Sequence[dict[str, Any]]) -> int:
        data = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries).encode()
        self._cut_torn_tail()
        fd = os.open(self.journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
            return os.fstat(fd).st_size
        finally:
            os.close(fd)

    # ---- applying entries to both indexes ------------------------------------------------

    def _apply(self, entries: list[dict[str, Any]], size: int, *, replay: bool = False) -> None:
        """Apply journal entries to Tantivy (committed first), then the vectors and the
        state. ``replay``: a writer died after the journal's fsync, perhaps after Tantivy's
        commit too; then the ids' earlier keys are no longer in Tantivy, so every vector
        Tantivy does not hold is dropped before the vectors are saved."""
        import tantivy

        adds = [e for e in entries if e["op"] == "add"]
        dropped = {i for e in entries if e["op"] == "drop" for i in e["ids"]}
        ids = [e["item"]["id"] for e in adds] + sorted(dropped)
        old_keys = self._keys_of(ids)
        writer = self._index.writer(heap_size=128_000_000, num_threads=1)
        for item_id in ids:
            writer.delete_documents_by_term("id", item_id)
        last: dict[str, dict[str, Any]] = {}
        for entry in adds:
            last[entry["item"]["id"]] = entry  # a later add of the same id wins
        final = [e for e in last.values() if e["item"]["id"] not in dropped or
                 _added_after_drop(entries, e)]
        closes = self._superseded(final)
        for entry in final:
            writer.add_document(_document(tantivy, entry, closes.pop(entry["item"]["id"], OPEN)))
        for item_id, (entry, valid_to) in closes.items():
            writer.delete_documents_by_term("id", item_id)
            writer.add_document(_document(tantivy, entry, valid_to))
        writer.commit()
        writer.wait_merging_threads()
        stale = [k for k in old_keys if self._vectors.contains(k)]
        fresh = [e["key"] for e in final if self._vectors.contains(e["key"])]
        for key in {*stale, *fresh}:
            self._vectors.remove(key)
        for start in range(0, len(final), BATCH):
            chunk = final[start:start + BATCH]
            vectors = _unit(self.embedder.embed([e["item"]["text"] for e in chunk]))
            self._vectors.add(np.array([e["key"] for e in chunk], dtype=np.uint64), vectors)
        if replay:
            self._drop_vectors_of_no_document()
        self._save_vectors()
        self.state["next_key"] = max([self.state["next_key"],
                                      *(e["key"] + 1 for e in adds)])
        self._save_state(size)
        self._index.reload()
        self._closed = None
        self._recent = {}

    def _drop_vectors_of_no_document(self) -> None:
        import tantivy

        self._index.reload()
        searcher = self._index.searcher()
        total = searcher.num_docs
        hits = searcher.search(tantivy.Query.all_query(), limit=total).hits if total else []
        held = {int(searcher.doc(address)["key"][0]) for _, address in hits}
        orphans = [int(k) for k in self._vectors.keys if int(k) not in held]
        for key in orphans:
            self._vectors.remove(key)

    def _superseded(self, final: list[dict[str, Any]]) -> dict[str, Any]:
        """For a batch of adds: the ``valid_to`` of each fact it supersedes. Values are
        ``valid_to`` for items of the batch, ``(entry, valid_to)`` for items already in
        the index (they are written again, closed)."""
        import tantivy

        out: dict[str, Any] = {}
        current: dict[str, str] = {}  # fact key -> the batch's latest id with it
        for entry in final:
            item = entry["item"]
            fact = item.get("key")
            if not fact:
                continue
            since = int(item.get("time", 0))
            if fact in current:
                out[current[fact]] = since
            else:
                searcher = self._index.searcher()
                query = tantivy.Query.boolean_query([
                    (tantivy.Occur.Must, tantivy.Query.term_query(self._schema, "fact", fact)),
                    (tantivy.Occur.Must, tantivy.Query.range_query(
                        self._schema, "valid_to", tantivy.FieldType.Integer, OPEN, OPEN))])
                for _, address in searcher.search(query, limit=16).hits:
                    doc = searcher.doc(address)
                    if doc["id"][0] != item["id"]:
                        out[doc["id"][0]] = (_entry_of(doc), since)
            current[fact] = item["id"]
        return out

    def closed(self) -> set[int]:
        """Keys of the facts a later one superseded (kept, for ``as_of``)."""
        import tantivy

        if self._closed is None:
            searcher = self._index.searcher()
            query = tantivy.Query.range_query(self._schema, "valid_to",
                                              tantivy.FieldType.Integer, -(2**62), OPEN - 1)
            result = searcher.search(query, limit=max(1, searcher.num_docs))
            self._closed = {int(searcher.doc(a)["key"][0]) for _, a in result.hits}
        return self._closed

    def _keys_of(self, ids: Sequence[str]) -> list[int]:
        import tantivy

        if not ids:
            return []
        self._index.reload()
        searcher = self._index.searcher()
        keys = []
        for start in range(0, len(ids), 1024):
            query = tantivy.Query.term_set_query(self._schema, "id", list(ids[start:start + 1024]))
            result = searcher.search(query, limit=max(1, 4 * len(ids[start:start + 1024])))
            keys += [searcher.doc(address)["key"][0] for _, address in result.hits]
        return keys

    def _save_vectors(self) -> None:
        temporary = self.vectors_path.with_suffix(".tmp")
        self._vectors.save(str(temporary))
        os.replace(temporary, self.vectors_path)

    def _save_state(self, offset: int) -> None:
        self.state["offset"] = offset
        self.state["embedder"] = self.embedder.fingerprint
        self.state.setdefault("schema", SCHEMA)
        temporary = self.state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.state), "utf-8")
        os.replace(temporary, self.state_path)
        self._state_mtime = self.state_path.stat().st_mtime

    # ---- writing -------------------------------------------------------------------------

    def add(self, items: Sequence[MemoryItem]) -> None:
        with self.locked():
            self._catch_up()
            key = self.state["next_key"]
            entries = []
            for item in items:
                entries.append({"op": "add", "key": key, "item": item.to_json()})
                key += 1
            size = self._append(entries)
            self._apply(entries, size)

    def drop(self, ids: Sequence[str]) -> None:
        """Remove items from the indexes (working memory at the end of its run); the
        journal keeps a ``drop`` line, so this is not an erasure (see :meth:`forget`)."""
        if not ids:
            return
        with self.locked():
            self._catch_up()
            entry = {"op": "drop", "ids": list(ids)}
            self._apply([entry], self._append([entry]))

    def texts(self, ids: Iterable[str]) -> list[str]:
        """Every text the journal holds for these ids (each version of an upserted item)."""
        wanted = set(ids)
        if not wanted:
            return []
        return list(dict.fromkeys(e["item"]["text"] for e in self._read_journal()
                                  if e["op"] == "add" and e["item"]["id"] in wanted))

    def holding(self, scrubber: Any) -> list[MemoryItem]:
        """The live items of which some version (the journal keeps each) holds a copy of a
        forgotten text in its text or metadata (``scrubber``:
        :class:`aiosrun.runtime.log.scrub.Scrubber`), as the index has them now."""
        if not self.journal.exists():
            return []
        found: set[str] = set()
        with self.journal.open("rb") as source:
            for line in source:
                if line.endswith(b"\n") and scrubber.may_hold(line):
                    entry = json.loads(line)
                    item = entry.get("item") or {}
                    if entry["op"] == "add" and scrubber.holds(
                            {"text": item.get("text", ""), "metadata": item.get("metadata")}):
                        found.add(item["id"])
        return list(self.items(self._keys_of(sorted(found))).values())

    def forget(self, ids: Iterable[str]) -> int:
        wanted = set(ids)
        if not wanted:
            return 0
        with self.locked():
            self._catch_up()
            present = len(set(self._keys_of(sorted(wanted))))
            journal = list(self._read_journal())
            mentioned = wanted & {e["item"]["id"] for e in journal if e["op"] == "add"}
            if not mentioned:
                return 0
            temporary = self.pending_path.with_suffix(".tmp")
            temporary.write_text(json.dumps({"ids": sorted(mentioned)}), "utf-8")
            os.replace(temporary, self.pending_path)
            self._erase(mentioned, journal)
            self.pending_path.unlink()
            return present

    def _erase(self, ids: set[str], journal: list[dict[str, Any]] | None = None) -> None:
        if journal is None:
            journal = list(self._read_journal())
        kept = [e for e in journal if not (e["op"] == "add" and e["item"]["id"] in ids)]
        kept = [e if e["op"] != "drop" else {"op": "drop",
                                             "ids": [i for i in e["ids"] if i not in ids]}
                for e in kept]
        kept = [e for e in kept if e["op"] != "drop" or e["ids"]]
        temporary = self.journal.with_suffix(".tmp")
        with temporary.open("w", encoding="utf-8") as out:
            for entry in kept:
                out.write(json.dumps(entry, ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.journal)
        self._reindex(kept, reuse_vectors=True)

    def rebuild(self) -> None:
        """Both indexes made again from the journal (every vector embedded anew)."""
        self._vectors = self._fresh_vectors()
        self._reindex(list(self._read_journal()), reuse_vectors=False)

    def _fresh_vectors(self) -> Any:
        """An empty usearch index. Inner product on unit vectors (:func:`_unit`) ranks as
        cosine does, and its kernel skips the two norms: HNSW insertion, mostly distance
        computations, took 0.79 of the time (measured at 100,000 items, recall unchanged).
        A file saved with ``cos`` loads with ``cos`` (usearch keeps the file's metric),
        which ranks the same unit vectors the same way."""
        from usearch.index import Index

        return Index(ndim=self.embedder.dim, metric="ip", dtype="bf16",
                     expansion_add=64, expansion_search=256)

    def _reindex(self, entries: list[dict[str, Any]], reuse_vectors: bool) -> None:
        import tantivy

        live: dict[str, dict[str, Any]] = {}
        for entry in entries:
            if entry["op"] == "add":
                live[entry["item"]["id"]] = entry
            else:
                for item_id in entry["ids"]:
                    live.pop(item_id, None)
        valid_to: dict[str, int] = {}
        current: dict[str, str] = {}
        for entry in entries:  # journal order: a later add with a fact's key supersedes
            if entry["op"] != "add" or not entry["item"].get("key"):
                continue
            item = entry["item"]
            previous = current.get(item["key"])
            if previous is not None and previous != item["id"] and previous in live:
                valid_to[previous] = int(item.get("time", 0))
            valid_to.pop(item["id"], None)
            current[item["key"]] = item["id"]
        writer = self._index.writer(heap_size=128_000_000, num_threads=1)
        writer.delete_all_documents()
        for entry in live.values():
            writer.add_document(_document(tantivy, entry,
                                          valid_to.get(entry["item"]["id"], OPEN)))
        writer.commit()
        writer.wait_merging_threads()
        self._index.writer(heap_size=15_000_000, num_threads=1).garbage_collect_files()
        old, fresh = self._vectors, self._fresh_vectors()
        rows = list(live.values())
        for start in range(0, len(rows), BATCH):
            chunk = rows[start:start + BATCH]
            keys = np.array([e["key"] for e in chunk], dtype=np.uint64)
            if reuse_vectors and all(old.contains(int(k)) for k in keys):
                vectors = _unit(old.get(keys))
            else:
                vectors = _unit(self.embedder.embed([e["item"]["text"] for e in chunk]))
            fresh.add(keys, vectors)
        self._vectors = fresh
        self._save_vectors()
        size = self.journal.stat().st_size if self.journal.exists() else 0
        self.state["next_key"] = max([self.state.get("next_key", 1),
                                      *(e["key"] + 1 for e in rows)])
        self._save_state(size)
        self._index.reload()
        self._closed = None
        self._recent = {}

    def _catch_up(self) -> None:
        size = self._cut_torn_tail()
        try:
            on_disk = json.loads(self.state_path.read_text("utf-8"))
        except (OSError, ValueError):
            on_disk = self.state
        if on_disk.get("offset") != self.state.get("offset") or \
                on_disk.get("next_key") != self.state.get("next_key"):
            self._load()
        if size > self.state["offset"]:
            self._replay(size)

    def _replay(self, size: int) -> None:
        """Apply what the journal holds past ``state.json``: a writer died after its fsync.
        Tantivy files that writer wrote but never committed are removed first: the replay
        makes the same deletions at the same opstamp, so it would name a ``.del`` file the
        same and fail on it (``FileAlreadyExists``) at every open."""
        self._index.writer(heap_size=15_000_000, num_threads=1).garbage_collect_files()
        self._apply(list(self._read_journal(self.state["offset"])), size, replay=True)

    # ---- reading -------------------------------------------------------------------------

    def live_ids(self) -> list[str]:
        import tantivy

        searcher = self._index.searcher()
        total = searcher.num_docs
        if not total:
            return []
        result = searcher.search(tantivy.Query.all_query(), limit=total)
        return [searcher.doc(address)["id"][0] for _, address in result.hits]

    def count(self) -> int:
        return int(self._index.searcher().num_docs)

    def bm25(self, query: str, limit: int, layer: str | None,
             filters: Mapping[str, Any]) -> list[Ranked]:
        import tantivy

        words = " ".join(w for w in _query_words(query))
        if not words:
            return []
        text_query = self._index.parse_query(words, ["text"])
        filters = self._current(filters)
        clauses = [(tantivy.Occur.Must, text_query),
                   *((tantivy.Occur.Must, q) for q in self._filter_queries(layer, filters))]
        combined = tantivy.Query.boolean_query(clauses) if len(clauses) > 1 else text_query
        searcher = self._index.searcher()
        result = searcher.search(combined, limit=limit)
        docs = [(searcher.doc(a), float(s)) for s, a in result.hits]
        # the hits' documents are read anyway: kept for :meth:`items` of the same search
        self._recent = {int(doc["key"][0]): doc for doc, _ in docs}
        return [Ranked(int(doc["key"][0]), score) for doc, score in docs]

    def vector(self, query_vector: np.ndarray, limit: int, layer: str | None,
               filters: Mapping[str, Any]) -> list[Ranked]:
        if len(self._vectors) == 0:
            return []
        query_vector = _unit(query_vector)
        if layer is None and not filters:
            closed = self.closed()  # superseded facts: asked for more, then left out
            # one query: no thread pool to wake (on a loaded machine that wait cost more
            # than the search itself)
            found = self._vectors.search(query_vector,
                                         min(limit + len(closed), len(self._vectors)),
                                         threads=1)
            return [Ranked(int(k), 1.0 - float(d)) for k, d in zip(found.keys, found.distances,
                                                                 strict=False)
                    if d < 1.0 and int(k) not in closed][:limit]
        filters = self._current(filters)
        allowed = self.filtered_keys(layer, filters)
        if not allowed:
            return []
        keys = np.array(allowed, dtype=np.uint64)
        vectors = np.asarray(self._vectors.get(keys), dtype=np.float32)
        scores = vectors @ query_vector
        order = np.argsort(-scores)[:limit]
        return [Ranked(int(keys[i]), float(scores[i])) for i in order if scores[i] > 0]

    def _current(self, filters: Mapping[str, Any]) -> Mapping[str, Any]:
        """Only facts valid now, unless ``as_of`` asks for another moment."""
        if "as_of" in filters or not self.closed():
            return filters
        return {**filters, "as_of": None}

    def filtered_keys(self, layer: str | None, filters: Mapping[str, Any]) -> list[int]:
        import tantivy

        queries = self._filter_queries(layer, filters)
        query = queries[0] if len(queries) == 1 else tantivy.Query.boolean_query(
            [(tantivy.Occur.Must, q) for q in queries])
        searcher = self._index.searcher()
        result = searcher.search(query, limit=max(1, searcher.num_docs))
        return [int(searcher.doc(a)["key"][0]) for _, a in result.hits]

    def _filter_queries(self, layer: str | None, filters: Mapping[str, Any]) -> list[Any]:
        import tantivy

        queries = []
        if layer:
            queries.append(tantivy.Query.term_query(self._schema, "layer", layer))
        for name, value in filters.items():
            if name == "as_of":
                moment = OPEN - 1 if value is None else _millis(value)
                queries.append(tantivy.Query.range_query(
                    self._schema, "valid_to", tantivy.FieldType.Integer, moment + 1, OPEN))
                if value is not None:
                    queries.append(tantivy.Query.range_query(
                        self._schema, "time", tantivy.FieldType.Integer, -(2**62), moment))
            elif name in ("since", "until"):
                bound = _millis(value)
                low, high = (bound, 2**62) if name == "since" else (-(2**62), bound)
                queries.append(tantivy.Query.range_query(
                    self._schema, "time", tantivy.FieldType.Integer, low, high))
            elif name == "source":
                queries.append(tantivy.Query.term_query(self._schema, "source", str(value)))
            else:
                literal = json.dumps(value if isinstance(value, str) else json.dumps(value))
                queries.append(self._index.parse_query(f"metadata.{_field(name)}:{literal}",
                                                       ["text"]))
        return queries

    def items(self, keys: Sequence[int]) -> dict[int, MemoryItem]:
        import tantivy

        if not keys:
            return {}
        recent = self._recent
        docs = [recent[k] for k in keys if k in recent]
        rest = [k for k in keys if k not in recent]
        if rest:
            searcher = self._index.searcher()
            result = searcher.search(tantivy.Query.term_set_query(self._schema, "key", rest),
                                     limit=len(rest))
            docs += [searcher.doc(address) for _, address in result.hits]
        out = {}
        for doc in docs:
            out[int(doc["key"][0])] = MemoryItem(
                id=doc["id"][0], domain=self.domain, text=doc["text"][0],
                layer=doc["layer"][0], metadata=(doc["metadata"] or [{}])[0],
                time=int(doc["time"][0]), source=(doc["source"] or [""])[0],
                key=(doc["fact"] or [None])[0] or None,
                valid_to=_valid_to(doc))
        return out

    def layer_counts(self) -> dict[str, int]:
        import tantivy

        searcher = self._index.searcher()
        return {layer: int(searcher.search(
            tantivy.Query.term_query(self._schema, "layer", layer), limit=1).count)
            for layer in LAYERS}

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())


def _unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (the embedders' own are already; a zero row stays zero), so
    the index's inner product is their cosine."""
    rows = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    unit: np.ndarray = rows / np.where(norms == 0, 1.0, norms)
    return unit


def _added_after_drop(entries: list[dict[str, Any]], add: dict[str, Any]) -> bool:
    """In one batch, whether ``add`` comes after the last drop of its id."""
    position = entries.index(add)
    return not any(e["op"] == "drop" and add["item"]["id"] in e["ids"]
                   for e in entries[position + 1:])


def _schema() -> Any:
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", stored=True, tokenizer_name="raw")
    builder.add_integer_field("key", stored=True, indexed=True, fast=True)
    builder.add_text_field("text", stored=True, tokenizer_name="en_stem")
    builder.add_text_field("layer", stored=True, tokenizer_name="raw")
    builder.add_text_field("source", stored=True, tokenizer_name="raw")
    builder.add_json_field("metadata", stored=True, tokenizer_name="raw")
    builder.add_integer_field("time", stored=True, indexed=True, fast=True)
    builder.add_text_field("fact", stored=True, tokenizer_name="raw")
    builder.add_integer_field("valid_to", stored=True, indexed=True, fast=True)
    return builder.build()


def _document(tantivy: Any, entry: dict[str, Any], valid_to: int = OPEN) -> Any:
    item = entry["item"]
    return tantivy.Document(id=item["id"], key=int(entry["key"]), text=item["text"],
                            layer=item.get("layer", "knowledge"),
                            source=item.get("source") or "",
                            metadata=dict(item.get("metadata") or {}),
                            time=int(item.get("time", 0)), fact=item.get("key") or "",
                            valid_to=int(valid_to))


def _entry_of(doc: Any) -> dict[str, Any]:
    """A journal entry again from an indexed document (to write it again, closed)."""
    return {"op": "add", "key": int(doc["key"][0]), "item": {
        "id": doc["id"][0], "text": doc["text"][0], "layer": doc["layer"][0],
        "source": (doc["source"] or [""])[0], "metadata": (doc["metadata"] or [{}])[0],
        "time": int(doc["time"][0]), "key": (doc["fact"] or [""])[0]}}


def _valid_to(doc: Any) -> int | None:
    found = doc["valid_to"]
    return None if not found or int(found[0]) >= OPEN else int(found[0])


def _query_words(query: str) -> list[str]:
    """Query text as plain lower-case words: no query syntax reaches Tantivy's parser. Stop
    words are left out unless the query has nothing else: in a question (``what did Ada
    say about ...``) they match almost every item and push the evidence down (measured on
    LoCoMo: BM25 recall@5 0.475 with them, 0.526 without)."""
    from aiosrun.runtime.memory.embedders import STOP_WORDS, WORD

    words = WORD.findall(query.lower())
    content = [w for w in words if w not in STOP_WORDS]
    return content or words


def _field(name: str) -> str:
    if not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"filter names are letters, digits, '_' and '-': {name!r}")
    return name


def _millis(value: Any) -> int:
    if isinstance(value, (int, float)):
        return int(value)
    import datetime as dt

    moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)
