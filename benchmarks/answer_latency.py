"""Answer latency with the embedded model, as a user meets it: for each question,
the time until the retrieved papers are known (what the page shows first), until
the first text of the answer, and until the checked answer; then, through the
real chat page (gradio_client), the time until the found papers are visible.

Run it on a quiet machine (no other model job): llama.cpp slows down many times
over when another process competes for the cores. The load average before and
after is recorded.

    .venv/bin/python benchmarks/answer_latency.py                       # test split, every question
    .venv/bin/python benchmarks/answer_latency.py --per-type 3

Needs an index (`rag ingest`) in RAG_STORAGE__DATA_DIR. Writes benchmarks/results/answer_latency.json
(or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from eval.metrics import percentile  # noqa: E402
from eval.questions import default_questions, load_questions, select_questions  # noqa: E402
from rag.generation import AnswerStream  # noqa: E402
from rag.pipeline import open_pipeline  # noqa: E402
from rag.settings import PROJECT_ROOT, load_settings  # noqa: E402

RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "answer_latency.json"
UI_QUESTIONS = [
    "What is the Platonic Representation Hypothesis?",
    "What problem does TransliCo address, and how?",
    "Which papers study contrastive learning of sentence embeddings?",
]


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def time_answers(pipeline, questions) -> list[dict]:
    rows = []
    for question in questions:
        started = time.perf_counter()
        row = {"id": question.id, "type": question.type, "retrieved_ms": None, "first_token_ms": None}
        stream = AnswerStream(pipeline.engine.stream(question.question, question.history))
        for event in stream:
            if event.kind == "retrieved" and row["retrieved_ms"] is None:
                row["retrieved_ms"] = _ms(started)
            elif event.kind == "token" and row["first_token_ms"] is None:
                row["first_token_ms"] = _ms(started)
        answer = stream.answer
        row["total_ms"] = _ms(started)
        row["refused"] = answer.refused
        row["llm_calls"] = 1 if answer.generated or answer.checks["written"] else 0
        rows.append(row)
        print(f"{question.id:>5} {question.type:<12} first text {row['first_token_ms']} ms, total {row['total_ms']} ms", flush=True)
    return rows


def time_page(pipeline, settings) -> list[float]:
    """Seconds from asking in the page until the found papers are in the chat."""
    import gradio_client

    from ui.app import build_app, launch

    app = build_app(pipeline)
    url = launch(app, settings.changed(**{"ui_port": 0, "ui_host": "127.0.0.1"}), block=False)
    seconds = []
    try:
        client = gradio_client.Client(url, verbose=False, analytics_enabled=False)
        for question in UI_QUESTIONS:
            client.predict(api_name="/clear")
            started = time.perf_counter()
            job = client.submit(question, api_name="/chat")
            for update in job:
                messages = update[0] if update else []
                if messages and "rag-found" in str(messages[-1].get("content")):
                    seconds.append(round(time.perf_counter() - started, 3))
                    break
            job.result()  # let the answer finish: the model serves one request at a time
    finally:
        app.close()
    return seconds


def summarise(rows: list[dict]) -> dict:
    def stats(key: str, subset: list[dict]) -> dict:
        values = [r[key] for r in subset if r[key] is not None]
        return {"p50": percentile(values, 50), "p95": percentile(values, 95), "n": len(values)}

    by_type = {t: [r for r in rows if r["type"] == t] for t in sorted({r["type"] for r in rows})}
    return {
        "overall": {key: stats(key, rows) for key in ("retrieved_ms", "first_token_ms", "total_ms")},
        "per_type": {t: {key: stats(key, sub) for key in ("first_token_ms", "total_ms")} for t, sub in by_type.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=Path, help="question set (default: the split's own file)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--per-type", dest="per_type", type=int)
    parser.add_argument("--skip-page", action="store_true", help="do not time the chat page")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    settings = load_settings()
    questions = load_questions(args.questions or default_questions(args.split))
    questions = select_questions(questions, split=args.split, per_type=args.per_type)
    load_before = os.getloadavg()
    with open_pipeline(settings) as pipeline:
        pipeline.llm.wait_until_ready()
        pipeline.engine.ask("Warm-up: what is DiffCSE?")  # loads the model's weights into the page cache
        rows = time_answers(pipeline, questions)
        page = [] if args.skip_page else time_page(pipeline, settings)
    report = {
        "measured_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_avg_before": [round(x, 2) for x in load_before],
                    "load_avg_after": [round(x, 2) for x in os.getloadavg()]},
        "settings": {"model": settings.llm.model if settings.llm.base_url
                     else settings.llm.local_model, "local_threads": settings.llm.local_threads, "split": args.split,
                     "questions": len(rows)},
        **summarise(rows),
        "page_found_papers_visible_s": {"values": page, "max": max(page) if page else None},
        "rows": rows,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    overall = report["overall"]
    print(
        f"{len(rows)} questions: first text p50 {overall['first_token_ms']['p50']} ms, total p50 "
        f"{overall['total_ms']['p50']} ms; page shows the found papers within {report['page_found_papers_visible_s']['max']} s"
        f" -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
