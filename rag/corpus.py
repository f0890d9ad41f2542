"""Loading paper abstracts from corpus files.

The format is chosen by the file's suffix: the bundled page-dump text format
(``.txt``: alternating title and abstract lines after some page chrome), JSON
Lines (``.jsonl``/``.ndjson``, and ``.json`` as the arXiv snapshot is named: our records, or arXiv metadata records, see
rag/readers/arxiv.py), CSV (columns ``title``, ``abstract``, optional ``authors``,
``year``, ``url``, ``id``, ``venue``, ``categories``, ``doi``, ``arxiv_id``),
BibTeX (``.bib``) and RIS (``.ris``): one reader module each in rag/readers/.

Each reader yields what it finds entry by entry, streaming large files, and
:func:`read_corpus` checks and selects: an entry without a title or abstract,
or a duplicate, is skipped and reported, because one bad entry must not reject a
5,000-entry export. A file that cannot be read at all raises
:class:`CorpusError` naming the file and the line, before a single paper is
handed on, so a bad file can never half-update an index. The page-dump format
stays strict: a missing line there shifts every later title and abstract.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from rag.paper import Paper, SkippedEntry, normalise_title
from rag.readers import read_file

log = logging.getLogger(__name__)

# Skipped entries listed one by one in a report; past that they are counted.
REPORTED_SKIPS = 20

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
