"""Which questions read as comparisons that name fewer than two papers would have their two
best-ranked candidates quoted (each named or at least min_relevance similar to the question),
and which would not: the dev evidence for that check in the answer path. No LLM.

    RAG_STORAGE__DATA_DIR=... .venv/bin/python -m eval.comparison_relevance [QUESTIONS]
"""

from __future__ import annotations

import sys

from eval.questions import DEV_QUESTIONS, load_questions
from rag.pipeline import open_pipeline
from rag.settings import Settings
from rag.understanding import understand


def main(argv: list[str]) -> None:
    settings = Settings()
    questions = load_questions(argv[0] if argv else DEV_QUESTIONS)
    with open_pipeline(settings, answering=False) as pipeline:
        retriever, read, kept_out = pipeline.retriever, 0, 0
        for q in questions:
            query = understand(retriever, q.question, q.question, None)
            if query.kind != "comparison" or len(query.named) >= 2:
                continue
            top = retriever.search(q.question, k=settings.retrieval.top_k, understood=query).papers[:2]
            quoted = all(
                p.named or (p.dense_similarity is not None and p.dense_similarity >= settings.answering.min_relevance) for p in top
            )
            read, kept_out = read + 1, kept_out + (not quoted)
            similarities = ", ".join(f"{p.title[:40]} ({p.dense_similarity or 0:.2f})" for p in top)
            gold = sum(p.title in q.gold_titles for p in top)
            print(f"{q.id}\t{q.type}\t{'quoted' if quoted else 'NOT QUOTED'}\tgold in top 2: {gold}\t{similarities}")
        print(f"{read} questions read as comparisons naming fewer than two papers; {kept_out} not quoted")


if __name__ == "__main__":
    main(sys.argv[1:])
