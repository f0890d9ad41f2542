"""Choose chunking and fusion settings by measuring them on the question set.

Ingests the bundled corpus once per chunking configuration (in a temporary
store), then scores every fusion configuration on the answerable questions of
one split. Prints a table sorted by the mean of hit@1, recall@5, MRR and
nDCG@10, and writes it to JSON.

    python -m eval.tune_retrieval --split dev --out benchmarks/results/tuning.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
from pathlib import Path

from eval.metrics import average, retrieval_scores
from eval.questions import load_questions
from rag.corpus import load_corpus
from rag.pipeline import build_embedder, open_pipeline
from rag.settings import Settings

CHUNKINGS = [(96, 0), (128, 0), (128, 1), (192, 1), (256, 0), (256, 1)]
FUSIONS = {
    "bm25_weight": [0.5, 0.6, 0.7, 0.8],
    "candidate_chunks": [20, 40],
}
RETRIEVAL_TYPES = {"single", "multi", "comparison", "injection"}
OBJECTIVE = ("hit@1", "recall@5", "mrr", "ndcg@10")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=Path, default=Path("eval/questions.jsonl"))
    parser.add_argument("--split", default="dev")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/tuning.json"))
    args = parser.parse_args()

    questions = [
        q
        for q in load_questions(args.questions)
        if q.answerable and q.type in RETRIEVAL_TYPES and q.extra.get("split", args.split) == args.split
    ]
    base = Settings()
    embedder = build_embedder(base)
    papers = load_corpus(base.storage.corpus_paths)
    rows = []
    for max_tokens, overlap in CHUNKINGS:
        with tempfile.TemporaryDirectory() as data_dir:
            settings = base.changed(**{"data_dir": Path(data_dir), "chunk_max_tokens": max_tokens, "chunk_overlap_sentences": overlap}
            )
            report = open_pipeline(settings, retrieval=False, answering=False, embedder=embedder).index.ingest(
                papers, progress=False
            )
            retriever = open_pipeline(settings, answering=False, embedder=embedder).retriever
            for values in itertools.product(*FUSIONS.values()):
                fusion = dict(zip(FUSIONS, values))
                fusion["dense_weight"] = round(1 - fusion["bm25_weight"], 2)
                retriever.settings = settings.changed(**fusion)
                scores = average(
                    [
                        retrieval_scores([p.title for p in retriever.search(q.question, k=10).papers], q.gold_titles)
                        for q in questions
                    ]
                )
                objective = sum(scores[m] for m in OBJECTIVE) / len(OBJECTIVE)
                rows.append(
                    {
                        "chunk_max_tokens": max_tokens,
                        "chunk_overlap_sentences": overlap,
                        "chunks": report.chunks,
                        "ingest_seconds": round(report.seconds, 1),
                        **fusion,
                        **scores,
                        "objective": round(objective, 4),
                    }
                )
            print(f"chunking {max_tokens}/{overlap}: {report.chunks} chunks in {report.seconds:.0f} s", flush=True)
    rows.sort(key=lambda r: -r["objective"])
    columns = ["chunk_max_tokens", "chunk_overlap_sentences", "chunks", *FUSIONS, *OBJECTIVE, "all_gold@10", "objective"]
    print(" | ".join(columns))
    for row in rows[:15]:
        print(" | ".join(str(row[c]) for c in columns))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"split": args.split, "questions": len(questions), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
