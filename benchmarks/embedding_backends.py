"""Speed and retrieval quality of the embedding backends (setting embedding_backend).

For each backend, in its own temporary data dir: a cold ingest of the bundled
corpus, timing only the embedder's work (chunks/s; loading the model and the
one-off ONNX export are timed apart as first use); the cosine of every chunk's
vector to torch's; the project's retrieval evaluation on eval/questions.jsonl
(hit@1 and nDCG@10 of the product, hybrid retrieval, and of dense-only
retrieval, where an embedding change is not diluted by BM25); and a fresh
process's time and peak memory to load the embedder and embed one text.
Prints a side-by-side table and writes benchmarks/results/embedding_backends.json.

    .venv/bin/python benchmarks/embedding_backends.py
    .venv/bin/python benchmarks/embedding_backends.py --limit 6 --out /tmp/smoke.json  # smoke run: numbers meaningless
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from eval import harness
from eval.questions import load_questions
from rag.corpus import load_corpus
from rag.pipeline import EmbedderWrapper, build_embedder, open_pipeline
from rag.settings import PROJECT_ROOT, Settings

BACKENDS = ["torch", "onnx", "onnx-int8"]
QUESTIONS = PROJECT_ROOT / "eval" / "questions.jsonl"
OUT = PROJECT_ROOT / "benchmarks" / "results" / "embedding_backends.json"

# Run in a fresh process: what a user waits for and holds in memory before the first query.
# Peak memory from VmHWM: a child's ru_maxrss starts at its parent's (this process's) size.
COLD_START = """
import json, time
started = time.perf_counter()
from rag.pipeline import build_embedder
from rag.settings import load_settings
embedder = build_embedder(load_settings())
embedder.embed(["warm-up"])
seconds = time.perf_counter() - started
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"name": embedder.name, "seconds": seconds, "rss_mb": peak_kb / 1024}))
"""


class TimedEmbedder(EmbedderWrapper):
    """The embedder under test, adding up the time spent in embed() and keeping the vectors."""

    def __init__(self, inner):
        super().__init__(inner)
        self.seconds = 0.0
        self.texts = 0
        self.vectors: dict[str, list[float]] = {}

    def embed(self, texts):
        started = time.perf_counter()
        vectors = self.inner.embed(texts)
        self.seconds += time.perf_counter() - started
        self.texts += len(texts)
        self.vectors.update(zip(texts, vectors))
        return vectors


def measure(backend: str, papers, questions) -> tuple[dict, dict[str, list[float]]]:
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(data_dir=Path(data_dir), embedding_backend=backend)
        embedder = build_embedder(settings)
        if backend != "torch" and backend not in embedder.name:
            sys.exit(f"build_embedder gave {embedder.name!r} for backend {backend}: it must use rag.embedding.embedder_for")
        started = time.perf_counter()
        embedder.embed(["warm-up"])
        first_use = time.perf_counter() - started
        timed = TimedEmbedder(embedder)
        index = open_pipeline(settings, retrieval=False, answering=False, embedder=timed).index
        ingest = index.ingest(papers, progress=False)
        row = {
            "backend": backend,
            "embedder": embedder.name,
            "chunks": timed.texts,
            "embed_s": round(timed.seconds, 2),
            "chunks_per_s": round(timed.texts / timed.seconds, 1),
            "cold_ingest_s": round(ingest.seconds, 2),
            "first_use_s": round(first_use, 2),
        }
        chunk_vectors = dict(timed.vectors)  # before the evaluation adds its queries
        row.update(cold_start(data_dir, backend))
        row.update(retrieval_quality(settings, index, questions, Path(data_dir) / "eval"))
    return row, chunk_vectors


def cold_start(data_dir: str, backend: str) -> dict:
    env = {**os.environ, "RAG_STORAGE__DATA_DIR": data_dir, "RAG_EMBEDDING__BACKEND": backend}
    done = subprocess.run(
        [sys.executable, "-c", COLD_START], env=env, cwd=PROJECT_ROOT, check=True, capture_output=True, text=True
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if backend != "torch" and backend not in result["name"]:
        sys.exit(f"a fresh process built {result['name']!r} for backend {backend}")
    return {"cold_start_s": round(result["seconds"], 2), "cold_start_rss_mb": round(result["rss_mb"])}


def retrieval_quality(settings: Settings, index, questions, out_dir: Path) -> dict:
    pipeline = open_pipeline(settings, answering=False, index=index)
    spec = harness.make_run(pipeline, "retrieval", 10, with_starter=False)
    systems = harness.run(spec, questions, out_dir, progress=False)["systems"]
    return {
        f"{prefix}{metric}": systems[system]["overall"].get(metric)
        for system, prefix in ((harness.PRODUCT, ""), ("dense-only", "dense_"))
        for metric in ("hit@1", "ndcg@10")
    }


def cosines_to(reference: dict[str, list[float]], vectors: dict[str, list[float]]) -> dict:
    texts = sorted(reference.keys() & vectors.keys())
    cosines = np.sum(np.array([reference[t] for t in texts]) * np.array([vectors[t] for t in texts]), axis=1)
    return {
        "cosine_to_torch_mean": round(float(cosines.mean()), 5),
        "cosine_to_torch_min": round(float(cosines.min()), 5),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated, in order (default: all)")
    parser.add_argument("--limit", type=int, help="smoke run: only the first N papers and N questions")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    papers = load_corpus(Settings().storage.corpus_paths)[: args.limit]
    questions = load_questions(QUESTIONS)[: args.limit]
    rows, vectors = [], {}
    for backend in args.backends.split(","):
        row, vectors[backend] = measure(backend, papers, questions)
        rows.append(row)
    for row in rows:
        if "torch" in vectors and row["backend"] != "torch":
            row.update(cosines_to(vectors["torch"], vectors[row["backend"]]))

    columns = [
        ("chunks/s", "chunks_per_s"), ("first use s", "first_use_s"), ("cold start s", "cold_start_s"),
        ("RSS MB", "cold_start_rss_mb"), ("cos mean", "cosine_to_torch_mean"), ("cos min", "cosine_to_torch_min"),
        ("hit@1", "hit@1"), ("nDCG@10", "ndcg@10"), ("dense hit@1", "dense_hit@1"), ("dense nDCG@10", "dense_ndcg@10"),
    ]  # fmt: skip
    print(f"{len(papers)} papers, {rows[0]['chunks']} chunks, {len(questions)} questions")
    print(f"{'':>14}" + "".join(f"{row['backend']:>12}" for row in rows))
    for label, key in columns:
        print(f"{label:>14}" + "".join(f"{row.get(key, '-')!s:>12}" for row in rows))

    results = {
        "papers": len(papers),
        "questions": len(questions),
        "backends": rows,
        "versions": {name: metadata.version(name) for name in ("torch", "sentence-transformers", "onnxruntime", "onnx")},
        "cpu_count": os.cpu_count(),
        "measured_at": time.strftime("%Y-%m-%d %H:%M"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
