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
