"""What the readers share: reading UTF-8 line by line, record fields, ids, and our own record form."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from rag.errors import CorpusError
from rag.paper import ID_FORBIDDEN_CHARS, FoundPaper, Paper, clean_doi, clean_text, split_keywords, stable_paper_id

# A JSON escape of half a surrogate pair ("\ud83d"), which may decode to a lone surrogate:
# searched for in the raw line first, so a multi-GB snapshot is not checked twice.
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")

def utf8_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) for each line, read and decoded one at a time: files may be many GB."""
    with path.open("rb") as file:
        for number, raw in enumerate(file, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as err:
                raise CorpusError(path, number, f"not valid UTF-8 (byte 0x{raw[err.start]:02x})") from None
            yield number, line


def read_utf8_text(path: Path) -> str:
    """The whole file as text, for formats whose parsers need it whole (small files)."""
    return "".join(line for _, line in utf8_lines(path))


def record_text(path: Path, line: int, record: dict, name: str) -> str:
    """A text field of a JSON or CSV record, as clean_text; a JSON list or object there is an error
    (it would become the text "[]" or "{...}")."""
    value = record.get(name)
    if isinstance(value, (list, dict)):
        kind = "list" if isinstance(value, list) else "object"
        raise CorpusError(path, line, f"{name} must be text, not a JSON {kind}")
    return clean_text(value)


def check_id(path: Path, line: int, paper_id: str, field_name: str) -> str:
    """The id, if it can be part of a chunk id; else a CorpusError naming the field it came from."""
    if any(char in paper_id for char in ID_FORBIDDEN_CHARS):
        raise CorpusError(path, line, f"{field_name} {paper_id!r} must not contain {' or '.join(ID_FORBIDDEN_CHARS)}")
    return paper_id


def our_record(path: Path, line: int, record: dict) -> FoundPaper:
    """A paper from our JSON Lines or CSV record (or a page-dump title and abstract)."""

    def text(name: str) -> str:
        return record_text(path, line, record, name)

    title, abstract = text("title"), text("abstract")
    explicit_id = check_id(path, line, text("id"), "id")
    authors = record.get("authors") or ""
    if isinstance(authors, list):
        authors = ", ".join(clean_text(a) for a in authors)
    year = record.get("year")
    if year in ("", None):
        year = None
    else:
        try:
            year = int(year)
        except (TypeError, ValueError, OverflowError):  # JSON's Infinity overflows
            raise CorpusError(path, line, f"year {year!r} is not a whole number") from None
    doi, arxiv_id = clean_doi(text("doi")), check_id(path, line, text("arxiv_id"), "arxiv_id")
    paper = Paper(
        title=title,
        abstract=abstract,
        id=explicit_id or stable_paper_id(title, doi=doi, arxiv_id=arxiv_id),
        authors=clean_text(authors),
        year=year,
        url=text("url"),
        venue=text("venue"),
        categories=split_keywords(record.get("categories")),
        doi=doi,
        arxiv_id=arxiv_id,
        source=f"{path}:{line}",
    )
    return FoundPaper(paper, path, line, label=title or explicit_id)
