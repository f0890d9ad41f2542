"""Load check of the chat web UI: N gradio_client sessions ask at once.

Each session is its own gradio_client.Client (its own browser-like session)
and asks a different question through the page's /chat endpoint, streaming.
Recorded per answer: seconds until the first streamed token and until the
checked answer; for the run: the wall time for all of them, and how long a
light request (/clear from yet another session) took while the answers were
still being written (the page must stay responsive).

    .venv/bin/python benchmarks/ui_load.py                  # starts the UI on the index in RAG_STORAGE__DATA_DIR
    .venv/bin/python benchmarks/ui_load.py --url http://127.0.0.1:7860/   # against a running `rag ui`

Standalone it serves the embedded smollm2-135m model (plumbing speed, not
answer quality; --model to change) with the settings' answer_concurrency and answer_max_queue, and
writes benchmarks/results/ui_load.json (only when run as a script).
tests/test_ui.py runs the same check (run_load) and keeps its results in a
temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

RESULTS = Path(__file__).resolve().parent / "results" / "ui_load.json"
CURSOR = "▍"

QUESTIONS = [
    "What problem does TransliCo address, and how?",
    "What does DiffCSE learn?",
    "What is the Platonic Representation Hypothesis?",
    "What is the semantic hub hypothesis?",
    "What does BERT4Rec do?",
    "Compare TransliCo and the Semantic Hub Hypothesis",
    "How are word vectors learned for 157 languages?",
    "What do sparse autoencoders reveal about feature spaces across language models?",
    "What is the consciousness prior?",
    "How does iTransformer forecast time series?",
]


def _text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[index], 2)


def run_load(url: str, sessions: int = 8, auth: tuple[str, str] | None = None, timeout: float = 1800) -> dict:
    """Ask `sessions` questions at once, one per client session; returns the measurements."""
    from gradio_client import Client

    clients = [Client(url, verbose=False, analytics_enabled=False, auth=auth) for _ in range(sessions + 1)]
    probe_client = clients.pop()
    questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(sessions)]
    results: list[dict] = [{} for _ in range(sessions)]
    go = threading.Barrier(sessions + 1)

    def session(i: int) -> None:
        record = results[i]
        record.update(session=i, question=questions[i], complete=False)
        go.wait()
        started = time.perf_counter()
        try:
            job = clients[i].submit(questions[i], api_name="/chat")
            while not job.done() and time.perf_counter() - started < timeout:
                if "first_token_s" not in record:  # the streamed updates so far
                    for output in job.outputs():
                        messages = output[0] if isinstance(output, (list, tuple)) and output else []
                        if messages and CURSOR in _text(messages[-1]):
                            record["first_token_s"] = round(time.perf_counter() - started, 2)
                            break
                time.sleep(0.1)
            messages, _, details = job.result(timeout=timeout)
        except Exception as err:  # recorded, and the check fails on it
            record["error"] = f"{type(err).__name__}: {err}"
            record["seconds"] = round(time.perf_counter() - started, 2)
            return
        record["seconds"] = round(time.perf_counter() - started, 2)
        record["finished_at"] = time.perf_counter()
        final = _text(messages[-1]) if messages else ""
        details = details if isinstance(details, dict) else {}
        record.update(
            error=details.get("error"),
            refused=details.get("refused"),
            generated=details.get("generated"),
            cited_titles=details.get("cited_titles", []),
            answer_chars=len(details.get("answer") or ""),
            # complete: the checked answer (not the streamed draft) is the last message; a
            # comparison's is its HTML table, with every cell made
            complete=bool(details.get("answer"))
            and (
                'class="rag-table"' in final and "rag-pending" not in final
                if details.get("table")
                else details["answer"].strip()[:40] in final
            )
            and CURSOR not in final
            and (details.get("generated") or details.get("refused")) is True,
        )

    threads = [threading.Thread(target=session, args=(i,), daemon=True) for i in range(sessions)]
    for thread in threads:
        thread.start()
    go.wait()
    wall_started = time.perf_counter()
    time.sleep(1.0)  # the answers are queued or running now
    probe_started = time.perf_counter()
    probe = {"endpoint": "/clear"}
    try:
        probe_client.predict(api_name="/clear")
        probe["seconds"] = round(time.perf_counter() - probe_started, 2)
    except Exception as err:
        probe["error"] = f"{type(err).__name__}: {err}"
    probe["finished_at"] = time.perf_counter()
    for thread in threads:
        thread.join(timeout)
    total = time.perf_counter() - wall_started
    last_answer = max((r.get("finished_at", 0.0) for r in results), default=0.0)
    probe["while_answers_running"] = "seconds" in probe and probe["finished_at"] < last_answer
    for record in [*results, probe]:
        record.pop("finished_at", None)
    for client in [*clients, probe_client]:
        client.close()

    seconds = [r["seconds"] for r in results if r.get("complete")]
    first = [r["first_token_s"] for r in results if "first_token_s" in r]
    return {
        "sessions": sessions,
        "complete": sum(bool(r.get("complete")) for r in results),
        "total_s": round(total, 2),
        "per_answer_s": {"p50": percentile(seconds, 0.5), "p90": percentile(seconds, 0.9), "max": max(seconds, default=None)},
        "first_token_s": {"p50": percentile(first, 0.5), "max": max(first, default=None)},
        "light_request_during_load": probe,
        "answers": results,
    }


def write_results(summary: dict, settings: dict, path: Path = RESULTS) -> Path:
    report = {
        "measured_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg": [round(x, 2) for x in os.getloadavg()],
        },
        "settings": settings,
        **summary,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def describe(settings) -> dict:
    return {
        "model": settings.llm.local_model if not settings.llm.base_url else settings.llm.model,
        "llm_base_url": settings.llm.base_url,
        "llm_max_tokens": settings.llm.max_tokens,
        "local_threads": settings.llm.local_threads,
        "answer_concurrency": settings.answering.answer_concurrency,
        "answer_max_queue": settings.answering.answer_max_queue,
        "ui_max_queue": settings.serving.ui_max_queue,
        "top_k": settings.retrieval.top_k,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running UI (default: start one here)")
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--model", default="smollm2-135m", help="embedded model when the UI is started here")
    parser.add_argument("--max-tokens", type=int, default=128, help="llm_max_tokens when the UI is started here")
    parser.add_argument("--threads", type=int, default=1,
                        help="local_threads when the UI is started here (1 leaves a core for the app)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from rag.settings import load_settings

    if args.url:
        settings = load_settings()
        summary = run_load(args.url, args.sessions)
        described = {**describe(settings), "url": args.url, "note": "settings of this shell, not necessarily the server's"}
    else:
        from rag.pipeline import open_pipeline
        from ui.app import build_app, launch

        settings = load_settings(
            local_model=args.model, llm_max_tokens=args.max_tokens, local_threads=args.threads,
            ui_port=0, ui_host="127.0.0.1",
        )
        with open_pipeline(settings) as pipeline:  # the embedded model is ready here, and stopped at the end
            app = build_app(pipeline)
            url = launch(app, settings, block=False)
            try:
                summary = run_load(url, args.sessions)
            finally:
                app.close()
        described = describe(settings)
    path = write_results(summary, described, args.out)
    print(
        f"{summary['complete']}/{summary['sessions']} complete answers in {summary['total_s']} s; "
        f"per answer p50 {summary['per_answer_s']['p50']} s, first token p50 {summary['first_token_s']['p50']} s; "
        f"/clear during load {summary['light_request_during_load'].get('seconds')} s -> {path}"
    )
    return 0 if summary["complete"] == summary["sessions"] else 1


if __name__ == "__main__":
    sys.exit(main())
