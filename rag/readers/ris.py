"""Reading RIS (``.ris``) exports of reference managers (EndNote, Zotero, Mendeley) and publishers.

rispy reads the tags of a record. This module cuts the file into records
itself, at each ``TY  -`` line, so that every record keeps the line it starts
on (rispy gives no line numbers) and a record that lacks its ``ER  -`` end line
is still read on its own instead of being merged into the next one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import rispy

from rag.paper import FoundPaper, Paper, clean_doi, clean_text, split_keywords, stable_paper_id, year_in
from rag.readers.base import utf8_lines
from rag.errors import CorpusError

# A tag is two characters, two spaces and a dash; "TY  - JOUR" starts a record.
RECORD_START = "TY  -"
# Ends a record: added after each one, so that a record missing its own is still read.
RECORD_END = "ER  - "
# rispy's names for the tags a field is taken from, the first present winning.
TITLE_KEYS = ("title", "primary_title")  # TI, T1
ABSTRACT_KEYS = ("abstract", "notes_abstract")  # AB, N2
AUTHOR_KEYS = ("authors", "first_authors")  # AU, A1
YEAR_KEYS = ("year", "publication_year", "date")  # PY, Y1, DA
VENUE_KEYS = ("journal_name", "secondary_title", "alternate_title3")  # JO, T2, JF


def read_ris(path: Path) -> Iterator[FoundPaper]:
    start: int | None = None  # the line of the current record's TY
    lines: list[str] = []
    for number, line in utf8_lines(path):
        if line.startswith(RECORD_START):
            if start is not None:
                yield _record(path, start, lines)
            start, lines = number, []
        if start is not None:  # lines before the first record belong to none
            lines.append(line.rstrip("\r\n"))
    if start is None:
        raise CorpusError(path, None, f"no RIS record found (no line starts with {RECORD_START!r})")
    yield _record(path, start, lines)


def _record(path: Path, line: int, lines: list[str]) -> FoundPaper:
    record = rispy.loads("\n".join([*lines, RECORD_END]))[0]
    title = clean_text(_first(record, TITLE_KEYS))
    doi = clean_doi(record.get("doi"))
    paper = Paper(
        title=title,
        abstract=clean_text(_first(record, ABSTRACT_KEYS)),
        id=stable_paper_id(title, doi=doi),
        authors=", ".join(_first_name_first(name) for name in _first(record, AUTHOR_KEYS) or []),
        year=year_in(_first(record, YEAR_KEYS)),
        url=clean_text((record.get("urls") or [""])[0]),
        venue=clean_text(_first(record, VENUE_KEYS)),
        categories=split_keywords(record.get("keywords") or []),
        doi=doi,
        source=f"{path}:{line}",
    )
    return FoundPaper(paper, path, line, label=title)


def _first(record: dict, keys: tuple[str, ...]) -> object:
    """The value of the first of keys the record has, or None."""
    return next((record[key] for key in keys if record.get(key)), None)


def _first_name_first(name: str) -> str:
    """"Smith, John" -> "John Smith", "Smith, John, Jr." -> "John Smith Jr."; "John Smith" stays."""
    last, *rest = (part.strip() for part in name.split(","))
    return clean_text(" ".join((*rest[:1], last, *rest[1:])))
