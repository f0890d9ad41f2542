"""JSON Lines (.jsonl, .ndjson, and .json as the arXiv snapshot is named): our records, or arXiv
metadata records (rag/readers/arxiv.py), told apart record by record."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from rag.errors import CorpusError
from rag.paper import FoundPaper
from rag.readers.arxiv import arxiv_record, is_arxiv_record
from rag.readers.base import SURROGATE_ESCAPE, our_record, utf8_lines
from rag.text import LONE_SURROGATE


def read_jsonl(path: Path) -> Iterator[FoundPaper]:
    """Our records and arXiv metadata records, told apart record by record."""
    found_any = False
    for number, line in utf8_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise CorpusError(path, number, f"not valid JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise CorpusError(path, number, "expected a JSON object with title and abstract")
        if SURROGATE_ESCAPE.search(line) and LONE_SURROGATE.search(json.dumps(record, ensure_ascii=False)):
            # Not text: the tokenizer, SQLite and every UTF-8 writer refuse it.
            raise CorpusError(path, number, "a \\u escape encodes half of a surrogate pair: not valid Unicode")
        found_any = True
        yield arxiv_record(path, number, record) if is_arxiv_record(record) else our_record(path, number, record)
    if not found_any:
        raise CorpusError(path, None, "no papers found")
