"""Loading paper abstracts from corpus files.

The format is chosen by the file's suffix: the bundled page-dump text format
(``.txt``: alternating title and abstract lines after some page chrome), JSON
Lines (``.jsonl``/``.ndjson``, and ``.json`` as the arXiv snapshot is named: our records, or arXiv metadata records, see
:mod:`rag.arxiv`), CSV (columns ``title``, ``abstract``, optional ``authors``,
``year``, ``url``, ``id``, ``venue``, ``categories``, ``doi``, ``arxiv_id``),
BibTeX (``.bib``, :mod:`rag.bibtex`) and RIS (``.ris``, :mod:`rag.ris`).

Each reader yields what it finds entry by entry, streaming large files, and
:func:`read_corpus` checks and selects: an entry without a title or abstract,
or a duplicate, is skipped and reported, because one bad entry must not reject a
5,000-entry export. A file that cannot be read at all raises
:class:`CorpusError` naming the file and the line, before a single paper is
handed on, so a bad file can never half-update an index. The page-dump format
stays strict: a missing line there shifts every later title and abstract.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from rag.errors import CorpusError
from rag.text import LONE_SURROGATE

log = logging.getLogger(__name__)

# The suffixes read, each naming a format (see the module docstring).
CORPUS_SUFFIXES = (".txt", ".jsonl", ".ndjson", ".json", ".csv", ".bib", ".ris")
# Lines of web-page chrome that the bundled dump carries before the papers.
PAGE_CHROME_PREFIXES = ("Get trending papers in your email inbox",)
# The page's "Subscribe" button text is glued to the first title.
GLUED_PREFIX = "Subscribe"
# A title line longer than this is almost surely an abstract: the title/abstract
# alternation has slipped (a missing line above it).
MAX_TITLE_CHARS = 400
# Characters that would break a chunk id ("<paper id>@<hash>#<n>").
ID_FORBIDDEN_CHARS = ("@", "#")
# How DOIs are often written around the DOI itself ("https://doi.org/10.1/x", "doi:10.1/x").
DOI_PREFIX = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", re.IGNORECASE)
# A year inside a date or a free-text year field ("2020", "2020/05/01/", "2020-05").
YEAR = re.compile(r"\b(\d{4})\b")
# Skipped entries listed one by one in a report; past that they are counted.
REPORTED_SKIPS = 20
# A JSON escape of half a surrogate pair ("\ud83d"), which may decode to a lone surrogate:
# searched for in the raw line first, so a multi-GB snapshot is not checked twice.
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


@dataclass(frozen=True)
class Paper:
    title: str
    abstract: str
    id: str = ""
    authors: str = ""  # "First Last, First Last, ..."
    year: int | None = None
    url: str = ""
    venue: str = ""  # journal, proceedings or arXiv journal-ref
    categories: tuple[str, ...] = ()  # arXiv categories or keywords, e.g. ("cs.CL", "cs.LG")
    doi: str = ""
    arxiv_id: str = ""
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", paper_id_for(self.title))
        object.__setattr__(self, "categories", tuple(self.categories))

    @property
    def content_hash(self) -> str:
        """Changes whenever anything that is embedded, shown or filtered on changes."""
        fields: list = [self.title, self.abstract, self.authors, self.year, self.url]
        extra = [self.venue, list(self.categories), self.doi, self.arxiv_id]
        if any(extra):  # papers without them keep the hash older indexes recorded
            fields += extra
        return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:16]

    @property
    def link(self) -> str:
        """Where to read the paper: its URL, else its DOI or arXiv page; "" when unknown."""
        if self.url:
            return self.url
        if self.doi:
            return f"https://doi.org/{self.doi}"
        if self.arxiv_id:
            return f"https://arxiv.org/abs/{self.arxiv_id}"
        return ""

    @property
    def byline(self) -> str:
        """"Vaswani et al. (2017)", "Smith and Jones", "(2020)" or ""."""
        names = [name.strip() for name in self.authors.split(",") if name.strip()]
        surnames = [name.split()[-1] for name in names]
        if len(surnames) > 2:
            who = f"{surnames[0]} et al."
        else:
            who = " and ".join(surnames)
        year = f"({self.year})" if self.year else ""
        return " ".join(part for part in (who, year) if part)

    def citation(self) -> dict:
        """What a reader needs to find the paper again."""
        return {
            "title": self.title,
            "authors": self.authors,
            "year": self.year,
            "venue": self.venue,
            "categories": list(self.categories),
            "doi": self.doi,
            "arxiv_id": self.arxiv_id,
            "url": self.link,
        }


def normalise_title(title: str) -> str:
    return " ".join(title.casefold().split())


def paper_id_for(title: str) -> str:
    """Stable id from the normalised title, so it survives edits to the abstract."""
    return "p" + hashlib.sha1(normalise_title(title).encode()).hexdigest()[:12]


def stable_paper_id(title: str, *, citation_key: str = "", doi: str = "", arxiv_id: str = "") -> str:
    """An id that survives re-exports, so a re-exported file re-embeds only what changed.

    The first of: the citation key, the DOI, the arXiv id, the normalised title.
    Never holds "@" or "#", which separate the parts of a chunk id.
    """
    if citation_key:
        return "k" + hashlib.sha1(f"bibtex-key:{citation_key}".encode()).hexdigest()[:12]
    if doi:
        return "d" + hashlib.sha1(doi.lower().encode()).hexdigest()[:12]
    if arxiv_id:
        return "arxiv-" + arxiv_id.replace("/", "_")  # old-style ids: "math/0309136"
    return paper_id_for(title)


def clean_text(value: object) -> str:
    """The value as one line of text, white space collapsed; "" for None."""
    return " ".join(str(value).split()) if value is not None else ""


def clean_doi(value: object) -> str:
    """The bare DOI ("10.18653/v1/x"), without a doi.org address or "doi:" around it."""
    return DOI_PREFIX.sub("", clean_text(value))


def split_keywords(value: object) -> tuple[str, ...]:
    """Keywords or categories from a list, or from a string separated by "," or ";"."""
    items = value if isinstance(value, list) else re.split(r"[,;]", clean_text(value))
    cleaned = (clean_text(item) for item in items)
    return tuple(dict.fromkeys(item for item in cleaned if item))  # first of each, in order


def year_in(value: object) -> int | None:
    """The first four-digit year in a year or date field, or None."""
    found = YEAR.search(clean_text(value))
    return int(found.group(1)) if found else None


@dataclass(frozen=True)
class SkippedEntry:
    """An entry of a corpus file that was not loaded, and why."""

    path: Path
    line: int | None
    label: str  # how the user finds the entry: citation key, title or arXiv id
    reason: str  # "has no abstract", "duplicate of refs.bib:3", ...

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else str(self.path)
        return f"{where}: {self.label} {self.reason}"


@dataclass(frozen=True)
class FoundPaper:
    """A paper as a reader found it, before read_corpus checks and selects it."""

    paper: Paper  # its title or abstract may be empty: read_corpus skips those
    path: Path
    line: int | None
    label: str  # how the user finds the entry: citation key, title or arXiv id
    published: date | None = None  # the first version's date, where the format gives one

    def skipped(self, reason: str) -> SkippedEntry:
        return SkippedEntry(self.path, self.line, self.label or "entry", reason)


@dataclass(frozen=True)
class ArxivSelection:
    """Which papers to load: any of the categories, first published within [since, until].

    A category "cs" takes "cs.CL" and "cs.LG"; "cs.CL" takes only "cs.CL". Where
    a format gives only a year, the year must fall within the years of the
    bounds. A paper without categories fails a category selection, one without
    a date or year a date selection.
    """

    categories: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None

    def keeps(self, paper: Paper, published: date | None = None) -> bool:
        return self._has_category(paper.categories) and self._in_dates(published, paper.year)

    def _has_category(self, categories: tuple[str, ...]) -> bool:
        if not self.categories:
            return True
        wanted = [category.casefold() for category in self.categories]
        return any(
            category == one or category.startswith(one + ".")
            for category in (c.casefold() for c in categories)
            for one in wanted
        )

    def _in_dates(self, published: date | None, year: int | None) -> bool:
        if self.since is None and self.until is None:
            return True
        if published is not None:
            return (self.since is None or self.since <= published) and (self.until is None or published <= self.until)
        if year is not None:
            return (self.since is None or self.since.year <= year) and (self.until is None or year <= self.until.year)
        return False


@dataclass
class CorpusLoad:
    """What read_corpus loaded, and what it left out."""

    papers: list[Paper]
    skipped: list[SkippedEntry]
    not_selected: int = 0  # papers read but outside the selection (not "skipped")

    def report_lines(self) -> list[str]:
        """What to tell the user: the skipped entries (the first REPORTED_SKIPS), then the counts."""
        lines = [f"skipped {entry}" for entry in self.skipped[:REPORTED_SKIPS]]
        if len(self.skipped) > REPORTED_SKIPS:
            lines.append(f"... and {len(self.skipped) - REPORTED_SKIPS} more skipped entries")
        counts = [f"{len(self.papers)} papers loaded"]
        if self.skipped:
            counts.append(f"{len(self.skipped)} skipped")
        if self.not_selected:
            counts.append(f"{self.not_selected} not selected")
        return lines + [", ".join(counts)]


def read_corpus(paths: Iterable[Path | str], selection: ArxivSelection | None = None) -> CorpusLoad:
    """Read, check and select the papers of several files; duplicates keep the first.

    Raises CorpusError for a file that cannot be read at all (see the module docstring).
    """
    load = CorpusLoad(papers=[], skipped=[])
    first_by_id: dict[str, Paper] = {}
    first_by_title: dict[str, Paper] = {}
    for raw_path in paths:
        for found in read_file(Path(raw_path)):
            if isinstance(found, SkippedEntry):
                load.skipped.append(found)
                continue
            paper = found.paper
            if selection is not None and not selection.keeps(paper, found.published):
                load.not_selected += 1
                continue
            if not paper.title:
                load.skipped.append(found.skipped("has no title"))
                continue
            if not paper.abstract:
                load.skipped.append(found.skipped("has no abstract"))
                continue
            title_key = normalise_title(paper.title)
            first = first_by_id.get(paper.id) or first_by_title.get(title_key)
            if first is not None:
                load.skipped.append(found.skipped(f"duplicate of {first.source}"))
                continue
            first_by_id[paper.id] = first_by_title[title_key] = paper
            load.papers.append(paper)
    return load


def load_corpus(paths: Iterable[Path | str]) -> list[Paper]:
    """The papers of read_corpus(paths), the skipped entries logged as warnings."""
    load = read_corpus(paths)
    for entry in load.skipped:
        log.warning("skipped %s", entry)
    return load.papers


def read_file(path: Path) -> Iterator[FoundPaper | SkippedEntry]:
    """The entries of one file, in file order, read by the reader for its suffix."""
    if not path.exists():
        raise CorpusError(path, None, "file not found")
    if not path.is_file():
        raise CorpusError(path, None, "not a file")
    suffix = path.suffix.lower()
    if suffix in (".txt", ""):
        return _read_page_dump(path)
    if suffix in (".jsonl", ".ndjson", ".json"):  # the arXiv snapshot is JSON Lines named .json
        return _read_jsonl(path)
    if suffix == ".csv":
        return _read_csv(path)
    if suffix == ".bib":
        from rag.bibtex import read_bibtex  # imported here: it imports this module

        return read_bibtex(path)
    if suffix == ".ris":
        from rag.ris import read_ris  # imported here: it imports this module

        return read_ris(path)
    raise CorpusError(path, None, f"unknown corpus format {suffix!r} (use {', '.join(CORPUS_SUFFIXES)})")


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


def _our_record(path: Path, line: int, record: dict) -> FoundPaper:
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


def _read_page_dump(path: Path) -> Iterator[FoundPaper]:
    # Split at "\n" alone, as the line numbers count: str.splitlines() also splits at
    # U+2028, U+0085 or \x1e inside an abstract, which shifted every later title and abstract.
    lines = [line.rstrip("\r\n") for _, line in utf8_lines(path)]
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
        yield _our_record(path, title_line, {"title": title, "abstract": abstract})


def _read_jsonl(path: Path) -> Iterator[FoundPaper]:
    """Our records and arXiv metadata records, told apart record by record."""
    from rag.arxiv import arxiv_record, is_arxiv_record  # it imports this module

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
        yield arxiv_record(path, number, record) if is_arxiv_record(record) else _our_record(path, number, record)
    if not found_any:
        raise CorpusError(path, None, "no papers found")


def _read_csv(path: Path) -> Iterator[FoundPaper]:
    reader = csv.DictReader(line for _, line in utf8_lines(path))
    try:
        missing = {"title", "abstract"} - set(reader.fieldnames or [])
        if missing:
            raise CorpusError(path, 1, f"header lacks column(s) {', '.join(sorted(missing))}")
        found_any = False
        for record in reader:
            if None in record:
                raise CorpusError(path, reader.line_num, "more fields than the header names")
            found_any = True
            yield _our_record(path, reader.line_num, record)
    except csv.Error as err:  # the csv reader's count: the DictReader's lags while it reads the header
        raise CorpusError(path, reader.reader.line_num, f"malformed CSV ({err})") from None
    if not found_any:
        raise CorpusError(path, None, "no papers found")
