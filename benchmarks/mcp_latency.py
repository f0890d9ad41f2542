"""Tool latency of `rag mcp` over stdio, as an agent meets it: the round trip of a tool call
through the official `mcp` client, from the call to its parsed result.

One `rag mcp` subprocess over the index in RAG_STORAGE__DATA_DIR (`rag ingest` builds the
bundled corpus's). `warm-up` search_papers calls load the embedder and fill the caches;
then every tool is timed on `calls` questions of the dev set, none of them seen in the
warm-up: search_papers (k = the top_k setting), get_paper (by id), list_collections. No
model is started (the LLM endpoint is set to a closed port): these tools never use one, and
a model starting in the background would compete for the cores.

    .venv/bin/python benchmarks/mcp_latency.py                    # 20 warm-up calls, 200 timed
    .venv/bin/python benchmarks/mcp_latency.py --calls 50

Run it on a quiet machine. Writes benchmarks/results/mcp_latency.json (or --out); the
target (issue 26) is search_papers p50 <= 30 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from eval.metrics import percentile
from eval.questions import DEV_QUESTIONS, load_questions
from rag.settings import PROJECT_ROOT, load_settings

RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "mcp_latency.json"
TARGET_P50_MS = 30.0
RAG = str(Path(sys.executable).parent / "rag")
NO_MODEL = "http://127.0.0.1:9/v1"  # the discard port: nothing answers, and no tool here asks


def stats(values: list[float]) -> dict:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values),
        "mean": round(sum(values) / len(values), 2),
    }


async def timed(client: Client, tool: str, arguments: dict) -> tuple[float, dict]:
    started = time.perf_counter()
    result = await client.call_tool(tool, arguments)
    elapsed = round((time.perf_counter() - started) * 1000, 2)
    if result.is_error:
        raise RuntimeError(f"{tool} {arguments}: {result.content[0].text}")
    return elapsed, result.structured_content


async def measure(questions: list[str], warm_up: int) -> dict:
    server = StdioServerParameters(command=RAG, args=["mcp"], env={**os.environ, "RAG_LLM__BASE_URL": NO_MODEL})
    started = time.perf_counter()
    async with Client(stdio_client(server), read_timeout_seconds=120) as client:  # its stderr is ours
        connected_s = round(time.perf_counter() - started, 2)
        first_ms, _ = await timed(client, "search_papers", {"query": questions[0]})  # loads the embedder
        for question in questions[1:warm_up]:
            await timed(client, "search_papers", {"query": question})
        search, paper_ids = [], []
        for question in questions[warm_up:]:
            elapsed, found = await timed(client, "search_papers", {"query": question})
            search.append(elapsed)
            paper_ids.append(found["papers"][0]["paper_id"])
        get_paper = [(await timed(client, "get_paper", {"paper": paper_id}))[0] for paper_id in paper_ids]
        collections = [(await timed(client, "list_collections", {}))[0] for _ in paper_ids]
        _, listed = await timed(client, "list_collections", {})
    papers = next(c["papers"] for c in listed["collections"] if c["name"] == listed["default"])
    return {
        "papers": papers,
        "connect_s": connected_s,
        "first_search_ms": first_ms,
        "tools_ms": {"search_papers": stats(search), "get_paper": stats(get_paper), "list_collections": stats(collections)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warm-up", dest="warm_up", type=int, default=20, help="search_papers calls before timing")
    parser.add_argument("--calls", type=int, default=200, help="timed calls of each tool")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    settings = load_settings()
    questions = list(dict.fromkeys(q.question for q in load_questions(DEV_QUESTIONS)))[: args.warm_up + args.calls]
    load_before = os.getloadavg()
    measured = anyio.run(measure, questions, args.warm_up)
    search_p50 = measured["tools_ms"]["search_papers"]["p50"]
    report = {
        "measured_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_avg_before": [round(x, 2) for x in load_before],
                    "load_avg_after": [round(x, 2) for x in os.getloadavg()]},
        "settings": {"transport": "stdio", "collection": settings.storage.collection,
                     "embedding": f"{settings.embedding.model} ({settings.embedding.backend})",
                     "retrieval_mode": settings.retrieval.mode, "top_k": settings.retrieval.top_k,
                     "warm_up_calls": args.warm_up, "questions": f"{DEV_QUESTIONS.name}, distinct, in file order"},
        **measured,
        "target": {"search_papers_p50_ms": TARGET_P50_MS, "met": search_p50 <= TARGET_P50_MS},
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for tool, timing in measured["tools_ms"].items():
        print(f"{tool:<17} p50 {timing['p50']:7.2f} ms   p90 {timing['p90']:7.2f}   p99 {timing['p99']:7.2f}   max {timing['max']:7.2f}   (n={timing['n']})")
    print(f"connect {measured['connect_s']} s, first search {measured['first_search_ms']} ms; "
          f"search_papers p50 {search_p50} ms (target <= {TARGET_P50_MS:g}: {'met' if search_p50 <= TARGET_P50_MS else 'NOT met'}) -> {args.out}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
