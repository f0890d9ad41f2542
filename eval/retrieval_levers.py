"""Every fusion lever of issue 23, measured side by side on the same candidates.

For each question (follow-ups left out: they need the conversation) the dense
and BM25 searches run once, deep; each variant ranks papers from them. No LLM.
Prints, per set and question type, hit@1 / recall@10 / all_gold@10 / nDCG@10
of each variant, and writes them to --out (JSON and a Markdown table).

    RAG_STORAGE__DATA_DIR=DIR python -m eval.retrieval_levers --questions eval/questions.jsonl \
        --questions eval/questions-outsider.jsonl --split dev --out eval/results/retrieval-levers

The levers:
- z-score fusion with fixed weights (the product before issue 23) and other weights;
- reciprocal-rank fusion;
- adaptive weights: each search weighted by how far its best paper stands out;
- pseudo-relevance feedback: BM25 re-run with the top papers' distinctive terms
  (RM3-style), the dense query moved toward the top passages (Rocchio);
- a title field: BM25 over titles as a third signal;
- dense search with the topic of a "which papers" question alone.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from statistics import mean

import numpy as np

from eval.metrics import retrieval_scores
from eval.questions import load_questions
from rag.pipeline import open_pipeline
from rag.retrieval import NAMED_BONUS, question_kind, standardise, topic_of
from rag.settings import load_settings

DEPTH = 100  # chunks read from each search; variants take what they need
TYPES = ("single", "multi", "comparison", "injection")
SHOWN = ("hit@1", "recall@10", "all_gold@10", "ndcg@10")


class Candidates:
    """One question's searches, per paper (best chunk score), and what the levers need."""

    def __init__(self, retriever, question: str, chunk_paper: dict[str, str], n: int):
        self.retriever, self.question, self.chunk_paper = retriever, question, chunk_paper
        self.vector = np.asarray(retriever.embedder.embed([question])[0])
        self.dense = self.per_paper(retriever.dense_hits(question, DEPTH, vector=self.vector)[:n])
        self.bm25 = self.per_paper(retriever.bm25_hits(question, DEPTH)[:n])
        self.named = retriever.names.named_papers(question)
        self.n = n

    def per_paper(self, hits: list[tuple[str, float]]) -> dict[str, float]:
        best: dict[str, float] = {}
        for chunk_id, score in hits:
            if chunk_id in self.chunk_paper:
                best.setdefault(self.chunk_paper[chunk_id], score)
        return best


def z_fusion(signals: list[tuple[float, dict[str, float]]], named: dict[str, int]) -> list[str]:
    candidates = set(named).union(*(s for _, s in signals))
    scores = dict.fromkeys(candidates, 0.0)
    for weight, per_paper in signals:
        standard = standardise(per_paper)
        floor = min(standard.values(), default=0.0)
        for pid in candidates:
            scores[pid] += weight * standard.get(pid, floor)
    for pid, length in named.items():
        scores[pid] += NAMED_BONUS + length
    return sorted(scores, key=lambda p: (-scores[p], p))


def rrf(signals: list[tuple[float, dict[str, float]]], named: dict[str, int], k: int = 60) -> list[str]:
    scores: dict[str, float] = defaultdict(float)
    for weight, per_paper in signals:
        for rank, pid in enumerate(sorted(per_paper, key=lambda p: (-per_paper[p], p)), start=1):
            scores[pid] += weight / (k + rank)
    for pid, length in named.items():
        scores[pid] += NAMED_BONUS + length
    return sorted(scores, key=lambda p: (-scores[p], p))


def standout(per_paper: dict[str, float]) -> float:
    """How far the best paper stands out: its z-score among the candidates."""
    return max(standardise(per_paper).values(), default=0.0)


