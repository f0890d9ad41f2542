"""Table mode of the evaluation: comparison-table questions, the product beside a no-model baseline.

A question set (JSON Lines, eval/questions-tables.jsonl) gives per line: id,
split, question, papers (the gold columns), aspects (null: the defaults), gold
({title: {aspect: [keywords] | "not stated"}}) and kind (named, described, topic).
The product answers the question as a user would ask it (its columns and aspects
come from the question). The baseline, in the same run, fills the product's
columns and rows with, per cell, the paper's sentence closest to the aspect by
embedding, cut to a cell the same way (rag.comparison.cell_phrase): no model,
never "not stated". Writes results.jsonl (a row per question and system),
summary.json and report.md.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from eval.questions import QuestionSetError, json_records
from eval.table_metrics import NOT_STATED_GOLD, table_scores
from rag.comparison import aspects_named, cell_phrase
from rag.evidence import usable_sentences
from rag.pipeline import Pipeline
from rag.service import PaperService

TABLE_QUESTIONS = Path(__file__).resolve().parent / "questions-tables.jsonl"
PRODUCT, BASELINE = "product", "closest_sentence"


def load_table_questions(path: Path | str, split: str | None = None) -> list[dict]:
    """The questions (of one split when given); a bad line names the file and line."""
    path = Path(path)
    questions = []
    for number, record in json_records(path, ("id", "question", "papers", "gold")):
        for title, cells in record["gold"].items():
            bad = [a for a, g in cells.items() if g != NOT_STATED_GOLD and not (isinstance(g, list) and g)]
            if bad:
                raise QuestionSetError(path, number, f"gold of {title!r}, {bad[0]!r}: keywords or {NOT_STATED_GOLD!r}")
        if split is None or record.get("split") == split:
            questions.append(record)
    if not questions:
        raise QuestionSetError(path, None, f"no questions{f' in split {split!r}' if split else ''}")
    return questions


def _row(question: dict, system: str, columns: list[str], aspects: list[str], cells: list[dict], differences: list, total_ms, error=None) -> dict:
    return {
        "id": question["id"], "system": system, "question": question["question"], "columns": columns,
        "aspects": aspects, "cells": cells, "differences": differences, "latency_ms": {"total": total_ms}, "error": error,
    }


def product_row(service: PaperService, question: dict) -> dict:
    """The product's table for the question, asked as a user asks it."""
    started = time.perf_counter()
    answer = service.ask(service.request(question["question"]))
    total_ms = round((time.perf_counter() - started) * 1000, 1)
    table = answer.table
    if table is None:
        return _row(question, PRODUCT, [], [], [], [], total_ms, answer.error or "no table (answered in prose)")
    titles = {s.number: s.title for s in table.sources}
    cells = [{**c.to_dict(), "paper": titles[c.paper]} for c in table.cells]
    differences = [{**d.to_dict(), "papers": [titles[n] for n in d.papers]} for d in table.differences]
    return _row(question, PRODUCT, list(titles.values()), table.aspects, cells, differences, total_ms)


def baseline_row(pipeline: Pipeline, question: dict, shown: dict) -> dict:
    """The no-model table: the product's columns and rows (the gold's when the product made
    none), each cell the paper's sentence closest to the aspect, cut like a product cell."""
    started = time.perf_counter()
    embedder, settings = pipeline.embedder, pipeline.settings.comparison
    columns = shown["columns"] or question["papers"]
    aspect_names = shown["aspects"] or question.get("aspects") or settings.aspects
    aspects = aspects_named(aspect_names, pipeline.engine.prompts)
    aspect_vectors = np.asarray(embedder.embed([a.text for a in aspects]))
    by_title = {p.title: p for p in pipeline.retriever.papers.values()}
    cells = []
    for title in columns:
        sentences = usable_sentences(by_title[title].abstract)[0] or [by_title[title].abstract]
        vectors = np.asarray(embedder.embed(sentences))
        for aspect, vector in zip(aspects, aspect_vectors):
            sentence = sentences[int(np.argmax(vectors @ vector))]
            text = cell_phrase(sentence, settings.cell_words, embedder.embed)
            cells.append({"paper": title, "aspect": aspect.name, "text": text, "stated": True, "sentence": sentence})
    total_ms = round((time.perf_counter() - started) * 1000, 1)
    return _row(question, BASELINE, columns, [a.name for a in aspects], cells, [], total_ms)


def run_tables(pipeline: Pipeline, questions: list[dict], out_dir: Path, progress: bool = True) -> dict:
    """Both systems on every question; the files written; the summary returned."""
    out_dir.mkdir(parents=True, exist_ok=True)
    service = PaperService.of(pipeline)
    rows = {PRODUCT: [], BASELINE: []}
    with (out_dir / "results.jsonl").open("w", encoding="utf-8") as out:
        for number, question in enumerate(questions, start=1):
            product = product_row(service, question)
            baseline = baseline_row(pipeline, question, product)
            for row in (product, baseline):
                rows[row["system"]].append(row)
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
            if progress:
                print(f"[{number}/{len(questions)}] {question['id']}: {len(product['columns'])} columns, "
                      f"{product['latency_ms']['total'] / 1000:.1f} s{', ' + product['error'] if product['error'] else ''}", flush=True)
    by_id = {q["id"]: q for q in questions}
    abstracts = {p.title: p.abstract for p in pipeline.retriever.papers.values()}
    summary = {
        "mode": "table",
        "questions": len(questions),
        "settings": pipeline.settings.describe(),
        "systems": {system: table_scores(system_rows, by_id, abstracts) for system, system_rows in rows.items()},
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    (out_dir / "report.md").write_text(report(summary), encoding="utf-8")
    return summary


def report(summary: dict) -> str:
    shown = ("cell_support", "cell_correctness", "not_stated_precision", "not_stated_recall", "column_recall",
             "differences_per_table", "total_ms_p50")
    lines = [f"# Comparison tables: {summary['questions']} questions", "", "| metric | " + " | ".join(summary["systems"]) + " |",
             "|---|" + "---|" * len(summary["systems"])]
    for metric in shown:
        values = [summary["systems"][s][metric] for s in summary["systems"]]
        lines.append(f"| {metric} | " + " | ".join("–" if v is None else f"{v:.3f}" if v <= 1 else f"{v:.0f}" for v in values) + " |")
    sizes = summary["systems"][PRODUCT]["total_ms_p50_by_size"]
    lines += ["", "Product time p50 by table size (papers x aspects): " + ", ".join(f"{k}: {v / 1000:.1f} s" for k, v in sizes.items())]
    return "\n".join(lines) + "\n"
