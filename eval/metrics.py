"""Scoring functions, each computable by hand on a small case.

Titles are compared after normalising case and white space. Retrieved lists
are ranked and hold one entry per paper (duplicates count once, at their
first rank).
"""

from __future__ import annotations

import math
from statistics import mean

from rag.corpus import normalise_title


def _ranked(titles: list[str]) -> list[str]:
    seen, ranked = set(), []
    for title in titles:
        key = normalise_title(title)
        if key not in seen:
            seen.add(key)
            ranked.append(key)
    return ranked


def _gold(gold_titles: list[str]) -> set[str]:
    return {normalise_title(t) for t in gold_titles}


def hit_at(retrieved: list[str], gold_titles: list[str], k: int) -> float:
    return float(any(t in _gold(gold_titles) for t in _ranked(retrieved)[:k]))


def recall_at(retrieved: list[str], gold_titles: list[str], k: int) -> float:
    gold = _gold(gold_titles)
    return len(gold & set(_ranked(retrieved)[:k])) / len(gold)


def all_gold_at(retrieved: list[str], gold_titles: list[str], k: int) -> float:
    return float(_gold(gold_titles) <= set(_ranked(retrieved)[:k]))


def reciprocal_rank(retrieved: list[str], gold_titles: list[str]) -> float:
    gold = _gold(gold_titles)
    for rank, title in enumerate(_ranked(retrieved), start=1):
        if title in gold:
            return 1.0 / rank
    return 0.0


def ndcg_at(retrieved: list[str], gold_titles: list[str], k: int) -> float:
    gold = _gold(gold_titles)
    dcg = sum(
        1.0 / math.log2(rank + 1)
        for rank, title in enumerate(_ranked(retrieved)[:k], start=1)
        if title in gold
    )
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(gold), k) + 1))
    return dcg / ideal


RETRIEVAL_METRICS = {
    "hit@1": lambda r, g: hit_at(r, g, 1),
    "recall@5": lambda r, g: recall_at(r, g, 5),
    "recall@10": lambda r, g: recall_at(r, g, 10),
    "all_gold@10": lambda r, g: all_gold_at(r, g, 10),
    "mrr": reciprocal_rank,
    "ndcg@10": lambda r, g: ndcg_at(r, g, 10),
}


def retrieval_scores(retrieved: list[str], gold_titles: list[str]) -> dict[str, float] | None:
    """Every retrieval metric for one question; None when it has no gold paper."""
    if not gold_titles:
        return None
    return {name: fn(retrieved, gold_titles) for name, fn in RETRIEVAL_METRICS.items()}


def average(rows: list[dict[str, float] | None]) -> dict[str, float]:
    """Mean of each metric over the rows that have it (None rows are skipped)."""
    present = [r for r in rows if r is not None]
    if not present:
        return {}
    return {name: round(mean(r[name] for r in present), 4) for name in present[0]}


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, math.ceil(q / 100 * len(ordered)) - 1)
    return ordered[index]
