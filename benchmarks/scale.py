"""How ingest, start-up, search and memory grow with the corpus: 1k, 10k, 100k papers.

The bundled 248 abstracts are the only real ones, so larger corpora are built
from them, deterministically (seeded by the paper number):
- papers 0-247 are the real papers, unchanged (so real questions still have
  their real answers);
- paper j >= 248 gets a made-up name that no other paper has (CamelCase
  syllables encoding j, such as "KaVoRi") as its title's short name, before
  the descriptive part of real paper j % 248's title; and an abstract of 3-7
  sentences drawn from three real abstracts (the base paper's first sentence,
  then sentences of two other papers). So titles are unique and name matching has as much to check as on a real
  corpus.

Vectors. Embedding 140k chunks with the real model would take hours here, so
the index is built with vectors *derived* from real ones: every real sentence
and title is embedded once with the real model, and a chunk's vector is the
normalised sum of its title's and its sentences' vectors. Queries are embedded
with the real model. Real-model throughput is measured apart, in
benchmarks/embedding_backends.py.

For each size, in embedded mode and against a real `chroma run` server:
cold ingest, an unchanged re-ingest, re-ingest after one changed paper,
start-up of a fresh query process (opening the index and the first search;
the embedding model's load and building the chat page reported apart), warm query latency p50/p95 for dense, BM25 and hybrid over
the project's questions, that process's peak RSS, and the disk size.

    .venv/bin/python benchmarks/scale.py                      # 1k, 10k, 100k; both modes
    .venv/bin/python benchmarks/scale.py --sizes 1000 --modes embedded --out /tmp/x.json   # CI smoke
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from eval.metrics import percentile
from eval.questions import load_questions
from rag.corpus import load_corpus
from rag.paper import Paper
from rag.pipeline import EmbedderWrapper, build_embedder, open_pipeline
from rag.settings import BUNDLED_CORPUS, PROJECT_ROOT, Settings
from rag.text import split_sentences

OUT = PROJECT_ROOT / "benchmarks" / "results" / "scale.json"
QUESTIONS = PROJECT_ROOT / "eval" / "questions.jsonl"
CACHE = PROJECT_ROOT / "benchmarks" / ".cache"
MODELS = CACHE / "data" / "models"
# Vectors written to Chroma per call during ingest (the embedding_batch_size setting).
INGEST_BATCH = 256


# --- the synthetic corpus -------------------------------------------------------------
SYLLABLES = "Ka Lo Mi Tu Re Vo Si Na Pe Zu Ri Go Fa Du Be Xo Wi Ha Jo Qu".split()


def made_up_name(j: int) -> str:
    digits = []
    while True:
        j, digit = divmod(j, len(SYLLABLES))
        digits.append(SYLLABLES[digit])
        if not j:
            break
    return "".join(digits + ["Net"])


def synthetic_corpus(real: list[Paper], size: int) -> tuple[list[Paper], dict[str, str]]:
    """The papers, and each synthetic title's real base title (for deriving vectors)."""
    papers = list(real[:size])
    base_title: dict[str, str] = {}
    sentences = [split_sentences(p.abstract) for p in real]
    for j in range(len(real), size):
        rng = random.Random(j)
        base = real[j % len(real)]
        chosen = sentences[j % len(real)][:1]
        for other in rng.sample(range(len(real)), 2):
            chosen += rng.sample(sentences[other], min(len(sentences[other]), rng.randint(1, 3)))
        title = f"{made_up_name(j)}: {base.title.split(': ', 1)[-1]}"
        base_title[title] = base.title
        papers.append(Paper(title=title, abstract=" ".join(chosen), year=2000 + j % 25))
    return papers, base_title


