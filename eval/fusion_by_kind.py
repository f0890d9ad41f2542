"""Fusion weights and candidate depth, measured per kind of question.

Runs the product's own fusion with each (dense weight, BM25 weight, candidate
chunks) variant on the questions of one or more sets (follow-ups left out: they
need the conversation) and prints, per set and question type, hit@1 and
recall@10. It answers whether the fusion should depend on the kind of question.

    python -m eval.fusion_by_kind --questions eval/questions.jsonl \
        --questions eval/questions-paraphrased.jsonl --out eval/results/fusion-by-kind.json
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections import defaultdict
from pathlib import Path
from statistics import mean

from eval.metrics import retrieval_scores
from eval.questions import load_questions
from rag.pipeline import open_pipeline
from rag.settings import load_settings

WEIGHTS = [(0.3, 0.7), (0.5, 0.5), (0.7, 0.3), (1.0, 0.0), (0.0, 1.0)]
CANDIDATE_CHUNKS = [20, 40, 80]
TYPES = ("single", "multi", "comparison", "injection")
SHOWN = ("hit@1", "recall@10")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=Path, action="append", required=True)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    settings = load_settings()
    with open_pipeline(settings, answering=False) as pipeline:
        retriever = pipeline.retriever
        results: dict = {"product": {"dense_weight": settings.retrieval.dense_weight, "bm25_weight": settings.retrieval.bm25_weight,
                                     "candidate_chunks": settings.retrieval.candidate_chunks,
                                     "multi_candidate_chunks": settings.retrieval.multi_candidate_chunks}, "sets": {}}
        for path in args.questions:
            questions = [q for q in load_questions(path) if q.type in TYPES and q.gold_titles and not q.history]
            # Each question's candidates once, at the largest depth; a variant takes the
            # first n of each (both lists are best first) and fuses them as search() does.
            depth = max(CANDIDATE_CHUNKS)
            candidates = [
                (q, retriever.dense_hits(q.question, depth), retriever.bm25_hits(q.question, depth),
                 retriever.names.named_papers(q.question))
                for q in questions
            ]  # fmt: skip
            table = {}
            for (dense, bm25), chunks in itertools.product(WEIGHTS, CANDIDATE_CHUNKS):
                retriever.settings = settings.changed(**{"dense_weight": dense, "bm25_weight": bm25})
                scores = defaultdict(list)
                for question, dense_hits, bm25_hits, named in candidates:
                    papers = retriever.fuse(dense_hits[:chunks], bm25_hits[:chunks], named)
                    for stage in retriever.stages:
                        papers = stage.apply(question.question, papers)
                    ranked = [p.title for p in papers[: args.k]]
                    scores[question.type].append(retrieval_scores(ranked, question.gold_titles))
                table[f"dense {dense:.1f} / bm25 {bm25:.1f}, {chunks} chunks"] = {
                    kind: {"n": len(rows), **{m: round(mean(r[m] for r in rows), 3) for m in SHOWN}}
                    for kind, rows in scores.items()
                }
            retriever.settings = settings
            results["sets"][str(path)] = table
            print_table(str(path), table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwritten to {args.out}")


def print_table(name: str, table: dict) -> None:
    kinds = [k for k in TYPES if k in next(iter(table.values()))]
    first = next(iter(table.values()))
    print(f"\n{name}: hit@1 / recall@10")
    print("| variant | " + " | ".join(f"{k} (n={first[k]['n']})" for k in kinds) + " |")
    print("|---|" + "---|" * len(kinds))
    for variant, per_kind in table.items():
        print(f"| {variant} | " + " | ".join(" / ".join(f"{per_kind[k][m]:.3f}" for m in SHOWN) for k in kinds) + " |")


if __name__ == "__main__":
    main()
