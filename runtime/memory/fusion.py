"""Fusing BM25 and vector hits, with what the query itself says.

Measured on LoCoMo evidence retrieval (the development split, ``bench/memory_locomo.py``;
``docs/memory.md`` has every figure): each retriever's scores are min-max normalized over
its candidates, so the best hit of either counts 1 and the worst 0, and weighted by how much
that retriever is trusted with this embedder. Then two query-side features add to the
fused score of the 30 best candidates the retrievers found (they never bring in new ones):

- **names**: capitalized words of the query (not its first word, not stop words): an item
  that names the person or thing the question is about is preferred;
- **dates**: a day, a month or an ISO date in the query prefers items whose ``time`` falls
  on it (a day counts one day either side, for time zones).

Plain reciprocal rank fusion (``rrf``) and max-normalized sums (``max``) were measured too;
both lose to BM25 alone on that data with the built-in embedder.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from aiosrun.runtime.memory.embedders import STOP_WORDS

RRF_K = 60
METHODS = ("minmax", "max", "rrf")
MONTHS = {name: number for number, name in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september",
     "october", "november", "december"], 1)}
_MONTH = "(" + "|".join(MONTHS) + ")"
_DAY_FIRST = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+{_MONTH},?\s+(\d{{4}})\b", re.I)
_MONTH_FIRST = re.compile(rf"\b{_MONTH}\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", re.I)
_MONTH_YEAR = re.compile(rf"\b{_MONTH},?\s+(\d{{4}})\b", re.I)
_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_CAPITALIZED = re.compile(r"\b[A-Z][\w'\u2019-]*")


@dataclass(frozen=True)
class Fusion:
    """How hybrid search combines its two lists; the defaults are the measured ones."""

    method: str = "minmax"
    bm25_weight: float = 0.7
    vector_weight: float = 0.3
    name_weight: float = 0.2
    date_weight: float = 0.5
    rerank_depth: int = 30  # the features look at this many best fused candidates


@dataclass(frozen=True)
class QueryDate:
    year: int
    month: int
    day: int | None


def query_dates(query: str) -> list[QueryDate]:
    """The days and months a query names (``21 November, 2023``, ``May 2023``, ISO)."""
    found: list[QueryDate] = []
    taken: list[tuple[int, int]] = []
    for pattern, order in ((_ISO, "ymd"), (_DAY_FIRST, "dmy"), (_MONTH_FIRST, "mdy")):
        for match in pattern.finditer(query):
            groups = dict(zip(order, match.groups(), strict=True))
            month = int(groups["m"]) if groups["m"].isdigit() else MONTHS[groups["m"].lower()]
            if 1 <= month <= 12:
                found.append(QueryDate(int(groups["y"]), month, int(groups["d"])))
                taken.append(match.span())
    for match in _MONTH_YEAR.finditer(query):
        if not any(start <= match.start() < end for start, end in taken):
            found.append(QueryDate(int(match.group(2)), MONTHS[match.group(1).lower()], None))
    return found


def query_names(query: str) -> set[str]:
    """Capitalized words after the first, lower-cased, without stop words or possessives."""
    names = set()
    for match in _CAPITALIZED.finditer(query):
        if match.start() == 0:
            continue
        word = re.sub(r"['\u2019]s?$", "", match.group(0)).lower()
        if word and word not in STOP_WORDS and word.isalpha() and word not in MONTHS:
            names.add(word)
    return names


def date_fit(millis: int, dates: Sequence[QueryDate]) -> float:
    """1 when the item's time falls on a day (or in a month) the query names, 0.3 when
    it is in the month of a day named, else 0."""
    if not millis or not dates:
        return 0.0
    moment = dt.datetime.fromtimestamp(millis / 1000, dt.UTC).date()
    best = 0.0
    for date in dates:
        if date.day is None:
            if (moment.year, moment.month) == (date.year, date.month):
                best = 1.0
            continue
        try:
            named = dt.date(date.year, date.month, date.day)
        except ValueError:
            continue
        if abs((moment - named).days) <= 1:
            best = 1.0
        elif (moment.year, moment.month) == (date.year, date.month):
            best = max(best, 0.3)
    return best


def normalized(scores: Sequence[float], method: str) -> list[float]:
    """One retriever's scores (best first) on a common 0..1 scale."""
    if not scores:
        return []
    if method == "rrf":
        return [RRF_K / (RRF_K + rank) for rank in range(1, len(scores) + 1)]
    top, low = max(scores), min(scores)
    if method == "max":
        return [s / top if top > 0 else 0.0 for s in scores]
    return [(s - low) / (top - low) if top > low else 1.0 for s in scores]


Key = tuple[str, int]


def fuse(lists: Mapping[str, Sequence[tuple[Key, float]]], fusion: Fusion, query: str,
         describe: Callable[[Sequence[Key]], Mapping[Key, tuple[str, int]]]
         ) -> dict[Key, tuple[float, tuple[str, ...]]]:
    """Fused score and finders per candidate; ``describe`` gives (text, time) of the
    candidates, asked only when the query names someone or a date."""
    fused: dict[Key, tuple[float, tuple[str, ...]]] = {}
    for name, weight in (("bm25", fusion.bm25_weight), ("vector", fusion.vector_weight)):
        ranked = lists.get(name) or []
        for (key, _), part in zip(ranked, normalized([s for _, s in ranked], fusion.method),
                                  strict=True):
            score, by = fused.get(key, (0.0, ()))
            fused[key] = (score + weight * part, (*by, name))
    names, dates = query_names(query), query_dates(query)
    if fused and ((names and fusion.name_weight) or (dates and fusion.date_weight)):
        best = sorted(fused, key=lambda key: -fused[key][0])[:fusion.rerank_depth]
        details = describe(best)
        for key in best:
            score, by = fused[key]
            text, millis = details.get(key, ("", 0))
            bonus = 0.0
            if names:
                words = set(re.findall(r"[^\W_]+", text.lower()))
                bonus += fusion.name_weight * len(names & words) / len(names)
            if dates:
                bonus += fusion.date_weight * date_fit(millis, dates)
            fused[key] = (score + bonus, by)
    return fused
