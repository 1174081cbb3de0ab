"""Retrieval quality of the memory store: recall@k, MRR and nDCG@10 per search mode.

Used by ``aiosrun memory eval`` (an operator measuring their own memory with their own
questions), by ``bench/memory.py`` and by the tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiosrun.runtime.memory.store import MODES, MemoryStore


@dataclass(frozen=True)
class Qrel:
    query: str
    relevant: tuple[str, ...]
    domain: str | None = None


def score(ranked: Sequence[str], relevant: Sequence[str], k: int) -> dict[str, float]:
    wanted = set(relevant)
    recall = len(wanted & set(ranked[:k])) / len(wanted) if wanted else 0.0
    rr = next((1.0 / rank for rank, i in enumerate(ranked, 1) if i in wanted), 0.0)
    dcg = sum(1.0 / math.log2(rank + 1) for rank, i in enumerate(ranked[:10], 1) if i in wanted)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(wanted), 10) + 1))
    return {"recall": recall, "mrr": rr, "ndcg10": dcg / ideal if ideal else 0.0}


def evaluate(store: MemoryStore, qrels: Sequence[Qrel], k: int = 5,
             modes: Sequence[str] = MODES) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for mode in modes:
        totals = {"recall": 0.0, "mrr": 0.0, "ndcg10": 0.0}
        for qrel in qrels:
            hits = store.search(qrel.query, [qrel.domain] if qrel.domain else None,
                                k=max(k, 10), mode=mode)
            for name, value in score([h.item.id for h in hits], qrel.relevant, k).items():
                totals[name] += value
        count = max(1, len(qrels))
        results[mode] = {f"recall@{k}": totals["recall"] / count, "mrr": totals["mrr"] / count,
                         "ndcg@10": totals["ndcg10"] / count, "queries": len(qrels)}
    return results


def locomo(conversations: Sequence[Any], make_store: Any, modes: Sequence[str] = MODES,
           ks: Sequence[int] = (5, 10)) -> dict[str, dict[str, Any]]:
    """The held-out measure of ``../shared/memory-eval`` on ``conversations``
    (:mod:`aiosrun.runtime.memory.locomo`): one domain each, stored by ``make_store(folder,
    domain)``; recall@k and MRR per mode, overall and per question category."""
    import tempfile
    from pathlib import Path

    rows: dict[str, list[tuple[int, dict[str, float]]]] = {mode: [] for mode in modes}
    for conversation in conversations:
        with tempfile.TemporaryDirectory() as tmp:
            store = make_store(Path(tmp), conversation.domain)
            store.remember(list(conversation.items))
            for question in conversation.questions:
                for mode in modes:
                    hits = store.search(question.query, [question.domain], k=max(ks),
                                        mode=mode)
                    ranked = [hit.item.id for hit in hits]
                    rows[mode].append((question.category,
                                       measure(ranked, question.evidence, ks)))
    return {mode: summarize(found) for mode, found in rows.items()}


def measure(ranked: Sequence[str], evidence: Sequence[str], ks: Sequence[int]
            ) -> dict[str, float]:
    """recall@k = |top-k ∩ evidence| / |evidence| for each k, and the reciprocal rank."""
    wanted = set(evidence)
    out = {f"recall@{k}": len(wanted & set(ranked[:k])) / len(wanted) for k in ks}
    out["mrr"] = next((1.0 / rank for rank, i in enumerate(ranked, 1) if i in wanted), 0.0)
    return out


def summarize(found: Sequence[tuple[int, dict[str, float]]]) -> dict[str, Any]:
    """Means overall and per category (``queries`` counts the questions)."""
    def mean(group: Sequence[dict[str, float]]) -> dict[str, float]:
        names = list(group[0]) if group else []
        return {**{n: sum(g[n] for g in group) / len(group) for n in names},
                "queries": len(group)}

    categories = sorted({category for category, _ in found})
    return {"overall": mean([row for _, row in found]),
            "by_category": {str(c): mean([row for k, row in found if k == c])
                            for c in categories}}
