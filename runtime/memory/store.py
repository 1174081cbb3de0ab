"""The workspace's hybrid memory: shards per domain, fused search, episodes and knowledge.

Search runs BM25 (Tantivy) and vector search (usearch) in each domain asked for and fuses
the two ranked lists (:mod:`aiosrun.runtime.memory.fusion`: min-max normalized scores,
weighted per embedder, plus what the query names: people and dates). ``memory.fusion`` in
``aios.yaml`` sets the method and the weights; ``aiosrun memory eval`` measures them.

Two layers are projections of other records, caught up whenever the store opens:
``episodic`` items come from the event log (one per finished run, idempotent by run id)
and ``knowledge`` items from ``knowledge/**/*.md`` (chunked by heading, re-indexed when a
file's content hash changes).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aiosrun.runtime.log.scrub import PLACEHOLDER, Scrubber
from aiosrun.runtime.memory.embedders import Embedder, make_embedder
from aiosrun.runtime.memory.fusion import METHODS, Fusion, fuse
from aiosrun.runtime.memory.shard import LAYERS, MemoryItem, Ranked, Shard

DEFAULT_DOMAINS = ("customers", "products", "finances", "operations")
MODES = ("hybrid", "bm25", "vector")


class MemoryRequestError(Exception):
    """A memory request that cannot be served (unknown domain, layer or mode)."""


@dataclass(frozen=True)
class Hit:
    item: MemoryItem
    score: float
    found_by: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.item.id, "text": self.item.text, "score": round(self.score, 6),
                "domain": self.item.domain, "layer": self.item.layer,
                "metadata": dict(self.item.metadata), "time": _stamp(self.item.time),
                "source": self.item.source, "found_by": list(self.found_by),
                **({"key": self.item.key, "valid_from": _stamp(self.item.time),
                    "valid_to": _stamp(self.item.valid_to) if self.item.valid_to else None}
                   if self.item.key else {})}


class MemoryStore:
    def __init__(self, folder: Path, embedder: Embedder, domains: Sequence[str],
                 fusion: Fusion | None = None,
                 mask: Callable[[Any], Any] | None = None) -> None:
        self.folder = folder
        self.embedder = embedder
        self.domains = tuple(domains)
        self.fusion = fusion or default_fusion(embedder)
        self.mask = mask or (lambda value: value)  # secrets never reach the journal
        self._shards: dict[str, Shard] = {}
        # set by open_store: takes forgotten texts out of the rest of the workspace
        self.erasure: Any = None

    def shard(self, domain: str) -> Shard:
        if domain not in self.domains:
            raise MemoryRequestError(f"unknown memory domain '{domain}' (domains: "
                               f"{', '.join(self.domains)})")
        found = self._shards.get(domain)
        if found is None:
            found = self._shards[domain] = Shard(self.folder / domain, domain, self.embedder)
        else:
            found.refresh()
        return found

    # ---- writing ----------------------------------------------------------------------

    def remember(self, items: Sequence[MemoryItem]) -> list[str]:
        items = [replace(item, id=self.mask(item.id), text=self.mask(item.text),
                         metadata=self.mask(dict(item.metadata))) for item in items]
        by_domain: dict[str, list[MemoryItem]] = {}
        for item in items:
            if item.layer not in LAYERS:
                raise MemoryRequestError(f"unknown layer '{item.layer}' "
                                         f"(layers: {', '.join(LAYERS)})")
            by_domain.setdefault(item.domain, []).append(item)
        for domain, group in by_domain.items():
            self.shard(domain).add(group)
        return [item.id for item in items]

    def forget(self, ids: Iterable[str] = (), domains: Sequence[str] | None = None,
               layer: str | None = None, filters: Mapping[str, Any] | None = None,
               redact: bool = True) -> int:
        """Erase items for good: by id, or every item matching ``layer``/``filters``; with
        ``redact``, their texts leave the other items that copied them and, through
        :attr:`erasure`, everything else under ``.aios/`` (:mod:`aiosrun.runtime.erasure`)."""
        wanted = set(ids)
        chosen: dict[str, set[str]] = {}
        texts: list[str] = []
        for domain in domains or self.domains:
            shard = self.shard(domain)
            chosen[domain] = set(wanted)
            if layer or filters:
                keys = shard.filtered_keys(layer, filters or {})
                chosen[domain] |= {item.id for item in shard.items(keys).values()}
            texts += shard.texts(chosen[domain])
        if redact and texts and self.erasure is not None:
            self.erasure.begin(texts)  # durable first: a crash from here on is finished
        count = sum(self.shard(domain).forget(group) for domain, group in chosen.items())
        if redact and texts:
            self.scrub_copies(Scrubber(texts))
            if self.erasure is not None:
                self.erasure.complete(texts)
        return count

    def scrub_copies(self, scrubber: Scrubber) -> None:
        """Items that copied a forgotten text (an episode whose outputs held it) are
        written again with the copy replaced; one left with nothing else is forgotten."""
        for domain in self.domains:
            if not (self.folder / domain).exists():
                continue
            shard = self.shard(domain)
            holders = shard.holding(scrubber)
            if not holders:
                continue
            shard.forget([item.id for item in holders])
            kept = [replace(item, text=scrubber.text(item.text), valid_to=None,
                            metadata=scrubber.data(dict(item.metadata), record=True))
                    for item in holders if item.valid_to is None]  # a superseded fact:
            shard.add([item for item in kept if item.text.strip() != PLACEHOLDER])  # erased

    def drop_working(self, run_id: str, domains: Sequence[str] | None = None) -> None:
        """The end of a run: its ``working`` items leave the indexes."""
        for domain in domains or self.domains:
            if domain not in self.domains or not (self.folder / domain).exists():
                continue
            shard = self.shard(domain)
            keys = shard.filtered_keys("working", {"source": f"run:{run_id}"})
            shard.drop([item.id for item in shard.items(keys).values()])

    # ---- searching ----------------------------------------------------------------------

    def search(self, query: str, domains: Sequence[str] | None = None, layer: str | None = None,
               k: int = 5, filters: Mapping[str, Any] | None = None,
               mode: str = "hybrid", as_of: str | int | None = None) -> list[Hit]:
        """The ``k`` best items; of facts with a ``key``, the one valid now (or at
        ``as_of``, RFC 3339 or epoch milliseconds)."""
        if mode not in MODES:
            raise MemoryRequestError(f"unknown search mode '{mode}' (modes: {', '.join(MODES)})")
        if layer is not None and layer not in LAYERS:
            raise MemoryRequestError(f"unknown layer '{layer}' (layers: {', '.join(LAYERS)})")
        filters = dict(filters or {})
        if as_of is not None:
            filters["as_of"] = as_of
        depth = max(k * 4, 50) if mode == "hybrid" else k
        lists: dict[str, list[tuple[str, Ranked]]] = {"bm25": [], "vector": []}
        shards = [self.shard(d) for d in (domains or self.domains)]

        def vectors() -> list[tuple[str, Ranked]]:
            vector = self.embedder.embed([query])[0]
            return [(shard.domain, r) for shard in shards
                    for r in shard.vector(vector, depth, layer, filters)]

        # hybrid: the vector side in a worker thread while BM25 runs here (Tantivy and
        # usearch release the GIL), so the latency is the slower of the two, not their sum
        pending = _worker().submit(vectors) if mode == "hybrid" else None
        if mode != "vector":
            lists["bm25"] = [(shard.domain, r) for shard in shards
                             for r in shard.bm25(query, depth, layer, filters)]
        if mode != "bm25":
            lists["vector"] = pending.result() if pending is not None else vectors()
        for name in lists:
            lists[name].sort(key=lambda pair: -pair[1].score)
            lists[name] = lists[name][:depth]
        if mode == "hybrid":
            scored = self._fuse(lists, query)
        else:
            scored = {(d, r.key): (r.score, (mode,)) for d, r in lists[mode]}
        best = sorted(scored.items(), key=lambda pair: -pair[1][0])[:k]
        return self._hits(best)

    def _fuse(self, lists: dict[str, list[tuple[str, Ranked]]], query: str) -> dict[
            tuple[str, int], tuple[float, tuple[str, ...]]]:
        def describe(keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], tuple[str, int]]:
            by_domain: dict[str, list[int]] = {}
            for domain, key in keys:
                by_domain.setdefault(domain, []).append(key)
            return {(d, key): (item.text, item.time) for d, group in by_domain.items()
                    for key, item in self._shards[d].items(group).items()}

        return fuse({name: [((d, r.key), r.score) for d, r in ranked]
                     for name, ranked in lists.items()}, self.fusion, query, describe)

    def _hits(self, best: list[tuple[tuple[str, int], tuple[float, tuple[str, ...]]]]
              ) -> list[Hit]:
        by_domain: dict[str, list[int]] = {}
        for (domain, key), _ in best:
            by_domain.setdefault(domain, []).append(key)
        items = {(d, key): item for d, keys in by_domain.items()
                 for key, item in self._shards[d].items(keys).items()}
        return [Hit(items[pair], score, by) for pair, (score, by) in best if pair in items]

    def stats(self) -> dict[str, Any]:
        domains = {}
        for domain in self.domains:
            if not (self.folder / domain).exists():
                domains[domain] = {"items": 0, "layers": dict.fromkeys(LAYERS, 0), "bytes": 0}
                continue
            shard = self.shard(domain)
            items = shard.count()
            domains[domain] = {"items": items, "layers": shard.layer_counts(),
                               "bytes": shard.disk_bytes(),
                               "bytes_per_item": round(shard.disk_bytes() / items) if items
                               else None}
        return {"embedder": self.embedder.fingerprint, "domains": domains,
                "fusion": self.fusion.method,
                "weights": {"bm25": self.fusion.bm25_weight,
                            "vector": self.fusion.vector_weight,
                            "names": self.fusion.name_weight,
                            "dates": self.fusion.date_weight}}

    def rebuild(self) -> None:
        for domain in self.domains:
            if (self.folder / domain).exists():
                self.shard(domain).rebuild()


_WORKER: Any = None


def _worker() -> Any:
    """One thread for the vector side of hybrid searches, started on first use."""
    global _WORKER
    if _WORKER is None:
        from concurrent.futures import ThreadPoolExecutor

        _WORKER = ThreadPoolExecutor(1, thread_name_prefix="aiosrun-vectors")
    return _WORKER


def default_fusion(embedder: Embedder) -> Fusion:
    """The weights measured best on the LoCoMo development split (``docs/memory.md``): the
    same with the built-in embedder and with all-MiniLM-L6-v2 (BM25 is the stronger
    retriever on conversations with either)."""
    del embedder  # one setting serves both; kept per embedder for the next measured one
    return Fusion()


def fusion_settings(settings: Mapping[str, Any], embedder: Embedder) -> Fusion:
    """``memory.fusion`` of ``aios.yaml`` over the measured defaults."""
    base = default_fusion(embedder)
    method = str(settings.get("method", base.method))
    method = "max" if method == "score" else method  # the name before min-max was measured
    if method not in METHODS:
        raise MemoryRequestError(f"memory.fusion.method: '{method}' is not one of "
                                 f"{', '.join(METHODS)}")
    try:
        def weight(name: str) -> float:
            return float(settings.get(name, getattr(base, name)))

        return replace(base, method=method, bm25_weight=weight("bm25_weight"),
                       vector_weight=weight("vector_weight"), name_weight=weight("name_weight"),
                       date_weight=weight("date_weight"))
    except (TypeError, ValueError):
        raise MemoryRequestError("memory.fusion: weights are numbers") from None


# ---- opening the workspace's store ----------------------------------------------------------

def open_store(ws: Any) -> MemoryStore:
    """The workspace's store, with episodes and knowledge caught up."""
    settings = ws.settings.data.get("memory") or {}
    domains = tuple(settings.get("domains") or DEFAULT_DOMAINS)
    embedder = make_embedder(settings.get("embedder") or {}, ws.secrets)
    fusion = fusion_settings(settings.get("fusion") or {}, embedder)
    store = MemoryStore(ws.state_dir / "memory", embedder, domains, fusion, ws.masker.data)
    from aiosrun.runtime.erasure import Erasure

    store.erasure = Erasure(ws)
    catch_up(store, ws)
    return store