class DerivedEmbedder(EmbedderWrapper):
    """Real vectors for real text; for synthetic chunks, the normalised sum of the
    real vectors of their title and sentences (cached on disk between runs)."""

    def __init__(self, real_embedder, real_papers: list[Paper], base_title: dict[str, str]):
        super().__init__(real_embedder)
        self.base_title = base_title
        texts = sorted({s for p in real_papers for s in split_sentences(p.abstract)} | {p.title for p in real_papers})
        cache = CACHE / f"sentence-vectors-{self.name}-{len(texts)}.npy"
        if cache.exists():
            vectors = np.load(cache)
        else:
            print(f"embedding {len(texts)} real sentences and titles once (cached in {cache}) ...", flush=True)
            vectors = np.asarray(real_embedder.embed(texts), dtype=np.float32)
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, vectors)
        self.vector_of = dict(zip(texts, vectors))

    def embed(self, texts):
        out = []
        for text in texts:
            title, _, passage = text.partition("\n")
            title = self.base_title.get(title, title)
            parts = [self.vector_of.get(title)] + [self.vector_of.get(s) for s in split_sentences(passage)]
            if any(p is None for p in parts):  # a sentence split differently: embed it for real
                out.append(self.inner.embed([text])[0])
                continue
            total = np.sum(parts, axis=0)
            out.append((total / np.linalg.norm(total)).tolist())
        return out


