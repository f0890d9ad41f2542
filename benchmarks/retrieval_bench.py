"""Ingest and query speed of the foundation, on the bundled corpus.

Measures, in one process: a cold ingest into an empty store (seconds,
chunks/s), a second ingest with nothing changed, warm query latency (p50/p95
over every question of the project set plus the first sentence of every
abstract, at least 200 queries), and peak resident memory. Prints the numbers
and writes them to benchmarks/results/retrieval.json.

    .venv/bin/python benchmarks/retrieval_bench.py
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from eval.metrics import percentile
from eval.questions import load_questions
from rag.corpus import load_corpus
from rag.pipeline import build_embedder, open_pipeline
from rag.settings import PROJECT_ROOT, Settings
from rag.text import split_sentences

OUT = PROJECT_ROOT / "benchmarks" / "results" / "retrieval.json"


def main() -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(data_dir=Path(data_dir))
        papers = load_corpus(settings.storage.corpus_paths)
        embedder = build_embedder(settings)
        embedder.embed(["warm-up"])  # model load is reported apart from ingest
        index = open_pipeline(settings, retrieval=False, answering=False, embedder=embedder).index

        cold = index.ingest(papers, progress=False)
        warm = index.ingest(papers, progress=False)

        retriever = open_pipeline(settings, answering=False, index=index).retriever
        queries = [q.question for q in load_questions(PROJECT_ROOT / "eval" / "questions.jsonl")]
        queries += [split_sentences(p.abstract)[0] for p in papers]
        for query in queries[:10]:
            retriever.search(query)
        latencies = []
        for query in queries:
            started = time.perf_counter()
            retriever.search(query)
            latencies.append((time.perf_counter() - started) * 1000)

        env = {**os.environ, "RAG_STORAGE__DATA_DIR": data_dir}
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cli", "ingest", "--quiet"], env=env, check=True, capture_output=True)
        cli_unchanged = time.perf_counter() - started

    results = {
        "papers": cold.papers,
        "chunks": cold.chunks,
        "chunk_max_tokens": settings.embedding.chunk_max_tokens,
        "cold_ingest_s": round(cold.seconds, 2),
        "cold_ingest_chunks_per_s": round(cold.chunks / cold.seconds, 1),
        "unchanged_ingest_s": round(warm.seconds, 3),
        "unchanged_ingest_cli_wall_s": round(cli_unchanged, 2),
        "queries": len(latencies),
        "query_ms_p50": round(statistics.median(latencies), 2),
        "query_ms_p95": round(percentile(latencies, 95), 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cpu_count": os.cpu_count(),
        "measured_at": time.strftime("%Y-%m-%d %H:%M"),
    }
    for key, value in results.items():
        print(f"{key:>28}: {value}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {OUT.relative_to(PROJECT_ROOT)}")


if __name__ == "__main__":
    main()