def catch_up(store: MemoryStore, ws: Any) -> None:
    """Bring the projections up to date: finished runs and changed knowledge files."""
    sync_knowledge(store, ws.root / "knowledge")
    sync_episodes(store, ws)


def episodes_domain(store: MemoryStore) -> str:
    return "operations" if "operations" in store.domains else store.domains[0]


# actions that only read: a run of one such step, with no decision, is not an episode
READS = frozenset({"memory.search", "debug.echo", "debug.sleep", "files.read",
                   "files.read_csv", "billing.list_invoices", "billing.list_payments"})
EPISODES = ("auto", "always", "never")


def episode_policy(settings: Mapping[str, Any], playbook: str) -> str:
    """``memory.episodes`` of ``aios.yaml``: a mode for every playbook, or
    ``{default: MODE, playbooks: {NAME: MODE}}``; ``auto`` (the default) leaves out runs
    of note to no one."""
    chosen = settings.get("episodes", "auto")
    if isinstance(chosen, Mapping):
        chosen = (chosen.get("playbooks") or {}).get(playbook, chosen.get("default", "auto"))
    return str(chosen) if chosen in EPISODES else "auto"


def of_note(state: Any, ws: Any) -> bool:
    """Whether a finished run is worth an episode: it did not succeed, took a decision
    (a gate, an escalation, a wait), asked a model, ran more than one step, or acted."""
    if state.status != "succeeded" or state.gates or state.escalations or state.waits:
        return True
    if state.cost_usd or len(state.steps) > 1:
        return True
    try:
        steps = list(ws.playbook(state.digest).walk())
    except (KeyError, LookupError, ValueError, OSError):
        return True
    from aiosrun.dsl.ir import Uses

    return len(steps) > 1 or any(not isinstance(step.body, Uses) or step.body.action not in READS
                                 for step in steps)


