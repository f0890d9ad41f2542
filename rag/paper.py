"""The paper model shared by every stage, and the text cleaning its readers share.

A Paper is what one corpus entry becomes: title, abstract and what a reader
needs to find it again (authors, year, venue, DOI, arXiv id, URL). Its id is
stable across re-exports (citation key, DOI, arXiv id, else the normalised
title), so a re-read file re-embeds only what changed.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

# Characters that would break a chunk id ("<paper id>@<hash>#<n>").
ID_FORBIDDEN_CHARS = ("@", "#")
# How DOIs are often written around the DOI itself ("https://doi.org/10.1/x", "doi:10.1/x").
DOI_PREFIX = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", re.IGNORECASE)
# A year inside a date or a free-text year field ("2020", "2020/05/01/", "2020-05").
YEAR = re.compile(r"\b(\d{4})\b")


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

    def reference(self) -> str:
        """The paper on one line of a sources list: "Title — Vaswani et al. (2017) — https://..."."""
        return self.title + "".join(f" — {part}" for part in (self.byline, self.link) if part)

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


def short_name(title: str) -> str:
    """"DiffCSE" for "DiffCSE: Difference-based ...": how the answer names a paper."""
    head = title.split(":", 1)[0].strip()
    return head if ":" in title and 0 < len(head) <= 60 else title


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
