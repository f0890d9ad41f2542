"""Scores of comparison tables against their gold (eval/questions-tables.jsonl).

Each gold cell is keywords (a correct cell contains at least one) or "not stated".
A cell is scored by its text and the abstract sentence it cites, never by what
the system says of itself:
- supported: the cited sentence is a sentence of that paper's abstract, and the
  cell's content is in it (every number, and at least 90% of its content words);
- correct: for "not stated" gold, the cell says not stated; for keyword gold, the
  cell states something, at most MAX_CELL_WORDS words long (a pasted abstract is
  no cell), holding a keyword.
"""

from __future__ import annotations

import re
from statistics import median

NOT_STATED_GOLD = "not stated"
MAX_CELL_WORDS = 30
MIN_SUPPORTED_SHARE = 0.9
WORD = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?%?")
NUMBER = re.compile(r"\d+(?:\.\d+)?")
STOPWORDS = frozenset(
    "a an the of and or in on for to with by from at as is are was were be been that this these those it its "
    "their we our they which than into over under not no also can may more most such using use used".split()
)


def normalised(text: str) -> str:
    return " ".join(WORD.findall(text.casefold().replace("-", " ")))


def content(text: str) -> list[str]:
    return [w for w in WORD.findall(text.casefold().replace("-", " ")) if w not in STOPWORDS and len(w) > 1]


def cell_supported(text: str, sentence: str | None, abstract: str) -> bool:
    """Whether a stated cell's content is in the sentence it cites, and that sentence is the paper's."""
    if not sentence or normalised(sentence) not in normalised(abstract):
        return False
    known = set(content(sentence))
    words = content(text)
    if not words or any(n not in NUMBER.findall(sentence) for n in NUMBER.findall(text)):
        return False
    return sum(w in known for w in words) >= MIN_SUPPORTED_SHARE * len(words)


def cell_correct(cell: dict | None, gold: list[str] | str) -> bool:
    """Whether a cell (None: missing from the table) matches its gold."""
    if cell is None:
        return False
    if gold == NOT_STATED_GOLD:
        return not cell["stated"]
    if not cell["stated"] or len(cell["text"].split()) > MAX_CELL_WORDS:
        return False
    text = f" {normalised(cell['text'])} "
    return any(f" {normalised(keyword)} " in text for keyword in gold)


def table_scores(rows: list[dict], questions: dict[str, dict], abstracts: dict[str, str]) -> dict:
    """The metrics over a system's rows (see eval/tables.py for their shape)."""
    stated = supported = gold_cells = correct = 0
    said_not = said_not_right = gold_not = gold_not_found = 0
    gold_columns = found_columns = 0
    times, times_by_size = [], {}
    for row in rows:
        question = questions[row["id"]]
        cells = {(c["paper"], c["aspect"]): c for c in row["cells"]}
        shown_as = {aspect: matching_aspect(aspect, row["aspects"]) for by in question["gold"].values() for aspect in by}
        for cell in row["cells"]:
            if cell["stated"]:
                stated += 1
                supported += cell_supported(cell["text"], cell["sentence"], abstracts.get(cell["paper"], ""))
        for title, by_aspect in question["gold"].items():
            gold_columns += 1
            found_columns += title in row["columns"]
            for aspect, gold in by_aspect.items():
                cell = cells.get((title, shown_as[aspect]))
                gold_cells += 1
                correct += cell_correct(cell, gold)
                if cell is not None and not cell["stated"]:
                    said_not += 1
                    said_not_right += gold == NOT_STATED_GOLD
                if gold == NOT_STATED_GOLD:
                    gold_not += 1
                    gold_not_found += cell is not None and not cell["stated"]
        if row.get("error") is None and row["latency_ms"].get("total") is not None:
            times.append(row["latency_ms"]["total"])
            size = f"{len(row['columns'])}x{len(row['aspects'])}"
            times_by_size.setdefault(size, []).append(row["latency_ms"]["total"])
    return {
        "tables": len(rows),
        "errors": sum(row.get("error") is not None for row in rows),
        "cell_support": _share(supported, stated),
        "cell_correctness": _share(correct, gold_cells),
        "not_stated_precision": _share(said_not_right, said_not),
        "not_stated_recall": _share(gold_not_found, gold_not),
        "column_recall": _share(found_columns, gold_columns),
        "differences_per_table": _share(sum(len(r["differences"]) for r in rows), len(rows)),
        "total_ms_p50": median(times) if times else None,
        "total_ms_p50_by_size": {size: median(v) for size, v in sorted(times_by_size.items())},
        "counts": {
            "stated_cells": stated, "supported_cells": supported, "gold_cells": gold_cells, "correct_cells": correct,
            "said_not_stated": said_not, "said_not_stated_right": said_not_right, "gold_not_stated": gold_not,
        },
    }


def matching_aspect(gold: str, shown: list[str]) -> str | None:
    """The table's row for a gold aspect: the same name, else the one sharing most of its
    content words ("training data" for "their training data"); None when none shares any."""
    if gold in shown:
        return gold
    wanted = set(content(gold))
    best = max(shown, key=lambda a: len(wanted & set(content(a))), default=None)
    return best if best is not None and wanted & set(content(best)) else None


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
