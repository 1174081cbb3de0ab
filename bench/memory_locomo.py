"""Memory quality on public data: LoCoMo evidence-turn retrieval (no asserts).

The measure of ``../shared/memory-eval/README.md`` on its development split (six
conversations, 954 questions): recall@5, recall@10 and MRR of aiosrun's ``bm25``,
``vector`` and ``hybrid`` modes, overall and per question category, with the built-in
embedder and (with the ``semantic`` extra) all-MiniLM-L6-v2. In the same run, the anchors
the held-out figures were measured with: raw Tantivy BM25 (default tokenizer, the question
as it is), raw MiniLM (exact cosine) and plain reciprocal rank fusion of the two.

    python bench/memory_locomo.py [--data ../shared/memory-eval/locomo-dev] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiosrun.runtime.memory.embedders import Embedder, HashingEmbedder, SentenceTransformerEmbedder
from aiosrun.runtime.memory.evaluation import locomo, measure, summarize
from aiosrun.runtime.memory.locomo import CATEGORIES, Conversation, load_all
from aiosrun.runtime.memory.store import MemoryStore

DATA = Path(__file__).resolve().parents[2] / "shared" / "memory-eval" / "locomo-dev"
KS = (5, 10)


class Remembering:
    """An embedder that keeps what it computed, so the raw MiniLM anchor uses the very
    vectors the store was given."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.seen: dict[str, np.ndarray] = {}

    @property
    def fingerprint(self) -> str:
        return self.inner.fingerprint

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.seen]
        if missing:
            for text, vector in zip(missing, self.inner.embed(missing), strict=True):
                self.seen[text] = vector
        return np.array([self.seen[t] for t in texts], dtype=np.float32).reshape(
            len(texts), self.dim)


def raw_bm25(conversation: Conversation, depth: int = 100) -> list[list[str]]:
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", stored=True, tokenizer_name="raw")
    builder.add_text_field("text", stored=True)
    index = tantivy.Index(builder.build())
    writer = index.writer(heap_size=50_000_000, num_threads=1)
    for item in conversation.items:
        writer.add_document(tantivy.Document(id=item.id, text=item.text))
    writer.commit()
    index.reload()
    searcher = index.searcher()
    out = []
    for question in conversation.questions:
        words = " ".join(_words(question.query))
        if not words:
            out.append([])
            continue
        result = searcher.search(index.parse_query(words, ["text"]), limit=depth)
        out.append([searcher.doc(a)["id"][0] for _, a in result.hits])
    return out


def raw_vectors(conversation: Conversation, embedder: Embedder,
                depth: int = 100) -> list[list[str]]:
    matrix = embedder.embed([item.text for item in conversation.items])
    queries = embedder.embed([q.query for q in conversation.questions])
    ids = [item.id for item in conversation.items]
    return [[ids[i] for i in np.argsort(-(matrix @ q))[:depth]] for q in queries]


def rrf(first: list[str], second: list[str], k: int = 60) -> list[str]:
    fused: dict[str, float] = {}
    for ranked in (first, second):
        for rank, item_id in enumerate(ranked, 1):
            fused[item_id] = fused.get(item_id, 0.0) + 1.0 / (k + rank)
    return sorted(fused, key=lambda i: -fused[i])


def _words(text: str) -> list[str]:
    from aiosrun.runtime.memory.embedders import WORD

    return WORD.findall(text.lower())


def anchors(conversations: Sequence[Conversation], embedder: Embedder | None
            ) -> dict[str, dict[str, Any]]:
    rows: dict[str, list[tuple[int, dict[str, float]]]] = {"raw tantivy": []}
    if embedder is not None:
        rows |= {"raw minilm": [], "raw rrf": []}
    for conversation in conversations:
        bm25 = raw_bm25(conversation)
        vectors = raw_vectors(conversation, embedder) if embedder is not None else []
        for n, question in enumerate(conversation.questions):
            lists = {"raw tantivy": bm25[n]}
            if embedder is not None:
                lists |= {"raw minilm": vectors[n], "raw rrf": rrf(bm25[n], vectors[n])}
            for name, ranked in lists.items():
                rows[name].append((question.category, measure(ranked, question.evidence, KS)))
    return {name: summarize(found) for name, found in rows.items()}


def table(title: str, results: dict[str, dict[str, Any]]) -> None:
    print(f"\n{title}")
    heads = ["overall", *(f"{c} {CATEGORIES.get(int(c), c)}" for c in
                          next(iter(results.values()))["by_category"])]
    print(f"  {'':<14}" + "".join(f"{h:>26}" for h in heads))
    print(f"  {'':<14}" + "".join(f"{'r@5   r@10  MRR   (n)':>26}" for _ in heads))
    for name, row in results.items():
        cells = [row["overall"], *row["by_category"].values()]
        print(f"  {name:<14}" + "".join(
            f"{c['recall@5']:>8.3f}{c['recall@10']:>6.3f}{c['mrr']:>6.3f} ({c['queries']:>3})"
            for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    args = parser.parse_args()
    conversations = load_all([args.data])
    count = sum(len(c.questions) for c in conversations)
    print(f"LoCoMo evidence retrieval: {len(conversations)} conversations, {count} questions")
    report: dict[str, Any] = {}
    embedders: list[tuple[str, Any]] = [("builtin", HashingEmbedder)]
    try:
        import sentence_transformers  # noqa: F401

        embedders.append(("all-MiniLM-L6-v2",
                          lambda: Remembering(SentenceTransformerEmbedder("all-MiniLM-L6-v2"))))
    except ImportError:
        print("(all-MiniLM-L6-v2 not installed: pip install 'aiosrun[semantic]' to compare)")
    minilm: Embedder | None = None
    for name, make in embedders:
        embedder = make()
        minilm = embedder if name != "builtin" else minilm
        results = locomo(conversations, lambda folder, domain, e=embedder: MemoryStore(
            folder, e, [domain]), ks=KS)
        report[name] = results
        table(f"aiosrun, {name} embedder", results)
    report["anchors"] = anchors(conversations, minilm)
    table("anchors (raw libraries)", report["anchors"])
    if args.json:
        args.json.write_text(json.dumps(report, indent=1), "utf-8")


if __name__ == "__main__":
    main()
