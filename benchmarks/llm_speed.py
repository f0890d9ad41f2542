"""Speed of the embedded models on this machine: for each model, start the real
llama.cpp server (rag.local_llm) and measure, with a ~1,000-token prompt (paper
abstracts from the bundled corpus plus a question):

  - startup: start() until GET /v1/models answers (model file already cached)
  - time to first token (streaming), i.e. mostly prompt processing
  - output tokens/s over ~150 generated tokens (first token excluded)
  - server memory: RSS after the runs and its peak (VmHWM)

Each run uses different abstracts so llama.cpp's prefix cache cannot help.
Keep the machine otherwise idle: llama.cpp slows down many times over when
another process competes for the cores. The share of CPU used by other
processes during each run is recorded ("other_cpu_pct").

    .venv/bin/python benchmarks/llm_speed.py [--models smollm2-135m ...] [--runs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import urllib.request
from pathlib import Path

import llama_cpp
import openai

from rag.corpus import load_corpus
from rag.local_llm import MODELS, LocalLLMServer
from rag.settings import BUNDLED_CORPUS, Settings

RESULTS = Path(__file__).resolve().parent / "results" / "llm_speed.json"
QUESTION = (
    "Question: Summarize each of the papers above in detail, one paragraph per paper, "
    "citing each as [n]."
)


def count_tokens(server: LocalLLMServer, text: str) -> int:
    url = server.base_url.removesuffix("/v1") + "/extras/tokenize/count"
    request = urllib.request.Request(
        url, data=json.dumps({"input": text}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)["count"]


def build_prompts(server: LocalLLMServer, runs: int, target_tokens: int) -> list[str]:
    """`runs` prompts as close as whole abstracts allow to `target_tokens`
    tokens (in this model's tokenizer), each from its own abstracts."""
    papers = iter(load_corpus([BUNDLED_CORPUS]))
    prompts = []
    for _ in range(runs):
        sources: list[str] = []
        best, best_miss = "", None
        while best_miss is None or best_miss < 0:
            paper = next(papers)
            sources.append(f"[{len(sources) + 1}] {paper.title}\n{paper.abstract}")
            text = "Sources:\n\n" + "\n\n".join(sources) + "\n\n" + QUESTION
            miss = count_tokens(server, text) - target_tokens
            if best_miss is not None and abs(best_miss) <= abs(miss):
                break
            best, best_miss = text, miss
        prompts.append(best)
    return prompts


def busy_ticks(pid: int | None = None) -> int:
    """CPU ticks spent so far by the machine (all cores) or by one process."""
    if pid is None:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        return sum(map(int, fields)) - int(fields[3]) - int(fields[4])  # minus idle, iowait
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def measure(client: openai.OpenAI, server_pid: int, prompt: str, max_tokens: int) -> dict:
    ticks = (busy_ticks(), busy_ticks(server_pid), busy_ticks(os.getpid()))
    started = time.perf_counter()
    stamps = []
    stream = client.chat.completions.create(
        model="local",
        messages=[
            {"role": "system", "content": "You answer questions about the given sources."},
            {"role": "user", "content": prompt},
        ],
        max_tokens=max_tokens,
        temperature=0,
        stream=True,
    )
    for chunk in stream:  # llama-cpp-python streams one token per chunk
        if chunk.choices and chunk.choices[0].delta.content:
            stamps.append(time.perf_counter())
    ttft = stamps[0] - started
    generating = stamps[-1] - stamps[0]
    wall = time.perf_counter() - started
    total, served, own = (busy_ticks(), busy_ticks(server_pid), busy_ticks(os.getpid()))
    other = (total - ticks[0]) - (served - ticks[1]) - (own - ticks[2])
    return {
        "other_cpu_pct": round(100 * other / os.sysconf("SC_CLK_TCK") / (wall * os.cpu_count()), 1),
        "ttft_s": round(ttft, 3),
        "output_tokens": len(stamps),
        "output_tok_per_s": round((len(stamps) - 1) / generating, 2) if generating > 0 else None,
    }


def memory_mb(pid: int) -> dict:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = round(int(value.split()[0]) / 1024)
    return {"rss_mb": fields["VmRSS"], "peak_rss_mb": fields["VmHWM"]}


def bench_model(name: str, runs: int, prompt_tokens: int, output_tokens: int) -> dict:
    settings = Settings(local_model=name, local_model_file=None)
    server = LocalLLMServer(settings)
    started = time.perf_counter()
    with server:
        server.wait_ready()
        startup = time.perf_counter() - started
        client = openai.OpenAI(base_url=server.base_url, api_key="x", timeout=600, max_retries=0)
        pid = server.process.pid
        measure(client, pid, "Say hello.", 8)  # warm-up: pages the weights in
        prompts = build_prompts(server, runs, prompt_tokens)
        counts = [count_tokens(server, p) for p in prompts]
        results = [measure(client, pid, p, output_tokens) for p in prompts]
        memory = memory_mb(server.process.pid)
    ttft = statistics.median(r["ttft_s"] for r in results)
    return {
        "model": name,
        "description": MODELS[name].description,
        "threads": settings.llm.local_threads or os.cpu_count(),
        "context_tokens": settings.llm.local_context_tokens,
        "startup_s": round(startup, 2),
        "prompt_tokens": counts,
        "ttft_s": round(ttft, 2),
        "prompt_tok_per_s": round(statistics.median(counts) / ttft, 1),
        "output_tokens": [r["output_tokens"] for r in results],
        "output_tok_per_s": round(statistics.median(r["output_tok_per_s"] for r in results), 1),
        **memory,
        "other_cpu_pct": max(r["other_cpu_pct"] for r in results),
        "runs": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--runs", type=int, default=2, help="measured requests per model")
    parser.add_argument("--prompt-tokens", type=int, default=1000)
    parser.add_argument("--output-tokens", type=int, default=150)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    rows = []
    for name in args.models:
        print(f"measuring {name} ...", flush=True)
        rows.append(bench_model(name, args.runs, args.prompt_tokens, args.output_tokens))

    header = f"{'model':<20}{'start s':>8}{'prompt tok':>11}{'TTFT s':>8}{'prompt tok/s':>13}" \
             f"{'out tok':>8}{'out tok/s':>10}{'RSS MB':>8}{'peak MB':>8}{'other CPU%':>11}"
    print("\n" + header + "\n" + "-" * len(header))
    for r in rows:
        print(f"{r['model']:<20}{r['startup_s']:>8}{statistics.median(r['prompt_tokens']):>11.0f}"
              f"{r['ttft_s']:>8}{r['prompt_tok_per_s']:>13}{min(r['output_tokens']):>8}"
              f"{r['output_tok_per_s']:>10}{r['rss_mb']:>8}{r['peak_rss_mb']:>8}"
              f"{r['other_cpu_pct']:>11}")
    if any(r["other_cpu_pct"] > 5 for r in rows):
        print("\nwarning: other processes used the CPU during the runs; numbers are pessimistic")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "llama_cpp_python": llama_cpp.__version__},
        "settings": {"prompt_tokens": args.prompt_tokens, "output_tokens": args.output_tokens,
                     "runs": args.runs},
        "results": rows,
    }, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
