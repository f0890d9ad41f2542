"""Running a question set through the pipeline and writing the documented outputs.

Outputs in the chosen folder: ``results.jsonl`` (the product, one line per
question), ``results-<system>.jsonl`` for each baseline, ``summary.json``
(every metric overall and per type, per system, with the settings and
versions) and ``report.md``.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from tqdm import tqdm

from eval.metrics import average, percentile, retrieval_scores
from eval.questions import Question
from rag.conversation import PaperMentions, deterministic_query, turns_from_messages
from rag.retrieval import Retriever
from rag.settings import Settings

PRODUCT = "hybrid"
RETRIEVAL_BASELINES = ("dense", "bm25")
VERSIONED_PACKAGES = (
    "chromadb",
    "llama-index-core",
    "sentence-transformers",
    "torch",
    "openai",
    "gradio",
)


@dataclass
class RunOptions:
    mode: str = "retrieval"
    k: int = 10


def run_retrieval(
    retriever: Retriever,
    settings: Settings,
    questions: list[Question],
    out_dir: Path,
    options: RunOptions,
    progress: bool = True,
) -> dict:
    """Retrieval-only run of the product and its baselines; returns the summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    systems = (PRODUCT, *RETRIEVAL_BASELINES)
    rows: dict[str, list[dict]] = {s: [] for s in systems}
    files = {
        s: open(out_dir / ("results.jsonl" if s == PRODUCT else f"results-{s}.jsonl"), "w")
        for s in systems
    }
    mentions = PaperMentions(list(retriever.papers.values()), retriever.names)
    interrupted = False
    try:
        for question in tqdm(questions, desc="Questions", unit="q", disable=not progress):
            query = deterministic_query(question.question, turns_from_messages(question.history), mentions)
            for system in systems:
                row = _retrieve_one(retriever, question.id, query, system, options.k)
                rows[system].append(row)
                files[system].write(json.dumps(row) + "\n")
                files[system].flush()
    except KeyboardInterrupt:
        interrupted = True  # keep and summarise what was answered so far
    finally:
        for handle in files.values():
            handle.close()
    summary = summarise(questions, rows, settings, options)
    summary["interrupted"] = interrupted
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out_dir / "report.md").write_text(render_report(summary))
    return summary


def _retrieve_one(retriever: Retriever, question_id: str, query: str, system: str, k: int) -> dict:
    row = {
        "id": question_id,
        "query": query,
        "retrieved": [],
        "answer": "",
        "cited_titles": [],
        "refused": False,
        "latency_ms": {"retrieve": None, "first_token": None, "total": None},
        "error": None,
    }
    started = time.perf_counter()
    try:
        result = retriever.search(query, k=k, mode=system)
        row["query"] = result.query
        row["retrieved"] = [{"title": p.title, "score": round(p.score, 6)} for p in result.papers]
    except Exception as err:  # one failing question must not end the run
        row["error"] = f"{type(err).__name__}: {err}"
    elapsed = (time.perf_counter() - started) * 1000
    row["latency_ms"].update(retrieve=round(elapsed, 2), total=round(elapsed, 2))
    return row


def _scores_by_type(questions: list[Question], rows: list[dict]) -> dict:
    by_id = {q.id: q for q in questions}
    scored: dict[str, list] = {"overall": []}
    for row in rows:
        question = by_id[row["id"]]
        titles = [r["title"] for r in row["retrieved"]]
        score = retrieval_scores(titles, question.gold_titles)
        scored["overall"].append(score)
        scored.setdefault(question.type, []).append(score)
    latencies = [r["latency_ms"]["retrieve"] for r in rows if r["latency_ms"]["retrieve"] is not None]
    result = {group: average(scores) for group, scores in scored.items()}
    result["overall"]["retrieve_ms_p50"] = percentile(latencies, 50)
    result["overall"]["retrieve_ms_p95"] = percentile(latencies, 95)
    result["overall"]["questions"] = len(rows)
    result["overall"]["errors"] = sum(1 for r in rows if r["error"])
    return result


def summarise(questions: list[Question], rows: dict[str, list[dict]], settings: Settings, options: RunOptions) -> dict:
    answered = {r["id"] for r in rows[PRODUCT]}
    asked = [q for q in questions if q.id in answered]
    return {
        "mode": options.mode,
        "k": options.k,
        "questions": len(asked),
        "types": {t: sum(1 for q in asked if q.type == t) for t in sorted({q.type for q in asked})},
        "systems": {system: _scores_by_type(asked, system_rows) for system, system_rows in rows.items()},
        "product": PRODUCT,
        "settings": settings.describe(),
        "versions": _versions(),
    }


def _versions() -> dict:
    found = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


RETRIEVAL_COLUMNS = ("hit@1", "recall@5", "recall@10", "all_gold@10", "mrr", "ndcg@10")


def render_report(summary: dict) -> str:
    lines = [
        "# Evaluation report",
        "",
        f"Mode: {summary['mode']}; {summary['questions']} questions "
        f"({', '.join(f'{t}: {n}' for t, n in summary['types'].items())}); top {summary['k']} papers.",
        "Retrieval metrics are over questions with gold papers; latencies in ms.",
        "",
        "## Retrieval, overall",
        "",
        _table(
            ["system", *RETRIEVAL_COLUMNS, "p50 ms", "p95 ms"],
            [
                [
                    name + (" (product)" if name == summary["product"] else ""),
                    *[_fmt(scores["overall"].get(c)) for c in RETRIEVAL_COLUMNS],
                    _fmt(scores["overall"].get("retrieve_ms_p50")),
                    _fmt(scores["overall"].get("retrieve_ms_p95")),
                ]
                for name, scores in summary["systems"].items()
            ],
        ),
    ]
    for qtype in summary["types"]:
        rows = [
            [name, *[_fmt(scores.get(qtype, {}).get(c)) for c in RETRIEVAL_COLUMNS]]
            for name, scores in summary["systems"].items()
            if scores.get(qtype)
        ]
        if rows:
            lines += ["", f"## Retrieval, {qtype}", "", _table(["system", *RETRIEVAL_COLUMNS], rows)]
    lines += [
        "",
        "## Settings and versions",
        "",
        "```json",
        json.dumps({"settings": summary["settings"], "versions": summary["versions"]}, indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)


def _fmt(value) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if isinstance(value, float) and value <= 1 else f"{value:.1f}" if isinstance(value, float) else str(value)


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)
