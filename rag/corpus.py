"""Loading paper abstracts from corpus files.

Three formats: the bundled page-dump text format (alternating title and
abstract lines after some page chrome), JSON Lines and CSV (columns ``title``,
``abstract``, optional ``authors``, ``year``, ``url``, ``id``). Anything
malformed raises :class:`CorpusError` naming the file and the line, before a
single paper is handed on, so a bad file can never half-update an index.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import CorpusError

log = logging.getLogger(__name__)

# Lines of web-page chrome that the bundled dump carries before the papers.
PAGE_CHROME_PREFIXES = ("Get trending papers in your email inbox",)
# The page's "Subscribe" button text is glued to the first title.
GLUED_PREFIX = "Subscribe"
# A title line longer than this is almost surely an abstract: the title/abstract
# alternation has slipped (a missing line above it).
MAX_TITLE_CHARS = 400


@dataclass(frozen=True)
class Paper:
    title: str
    abstract: str
    id: str = ""
    authors: str = ""
    year: int | None = None
    url: str = ""
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", paper_id_for(self.title))

    @property
    def content_hash(self) -> str:
        """Changes whenever anything that is embedded or shown changes."""
        payload = json.dumps([self.title, self.abstract, self.authors, self.year, self.url])
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def citation(self) -> dict:
        """What a reader needs to find the paper again."""
        return {"title": self.title, "authors": self.authors, "year": self.year, "url": self.url}


def normalise_title(title: str) -> str:
    return " ".join(title.casefold().split())


def paper_id_for(title: str) -> str:
    """Stable id from the normalised title, so it survives edits to the abstract."""
    return "p" + hashlib.sha1(normalise_title(title).encode()).hexdigest()[:12]


def load_corpus(paths: list[Path] | list[str]) -> list[Paper]:
    """Load and merge papers from several files; duplicate titles keep the first."""
    papers: dict[str, Paper] = {}
    for raw_path in paths:
        path = Path(raw_path)
        for paper in load_file(path):
            key = normalise_title(paper.title)
            if key in papers:
                log.warning(
                    "%s: duplicate title %r (first seen in %s); keeping the first",
                    paper.source,
                    paper.title,
                    papers[key].source,
                )
                continue
            papers[key] = paper
    return list(papers.values())


def load_file(path: Path) -> list[Paper]:
    if not path.exists():
        raise CorpusError(path, None, "file not found")
    if not path.is_file():
        raise CorpusError(path, None, "not a file")
    text = _read_utf8(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _parse_jsonl(path, text)
    if suffix == ".csv":
        return _parse_csv(path, text)
    if suffix in (".txt", ""):
        return _parse_page_dump(path, text)
    raise CorpusError(path, None, f"unknown corpus format {suffix!r} (use .txt, .jsonl or .csv)")


def _read_utf8(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise CorpusError(path, line, f"not valid UTF-8 (byte 0x{data[err.start]:02x})") from None


def _clean(value: object) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def _make_paper(path: Path, line: int, record: dict) -> Paper:
    title, abstract = _clean(record.get("title")), _clean(record.get("abstract"))
    if not title:
        raise CorpusError(path, line, "empty or missing title")
    if not abstract:
        raise CorpusError(path, line, f"empty or missing abstract for {title!r}")
    authors = record.get("authors") or ""
    if isinstance(authors, list):
        authors = ", ".join(_clean(a) for a in authors)
    year = record.get("year")
    if year in ("", None):
        year = None
    else:
        try:
            year = int(year)
        except (TypeError, ValueError):
            raise CorpusError(path, line, f"year {year!r} is not a whole number") from None
    return Paper(
        title=title,
        abstract=abstract,
        id=_clean(record.get("id")),
        authors=_clean(authors),
        year=year,
        url=_clean(record.get("url")),
        source=f"{path}:{line}",
    )


def _parse_page_dump(path: Path, text: str) -> list[Paper]:
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    start = 0
    while start < len(lines) and lines[start].strip().startswith(PAGE_CHROME_PREFIXES):
        start += 1
    body = lines[start:]
    if not body:
        raise CorpusError(path, None, "no papers found")
    if len(body) % 2:
        raise CorpusError(
            path,
            len(lines),
            f"odd number of title/abstract lines ({len(body)}): a title or abstract is missing",
        )
    papers = []
    for offset in range(0, len(body), 2):
        title_line = start + offset + 1  # 1-based line number of the title
        title, abstract = body[offset].strip(), body[offset + 1].strip()
        if offset == 0 and title.startswith(GLUED_PREFIX) and len(title) > len(GLUED_PREFIX):
            title = title[len(GLUED_PREFIX) :]
        if len(title) > MAX_TITLE_CHARS:
            raise CorpusError(
                path,
                title_line,
                f"expected a title but found {len(title)} characters of text "
                "(is a line missing above?)",
            )
        if not title:
            raise CorpusError(path, title_line, "empty title line")
        if not abstract:
            raise CorpusError(path, title_line + 1, f"empty abstract line for {title!r}")
        papers.append(_make_paper(path, title_line, {"title": title, "abstract": abstract}))
    return papers


def _parse_jsonl(path: Path, text: str) -> list[Paper]:
    papers = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise CorpusError(path, number, f"not valid JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise CorpusError(path, number, "expected a JSON object with title and abstract")
        papers.append(_make_paper(path, number, record))
    if not papers:
        raise CorpusError(path, None, "no papers found")
    return papers


def _parse_csv(path: Path, text: str) -> list[Paper]:
    reader = csv.DictReader(io.StringIO(text))
    missing = {"title", "abstract"} - set(reader.fieldnames or [])
    if missing:
        raise CorpusError(path, 1, f"header lacks column(s) {', '.join(sorted(missing))}")
    papers = []
    try:
        for record in reader:
            if None in record:
                raise CorpusError(path, reader.line_num, "more fields than the header names")
            papers.append(_make_paper(path, reader.line_num, record))
    except csv.Error as err:
        raise CorpusError(path, reader.line_num, f"malformed CSV ({err})") from None
    if not papers:
        raise CorpusError(path, None, "no papers found")
    return papers