def episode(state: Any, domain: str) -> MemoryItem:
    """A run as a summary: playbook, outcome, key outputs and a short text, with the run
    id (``aiosrun timeline RUN`` shows the detailed log)."""
    outputs = state.outputs if isinstance(state.outputs, Mapping) else {}
    key_outputs = {name: value if isinstance(value, (int, float, bool)) or value is None
                   else _cut(value, 80) for name, value in list(outputs.items())[:6]
                   if isinstance(value, (str, int, float, bool)) or value is None}
    shown = "; ".join(f"{name}: {value}" for name, value in key_outputs.items())
    text = (f"Playbook {state.playbook} {state.status}"
            + (f" on {state.finished_at[:10]}" if state.finished_at else "")
            + (f": {shown}" if shown else "")
            + (f"; error: {_cut(str(state.error.get('message', '')), 160)}"
               if state.error else ""))
    return MemoryItem(
        id=f"episode:{state.id}", domain=domain, text=_cut(text, 400), layer="episodic",
        metadata={"playbook": state.playbook, "outcome": state.status, "run_id": state.id,
                  "timeline": f"aiosrun timeline {state.id}", "outputs": key_outputs,
                  "steps": len(state.steps), "cost_usd": state.cost_usd,
                  "inputs_digest": hashlib.sha256(json.dumps(
                      state.inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]},
        time=_millis(state.finished_at), source=f"run:{state.id}")


def _cut(text: str, length: int) -> str:
    """At most ``length`` characters, a cut marked with ``…``: erasure finds a cut copy of a
    forgotten text by it (``runtime/log/scrub.py``)."""
    return text if len(text) <= length else text[:length - 1] + "…"


def sync_episodes(store: MemoryStore, ws: Any) -> None:
    """Record each finished top-level run of note as an episode, once (from the log)."""
    from aiosrun.runtime.log.projections import TERMINAL

    domain = episodes_domain(store)
    # which runs were recorded is kept, not derived from the index: an episode the
    # operator forgot must not come back at the next catch-up
    marker = store.folder / f"{domain}.episodes.json"
    try:
        seen: dict[str, Any] = json.loads(marker.read_text("utf-8"))
    except (OSError, ValueError):
        seen = {"runs": {}}
    runs = ws.workspace_state().runs
    done = [r for r in runs.values() if r.status in TERMINAL and r.parent is None]
    fresh = [r for r in done if r.id not in seen["runs"]]
    if not fresh:
        return
    settings = ws.settings.data.get("memory") or {}
    items = []
    for summary in fresh:
        state = ws.run_state(summary.id)
        policy = episode_policy(settings, state.playbook)
        if policy == "always" or (policy == "auto" and of_note(state, ws)):
            items.append(episode(state, domain))
    if items:
        store.remember(items)
    seen["runs"].update({r.id: r.status for r in fresh})
    marker.write_text(json.dumps(seen), "utf-8")


HEADING = re.compile(r"^(#{1,6})\s+(.*)$", re.MULTILINE)


def chunk_markdown(text: str) -> list[tuple[str, str]]:
    """(heading path, section text) per heading; text before the first heading is its own."""
    chunks: list[tuple[str, str]] = []
    trail: list[str] = []
    marks = list(HEADING.finditer(text))
    preamble = text[: marks[0].start()] if marks else text
    if preamble.strip():
        chunks.append(("", preamble.strip()))
    for i, mark in enumerate(marks):
        level = len(mark.group(1))
        trail = [*trail[: level - 1], mark.group(2).strip()]
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        body = text[mark.end():end].strip()
        if body:
            chunks.append((" > ".join(trail), f"{mark.group(2).strip()}\n{body}"))
    return chunks


def sync_knowledge(store: MemoryStore, folder: Path) -> None:
    """Index ``knowledge/*.md`` (domain ``operations`` or the first) and
    ``knowledge/DOMAIN/*.md`` (that domain); re-index a file whose content changed."""
    manifest_path = store.folder / "knowledge.json"
    try:
        manifest: dict[str, str] = json.loads(manifest_path.read_text("utf-8"))
    except (OSError, ValueError):
        manifest = {}
    files: dict[str, tuple[Path, str]] = {}
    if folder.is_dir():
        for path in sorted(folder.rglob("*.md")):
            relative = path.relative_to(folder)
            domain = relative.parts[0] if len(relative.parts) > 1 else episodes_domain(store)
            if domain in store.domains:
                files[relative.as_posix()] = (path, domain)
    changed = False
    for name, (path, domain) in files.items():
        content = path.read_bytes()
        digest = hashlib.sha256(content).hexdigest()
        if manifest.get(name) == f"{domain}:{digest}":
            continue
        source = f"knowledge/{name}"
        # a changed file is not an erasure: its old text stays in what the log recorded
        store.forget(domains=[domain], filters={"source": source}, redact=False)
        chunks = chunk_markdown(content.decode("utf-8", "replace"))
        store.remember([MemoryItem(id=f"{source}#{i}", domain=domain, text=body,
                                   layer="knowledge", metadata={"heading": heading,
                                                                "file": source},
                                   time=int(path.stat().st_mtime * 1000), source=source)
                        for i, (heading, body) in enumerate(chunks)])
        manifest[name] = f"{domain}:{digest}"
        changed = True
    for name in [n for n in manifest if n not in files]:
        domain = manifest[name].split(":", 1)[0]
        if domain in store.domains:
            store.forget(domains=[domain], filters={"source": f"knowledge/{name}"},
                         redact=False)
        del manifest[name]
        changed = True
    if changed:
        manifest_path.parent.mkdir(parents=True, exist_ok=True)
        manifest_path.write_text(json.dumps(manifest, indent=1), "utf-8")


def new_item(text: str, domain: str, layer: str = "knowledge", item_id: str | None = None,
             metadata: Mapping[str, Any] | None = None, source: str = "",
             now: dt.datetime | None = None, key: str | None = None) -> MemoryItem:
    moment = now or dt.datetime.now(dt.UTC)
    if item_id is None:
        item_id = "mem-" + hashlib.sha256(f"{domain}\n{text}".encode()).hexdigest()[:16]
    return MemoryItem(id=item_id, domain=domain, text=text, layer=layer,
                      metadata=dict(metadata or {}), time=int(moment.timestamp() * 1000),
                      source=source, key=key or None)


def _millis(stamp: str | None) -> int:
    if not stamp:
        return 0
    return int(dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)


def _stamp(millis: int) -> str:
    return dt.datetime.fromtimestamp(millis / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PlaybookMemory:
    """The store as one run may use it: only the playbook's declared domains, calls
    serialized (parallel steps share one store), errors turned into adapter errors."""

    def __init__(self, ws: Any, domains: Sequence[str], run_id: str) -> None:
        import threading

        self.ws = ws
        self.domains = tuple(domains)
        self.run_id = run_id
        self.lock = threading.Lock()

    def _allowed(self, domain: str, action: str) -> None:
        from aiosrun.adapters.base import PermanentError

        if domain not in self.domains:
            declared = ", ".join(self.domains) or "none"
            raise PermanentError(f"memory.{action}: domain '{domain}' is not declared in this "
                                 f"playbook's memory: (declared: {declared})")

    def _store(self) -> MemoryStore:
        from aiosrun.adapters.base import PermanentError

        try:
            store: MemoryStore = self.ws.memory()
        except (MemoryRequestError, RuntimeError, OSError) as exc:
            raise PermanentError(f"memory: {exc}") from None
        return store

    def search(self, args: Mapping[str, Any]) -> dict[str, Any]:
        self._allowed(args["domain"], "search")
        with self.lock:
            hits = _guard(lambda: self._store().search(
                args["query"], [args["domain"]], args.get("layer"), int(args.get("k", 5)),
                args.get("filters") or {}, args.get("mode", "hybrid"), args.get("as_of")))
        return {"hits": [hit.to_json() for hit in hits]}

    def remember(self, args: Mapping[str, Any], key: str) -> dict[str, Any]:
        self._allowed(args["domain"], "remember")
        item_id = args.get("id") or "mem-" + hashlib.sha256(key.encode()).hexdigest()[:16]
        item = new_item(args["text"], args["domain"], args.get("layer", "knowledge"), item_id,
                        args.get("metadata"), source=f"run:{self.run_id}",
                        key=args.get("key"))
        with self.lock:
            _guard(lambda: self._store().remember([item]))
        return {"id": item_id}

    def forget(self, args: Mapping[str, Any]) -> dict[str, Any]:
        self._allowed(args["domain"], "forget")
        with self.lock:
            # the log's part is handed to the run's trio thread (erasure.py)
            count = _guard(lambda: self._store().forget([args["id"]], [args["domain"]]))
        return {"forgotten": count}


def _guard(work: Any) -> Any:
    from aiosrun.adapters.base import PermanentError

    try:
        return work()
    except (MemoryRequestError, ValueError) as exc:
        raise PermanentError(f"memory: {exc}") from None
