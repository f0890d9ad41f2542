"""Comparison-table latency with the embedded model, as `rag compare` and the page's picker
make tables: for each set of papers, the time until the first cell, until the table is
complete, and until its key differences are written (the whole answer).

The paper sets are the gold columns of the dev split's table questions
(eval/questions-tables.jsonl): the 2-paper ones (the issue's 2 x 5 target, <= 20 s p50)
and the 4-paper ones (<= 40 s), on the default five aspects. A first table, not timed,
warms the model. Run it on a quiet machine (no other model job); the load average before
and after is recorded.

    .venv/bin/python benchmarks/table_latency.py

Needs an index (`rag ingest`) in RAG_STORAGE__DATA_DIR. Writes benchmarks/results/table_latency.json.
"""

from __future__ import annotations

import json
import os
import platform
import time
from datetime import datetime, timezone
from statistics import median

from eval.tables import TABLE_QUESTIONS, load_table_questions
from rag.pipeline import open_pipeline
from rag.service import PaperService
from rag.settings import PROJECT_ROOT, load_settings

RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "table_latency.json"


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def time_table(service: PaperService, titles: list[str]) -> dict:
    started = time.perf_counter()
    row = {"papers": len(titles), "first_cell_ms": None, "cells_ms": None}
    stream = service.compare_stream(service.comparison_request(titles))
    for event in stream:
        table = event.answer.table if event.answer else None
        if event.kind == "cell" and table is not None:
            row["first_cell_ms"] = row["first_cell_ms"] or _ms(started)
            if table.complete and row["cells_ms"] is None:
                row["cells_ms"] = _ms(started)
    answer = stream.answer
    row["total_ms"] = _ms(started)
    row["differences"] = len(answer.table.differences) if answer.table else None
    row["error"] = answer.error
    return row


def main() -> None:
    questions = load_table_questions(TABLE_QUESTIONS, "dev")
    sets = [q["papers"] for q in questions if len(q["papers"]) in (2, 4)]
    load_before = os.getloadavg()
    with open_pipeline(load_settings()) as pipeline:
        service = PaperService.of(pipeline)
        time_table(service, sets[0])  # warm-up: the model's start and first prompt
        rows = [time_table(service, titles) for titles in sets]
    by_size = {}
    for size in (2, 4):
        timed = [r for r in rows if r["papers"] == size and r["error"] is None]
        by_size[f"{size}x5"] = {
            "tables": len(timed),
            "first_cell_ms_p50": median(r["first_cell_ms"] for r in timed),
            "cells_ms_p50": median(r["cells_ms"] for r in timed),
            "total_ms_p50": median(r["total_ms"] for r in timed),
            "total_ms_max": max(r["total_ms"] for r in timed),
        }
    report = {
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "llm": pipeline.llm.description,
        "load_average_before_after": [load_before[0], os.getloadavg()[0]],
        "by_size": by_size,
        "rows": rows,
    }
    RESULTS.write_text(json.dumps(report, indent=2), encoding="utf-8")
    for size, numbers in by_size.items():
        print(f"{size}: " + ", ".join(f"{k} {v}" for k, v in numbers.items()))
    print(f"-> {RESULTS}")


if __name__ == "__main__":
    main()
