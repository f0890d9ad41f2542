"""Reading arXiv metadata records: the public arXiv dataset (as on Kaggle).

The dataset is one JSON object per line, several GB for all of arXiv, so the
JSON Lines reader (rag/readers/jsonl.py) streams it line by line and hands each
record here; a record with ``versions`` or ``update_date`` is arXiv's, any other
is ours. A paper's date is its first version's, which is when it appeared, so
that a date selection (``ArxivSelection``) means "first published between".
"""

from __future__ import annotations

import re
from datetime import date
from email.utils import parsedate_to_datetime
from pathlib import Path

from rag.paper import FoundPaper, Paper, clean_doi, clean_text, stable_paper_id
from rag.readers.base import check_id, record_text

# Fields only arXiv's records have: how a record is told apart from ours.
ARXIV_ONLY_FIELDS = ("versions", "update_date")
# The last two authors are joined by "and": "A. Smith, B. Jones and C. Lee".
LAST_AUTHOR_JOIN = re.compile(r",?\s+and\s+")


def is_arxiv_record(record: dict) -> bool:
    return any(name in record for name in ARXIV_ONLY_FIELDS)


def arxiv_record(path: Path, line: int, record: dict) -> FoundPaper:
    """A paper from one arXiv metadata record (title or abstract may be empty: the caller checks)."""
    def text(name: str) -> str:
        return record_text(path, line, record, name)

    arxiv_id = check_id(path, line, text("id"), "id")
    title = text("title")
    published = first_version_date(record)
    paper = Paper(
        title=title,
        abstract=text("abstract"),
        # Not the DOI, even when there is one: arXiv adds DOIs later, and the id must not change.
        id=stable_paper_id(title, arxiv_id=arxiv_id),
        authors=LAST_AUTHOR_JOIN.sub(", ", text("authors")),
        year=published.year if published else None,
        venue=text("journal-ref"),
        categories=tuple(text("categories").split()),
        doi=clean_doi(text("doi")),
        arxiv_id=arxiv_id,
        source=f"{path}:{line}",
    )
    return FoundPaper(paper, path, line, label=arxiv_id or title, published=published)


def first_version_date(record: dict) -> date | None:
    """The date of version 1 ("Mon, 2 Apr 2007 19:18:42 GMT"), else of the last update, else None."""
    versions = record.get("versions")
    if isinstance(versions, list) and versions and isinstance(versions[0], dict):
        try:
            return parsedate_to_datetime(str(versions[0].get("created"))).date()
        except (TypeError, ValueError):
            pass  # a malformed date: fall back to the update date
    try:
        return date.fromisoformat(clean_text(record.get("update_date"))[:10])
    except ValueError:
        return None