# --- a Chroma server --------------------------------------------------------------------
def start_chroma(folder: Path) -> tuple[subprocess.Popen, str]:
    chroma = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(folder / "chroma.log", "w")
    process = subprocess.Popen(
        [chroma, "run", "--path", str(folder / "server-data"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"chroma run did not start: {(folder / 'chroma.log').read_text()[-2000:]}")
            time.sleep(0.3)


# --- measuring --------------------------------------------------------------------------
def disk_mb(*folders: Path) -> float:
    total = sum(f.stat().st_size for folder in folders if folder.exists() for f in folder.rglob("*") if f.is_file())
    return round(total / 1e6, 1)


def measure_size(size: int, mode: str, corpus: list[Paper], embedder: DerivedEmbedder, queries: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=f"scale-{size}-{mode}-"))
    server = None
    try:
        chroma_url = None
        if mode == "server":
            server, chroma_url = start_chroma(folder)
        settings = Settings(data_dir=folder / "data", chroma_url=chroma_url, embedding_batch_size=INGEST_BATCH)
        settings.storage.data_dir.mkdir(parents=True)
        (settings.storage.data_dir / "models").symlink_to(MODELS)  # the exported ONNX model, shared: not re-exported per size
        papers = corpus[:size]
        index = open_pipeline(settings, retrieval=False, answering=False, embedder=embedder).index

        started = time.perf_counter()
        report = index.ingest(papers, progress=False)
        ingest_s = time.perf_counter() - started
        unchanged = index.ingest(papers, progress=False)
        changed_paper = dataclasses.replace(papers[size // 2], abstract=papers[size // 2].abstract + " We release the code.")
        one_changed = index.ingest(papers[: size // 2] + [changed_paper] + papers[size // 2 + 1 :], progress=False)

        env = {**os.environ, "RAG_STORAGE__DATA_DIR": str(settings.storage.data_dir)}
        if chroma_url:
            env["RAG_STORAGE__CHROMA_URL"] = chroma_url
        probe = subprocess.run(
            [sys.executable, __file__, "--probe", "--queries", str(queries)],
            env=env, capture_output=True, text=True, check=True,
        )
        query_process = json.loads(probe.stdout.strip().splitlines()[-1])
        return {
            "papers": size,
            "mode": mode,
            "chunks": report.chunks,
            "ingest_s": round(ingest_s, 1),
            "ingest_papers_per_s": round(size / ingest_s, 1),
            "reingest_unchanged_s": round(unchanged.seconds, 2),
            "reingest_one_changed_s": round(one_changed.seconds, 2),
            **query_process,
            "disk_mb": disk_mb(folder / "data" / "index", folder / "data" / "chroma", folder / "server-data"),
        }
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


def probe(queries: int) -> None:
    """Runs in a fresh process: start-up, then warm query latency per mode, then peak RSS."""
    started = time.perf_counter()
    settings = Settings()
    embedder = build_embedder(settings)
    embedder.embed(["warm-up"])
    model_load_s = time.perf_counter() - started

    started = time.perf_counter()
    retriever = open_pipeline(settings, answering=False, embedder=embedder).retriever
    open_s = time.perf_counter() - started
    questions = [q.question for q in load_questions(QUESTIONS)][:queries]
    started = time.perf_counter()
    retriever.search(questions[0])
    first_search_s = time.perf_counter() - started

    # `rag ui` adds the page to the same start: built here against an endpoint it never calls.
    from ui.app import build_app

    started = time.perf_counter()
    page_settings = settings.changed(**{"llm_base_url": "http://127.0.0.1:9/v1"})
    build_app(open_pipeline(page_settings, retriever=retriever, embedder=embedder))
    ui_build_s = time.perf_counter() - started

    latencies: dict[str, list[float]] = {}
    for mode in ("dense", "bm25", "hybrid"):
        for question in questions[:5]:
            retriever.search(question, mode=mode)
        times = []
        for question in questions:
            begun = time.perf_counter()
            retriever.search(question, mode=mode)
            times.append((time.perf_counter() - begun) * 1000)
        latencies[mode] = times
    result = {
        "model_load_s": round(model_load_s, 2),
        "startup_open_s": round(open_s, 2),
        "startup_first_search_s": round(first_search_s, 2),
        "startup_s": round(open_s + first_search_s, 2),
        "ui_build_s": round(ui_build_s, 2),
        "queries": len(questions),
        **{f"{mode}_p50_ms": round(statistics.median(t), 1) for mode, t in latencies.items()},
        **{f"{mode}_p95_ms": round(percentile(t, 95), 1) for mode, t in latencies.items()},
        "peak_rss_mb": round(_peak_rss_kb() / 1024, 1),
    }
    print(json.dumps(result))


def _peak_rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (latency, startup) = plt.subplots(1, 2, figsize=(11, 4))
    for mode in sorted({r["mode"] for r in rows}):
        these = sorted((r for r in rows if r["mode"] == mode), key=lambda r: r["papers"])
        sizes = [r["papers"] for r in these]
        for search in ("dense", "bm25", "hybrid"):
            latency.plot(sizes, [r[f"{search}_p95_ms"] for r in these], marker="o", label=f"{search} p95, {mode}")
        startup.plot(sizes, [r["startup_s"] for r in these], marker="o", label=f"start-up, {mode}")
        startup.plot(sizes, [r["reingest_one_changed_s"] for r in these], marker="s", linestyle="--",
                     label=f"re-ingest, 1 paper changed, {mode}")
    latency.axhline(50, color="grey", linestyle=":", label="target 50 ms")
    startup.axhline(5, color="grey", linestyle=":", label="target 5 s")
    for axis, label in ((latency, "warm search latency (ms)"), (startup, "seconds")):
        axis.set_xscale("log")
        axis.set_xlabel("papers")
        axis.set_ylabel(label)
        axis.legend(fontsize=7)
    fig.suptitle("Scale: derived vectors for synthetic papers (see benchmarks/scale.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--modes", default="embedded,server")
    parser.add_argument("--queries", type=int, default=150, help="questions timed per search mode")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe(args.queries)
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    real = load_corpus([BUNDLED_CORPUS])
    corpus, base_title = synthetic_corpus(real, max(sizes))
    embedder = DerivedEmbedder(build_embedder(Settings(data_dir=CACHE / "data")), real, base_title)
    rows = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for size in sizes:
        for mode in args.modes.split(","):
            row = measure_size(size, mode, corpus, embedder, args.queries)
            print(json.dumps(row), flush=True)
            rows.append(row)
            args.out.write_text(json.dumps({  # after every row: a long run that is stopped keeps what it measured
                "vectors": "derived: normalised sums of real MiniLM sentence and title vectors (queries: real model)",
                "corpus": "248 real papers + synthetic ones (a unique made-up name + a real title's description; "
                          "sentences of 3 real abstracts)",
                "embedding_backend": Settings().embedding.backend,
                "ingest_batch": INGEST_BATCH,
                "machine": f"{os.cpu_count()} cores",
                "rows": rows,
            }, indent=2) + "\n")
    plot(rows, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