def variants(c: Candidates, retriever) -> dict[str, list[str]]:
    """Every variant's ranking of this question's papers."""
    out = {
        "dense only": z_fusion([(1.0, c.dense)], {}),
        "bm25 only": z_fusion([(1.0, c.bm25)], {}),
        "z 0.3/0.7 + names (product before)": z_fusion([(0.3, c.dense), (0.7, c.bm25)], c.named),
        "z 0.5/0.5 + names": z_fusion([(0.5, c.dense), (0.5, c.bm25)], c.named),
        "rrf k=60 + names": rrf([(1.0, c.dense), (1.0, c.bm25)], c.named),
    }
    # Adaptive: each search weighted by its best paper's z-score (a clear winner is trusted).
    d, b = standout(c.dense), standout(c.bm25)
    out["adaptive z (standout weights) + names"] = z_fusion([(d, c.dense), (b, c.bm25)], c.named)
    out["adaptive z (0.3 + standout share) + names"] = z_fusion(
        [(0.3 * d / (d + b + 1e-9) * 2, c.dense), (0.7 * b / (d + b + 1e-9) * 2, c.bm25)], c.named
    )
    # Title field as a third signal.
    titles = dict(retriever.snapshot.title_lexical.top(c.question, 50))
    out["z 0.3/0.7 + title bm25 0.2 + names"] = z_fusion([(0.3, c.dense), (0.7, c.bm25), (0.2, titles)], c.named)
    # Pseudo-relevance feedback from the product's top 3 papers, by the product's own steps.
    top = out["z 0.3/0.7 + names (product before)"][:3]
    found = retriever.snapshot.catalog.papers(top)
    first = [found[pid] for pid in top]
    expanded = retriever.expanded_terms(c.question, first)
    bm25_prf = c.per_paper(retriever.snapshot.chunk_lexical.top_weighted(expanded, c.n))
    out["prf: rm3 bm25 + names"] = z_fusion([(0.3, c.dense), (0.7, bm25_prf)], c.named)
    dense_prf = c.per_paper(retriever.dense_hits(c.question, c.n, vector=retriever.vector_toward(c.vector, first)))
    out["prf: rocchio dense + names"] = z_fusion([(0.3, dense_prf), (0.7, c.bm25)], c.named)
    out["prf: both + names"] = z_fusion([(0.3, dense_prf), (0.7, bm25_prf)], c.named)
    out["prf: both, 0.5/0.5 + names"] = z_fusion([(0.5, dense_prf), (0.5, bm25_prf)], c.named)
    # The topic of a "which papers" question alone, for dense search.
    topic = topic_of(c.question)
    topic_dense = c.per_paper(retriever.dense_hits(topic, c.n)) if topic else c.dense
    out["topic dense + names"] = z_fusion([(0.3, topic_dense), (0.7, c.bm25)], c.named)
    # Combinations of the levers that helped alone.
    out["z 0.5/0.5 + rm3 bm25 + names"] = z_fusion([(0.5, c.dense), (0.5, bm25_prf)], c.named)
    out["rrf + rm3 bm25 + names"] = rrf([(1.0, c.dense), (1.0, bm25_prf)], c.named)
    out["adaptive z + rm3 bm25 + names"] = z_fusion([(d, c.dense), (standout(bm25_prf), bm25_prf)], c.named)
    out["adaptive z + prf both + names"] = z_fusion([(standout(dense_prf), dense_prf), (standout(bm25_prf), bm25_prf)], c.named)
    out["adaptive z + topic dense + rm3 bm25 + names"] = z_fusion(
        [(standout(topic_dense), topic_dense), (standout(bm25_prf), bm25_prf)], c.named
    )
    # Per kind of question, as the product reads it: the best of the above for each kind on dev.
    kind = question_kind(c.question, c.named)
    kind_aware = {
        "comparison": out["z 0.3/0.7 + names (product before)"], "multi": out["prf: both, 0.5/0.5 + names"],
    }.get(kind, out["z 0.5/0.5 + names"])  # fmt: skip
    out["by kind: multi prf both 0.5/0.5, comparison z 0.3/0.7, other z 0.5/0.5"] = kind_aware
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=Path, action="append", required=True)
    parser.add_argument("--split", help="only questions of this split (dev / test)")
    parser.add_argument("--chunks", type=int, default=20, help="chunks each search contributes")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    settings = load_settings()
    results: dict = {"chunks": args.chunks, "split": args.split, "sets": {}}
    with open_pipeline(settings, answering=False) as pipeline:
        retriever = pipeline.retriever
        paper_ids = list(retriever.titles)
        chunk_paper = {ch.id: pid for pid, chunks in retriever.snapshot.catalog.chunks_of(paper_ids).items() for ch in chunks}
        titles = retriever.titles
        for path in args.questions:
            questions = [
                q for q in load_questions(path)
                if q.type in TYPES and q.gold_titles and not q.history and (not args.split or q.extra.get("split") == args.split)
            ]  # fmt: skip
            scores: dict = defaultdict(lambda: defaultdict(list))
            for q in questions:
                c = Candidates(retriever, q.question, chunk_paper, args.chunks)
                for name, ranked in variants(c, retriever).items():
                    scores[name][q.type].append(retrieval_scores([titles[p] for p in ranked[: args.k]], q.gold_titles))
            table = {
                name: {kind: {"n": len(rows), **{m: round(mean(r[m] for r in rows), 3) for m in SHOWN}}
                       for kind, rows in sorted(per_kind.items(), key=lambda kv: TYPES.index(kv[0]))}
                for name, per_kind in scores.items()
            }  # fmt: skip
            results["sets"][str(path)] = table
            print(markdown(str(path), table))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "levers.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "levers.md").write_text("\n".join(markdown(name, t) for name, t in results["sets"].items()))
    print(f"written to {args.out}")


def markdown(name: str, table: dict) -> str:
    first = next(iter(table.values()))
    kinds = list(first)
    lines = [f"\n{name}: " + " / ".join(SHOWN), "| variant | " + " | ".join(f"{k} (n={first[k]['n']})" for k in kinds) + " |",
             "|---|" + "---|" * len(kinds)]  # fmt: skip
    for variant, per_kind in table.items():
        lines.append(f"| {variant} | " + " | ".join(" / ".join(f"{per_kind[k][m]:.2f}" for m in SHOWN) for k in kinds) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
