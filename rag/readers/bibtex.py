"""Reading BibTeX (``.bib``) exports of reference managers (Zotero, Better BibTeX, JabRef, Mendeley).

bibtexparser 2 splits the file into entries, resolves ``@string`` macros,
lower-cases field names and splits author lists. The LaTeX in fields of prose
(accents such as ``{\\"u}``, ``\\emph{}``, protective braces ``{BERT}``) is
decoded here with pylatexenc, field by field: bibtexparser's
``LatexDecodingMiddleware`` decodes every field, and in a URL or a DOI it would
read "%" as the start of a comment and "~" as a space. bibtexparser 2.1 does not
follow ``crossref``; this module does, for the venue and the year.

An entry the parser cannot make sense of is skipped and reported with its
line; a file of which no entry can be read raises :class:`CorpusError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from bibtexparser import parse_string
from bibtexparser.middlewares import NormalizeFieldKeys, SeparateCoAuthors
from bibtexparser.middlewares.names import parse_single_name_into_parts
from bibtexparser.model import Block, DuplicateBlockKeyBlock, Entry, ParsingFailedBlock
from pylatexenc.latex2text import LatexNodes2Text

from rag.paper import FoundPaper, Paper, SkippedEntry, clean_doi, clean_text, split_keywords, stable_paper_id, year_in
from rag.readers.base import read_utf8_text
from rag.errors import CorpusError

# Where the venue is, the first present winning (journaltitle is biblatex's journal).
VENUE_FIELDS = ("journal", "journaltitle", "booktitle")
# What an entry takes, when it lacks them, from the volume its crossref names.
INHERITED_FIELDS = ("journal", "journaltitle", "booktitle", "year", "date")
# The archive named by archiveprefix (BibTeX) or eprinttype (biblatex) when eprint is an arXiv id.
ARXIV_ARCHIVE = "arxiv"
# "%" and "&" not escaped: LaTeX reads a comment and a table column, but exports
# that leave them so mean the characters ("improves accuracy by 5%").
UNESCAPED_SPECIALS = re.compile(r"(?<!\\)([%&])")
# Text without any of these reads the same decoded or not, and pylatexenc takes
# some 5 ms for an abstract: most abstracts of a large export skip it.
LATEX_MARKUP = re.compile(r"[\\{}$~]|--|``|''")
# The citation key in the first line of an entry that could not be parsed: "@article{smith2020,".
FAILED_ENTRY_KEY = re.compile(r"@\w+\s*\{\s*([^,\s}]+)")

_LATEX = LatexNodes2Text(math_mode="verbatim")  # "$\alpha$" stays as written


def read_bibtex(path: Path) -> Iterator[FoundPaper | SkippedEntry]:
    library = parse_string(read_utf8_text(path), append_middleware=[NormalizeFieldKeys(), SeparateCoAuthors()])
    entries, failed = library.entries, library.failed_blocks
    if not entries:
        if failed:
            raise CorpusError(path, _line(failed[0]), f"no entry could be read ({_problem(failed[0])})")
        raise CorpusError(path, None, "no BibTeX entries found")
    by_key = {entry.key.casefold(): entry for entry in entries}
    # A volume other entries crossref is where papers appeared, not a paper.
    volumes = {clean_text(_fields(entry).get("crossref")).casefold() for entry in entries} - {""}
    for block in library.blocks:
        if isinstance(block, Entry) and block.key.casefold() not in volumes:
            yield _paper(path, block, by_key)
        elif isinstance(block, ParsingFailedBlock):
            yield _failed(path, block)


def _paper(path: Path, entry: Entry, by_key: dict[str, Entry]) -> FoundPaper:
    fields = _fields(entry)
    volume = by_key.get(clean_text(fields.get("crossref")).casefold())
    if volume is not None:
        fields = {**_inherited(volume), **fields}
    line = _line(entry)
    title = _text(fields.get("title"))
    doi = clean_doi(fields.get("doi"))
    paper = Paper(
        title=title,
        abstract=_text(fields.get("abstract")),
        id=stable_paper_id(title, citation_key=entry.key, doi=doi),
        authors=", ".join(_person(name) for name in fields.get("author", [])),
        year=year_in(fields.get("year")) or year_in(fields.get("date")),
        url=clean_text(fields.get("url")),
        venue=_text(next((fields[name] for name in VENUE_FIELDS if fields.get(name)), None)),
        categories=split_keywords(_text(fields.get("keywords"))),
        doi=doi,
        arxiv_id=_arxiv_id(fields),
        source=f"{path}:{line}",
    )
    return FoundPaper(paper, path, line, label=entry.key)


def _failed(path: Path, block: ParsingFailedBlock) -> SkippedEntry:
    if isinstance(block, DuplicateBlockKeyBlock):
        first = f"{path}:{_line(block.previous_block)}"
        return SkippedEntry(path, _line(block), block.key, f"duplicate of {first}")
    key = FAILED_ENTRY_KEY.search(block.raw or "")
    label = key.group(1) if key else "entry"
    return SkippedEntry(path, _line(block), label, f"could not be read ({_problem(block)})")


def _fields(entry: Entry) -> dict[str, object]:
    return {field.key: field.value for field in entry.fields}


def _inherited(volume: Entry) -> dict[str, object]:
    """What an entry takes from the volume it crossrefs; the volume's title is its booktitle."""
    fields = _fields(volume)
    inherited = {name: fields[name] for name in INHERITED_FIELDS if name in fields}
    if "title" in fields:
        inherited.setdefault("booktitle", fields["title"])
    return inherited


def _text(value: object) -> str:
    """A field's LaTeX as plain text on one line; "" for None."""
    if value is None:
        return ""
    text = str(value)
    if LATEX_MARKUP.search(text):
        text = _LATEX.latex_to_text(UNESCAPED_SPECIALS.sub(r"\\\1", text))
    return clean_text(text)


def _person(name: str) -> str:
    """"M{\\"u}ller, Thomas" -> "Thomas Müller" (never fails: a malformed name is read as well as it can be)."""
    return _text(parse_single_name_into_parts(name, strict=False).merge_first_name_first)


def _arxiv_id(fields: dict[str, object]) -> str:
    archive = clean_text(fields.get("archiveprefix") or fields.get("eprinttype")).casefold()
    return clean_text(fields.get("eprint")) if archive == ARXIV_ARCHIVE else ""


def _line(block: Block) -> int | None:
    """The 1-based line a block starts on (bibtexparser counts from 0)."""
    return block.start_line + 1 if block.start_line is not None else None


def _problem(block: ParsingFailedBlock) -> str:
    """What the parser found wrong: its abort reason, else the error's message."""
    return clean_text(getattr(block.error, "abort_reason", None) or block.error)
