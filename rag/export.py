"""Exporting answers and conversations as Markdown, JSON and BibTeX.

A reader keeps what the chatbot said and cites what it cited: `rag ask --format`,
the page's "Download conversation" button and the API's export all build their
text here. The functions take plain data (an Answer, or the dicts
``Answer.to_dict()`` gives, which is what the API receives) and return text;
nothing here knows a front-end.

BibTeX entries are built from the papers' metadata alone: the entry type from
the venue, LaTeX specials escaped so that any title reads back as written, and
citation keys in the usual ``vaswani2017attention`` form, unique within a file.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from string import ascii_lowercase
from typing import Any, Literal, get_args

from rag.paper import Paper, normalise_title, year_in
from rag.generation import Answer
from rag.text import STOPWORDS

# What `answer_as` writes (`rag ask --format` offers these besides streamed text).
ExportFormat = Literal["markdown", "json", "bibtex"]
EXPORT_FORMATS: tuple[str, ...] = get_args(ExportFormat)

# A venue naming a journal is an @article, even when another cue below matches it
# ("Transactions of the ACL"; PNAS and Proc. IEEE are journals named "Proceedings").
JOURNAL_VENUE = re.compile(r"journal|transactions|national academy of sciences|^proceedings of the ieee$", re.I)
# Otherwise a venue like these is an @inproceedings (arXiv journal-refs are often
# just the conference's name and year: "ICLR 2024", "Findings of EMNLP 2023"; NeurIPS
# papers appear in "Advances in Neural Information Processing Systems").
PROCEEDINGS_VENUE = re.compile(
    r"proceedings|conference|workshop|symposium|\bproc\.|\bconf\.|neural information processing systems"
    r"|\b(?:NeurIPS|NIPS|ICML|ICLR|ACL|EMNLP|NAACL|EACL|AACL|COLING|CoNLL|LREC|Findings|AAAI|IJCAI"
    r"|CVPR|ICCV|ECCV|KDD|SIGIR|WWW|WSDM|CIKM|RecSys|Interspeech|ICASSP)\b",
    re.I,
)
# LaTeX's special characters, each as LaTeX that prints the character (and that
# bibtexparser and pylatexenc read back as it).
LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "%": r"\%",
    "&": r"\&",
    "#": r"\#",
    "_": r"\_",
    "$": r"\$",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_LATEX_SPECIAL = re.compile("|".join(map(re.escape, LATEX_SPECIALS)))
# In a URL or DOI (not LaTeX-decoded by readers) only these could break the field.
URL_UNSAFE = {"{": "%7B", "}": "%7D", "\\": "%5C", " ": "%20"}
# Letters that Unicode does not decompose into an ASCII letter plus an accent.
ASCII_FOLDS = str.maketrans(
    {"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"}
)
# Title words a citation key skips, as Google Scholar's keys do.
KEY_SKIPPED_WORDS = STOPWORDS | {"towards", "toward", "via"}
# The key of a paper with neither authors nor an ASCII title word.
FALLBACK_KEY = "paper"
# A name with the word "and" in it would split in two: it is braced whole.
AND_WORD = re.compile(r"\band\b", re.I)
# An exported conversation's title (the date follows), what it says when it has no
# exchange, a blank question's heading, and the heading of its references.
CONVERSATION_TITLE = "paper-rag conversation"
NO_QUESTIONS = "No questions were asked."
EMPTY_QUESTION = "(empty question)"
BIBTEX_HEADING = "## References (BibTeX)"
# A code fence, and what one inside the BibTeX block becomes, so a title holding
# one cannot end the block early.
FENCE = "```"
FENCE_REPLACEMENT = "'''"


# --- BibTeX -----------------------------------------------------------------------------


def bibtex_entry(paper: Paper, key: str | None = None) -> str:
    """One entry for the paper (key: ``citation_key(paper)`` unless given).

    @inproceedings (booktitle) for a proceedings-like venue, @article (journal)
    for another venue, @misc without one; an arXiv id adds eprint and
    archivePrefix, and for a preprint (no venue) a note plain styles print.
    """
    venue = _one_line(paper.venue)
    if not venue:
        kind, venue_field = "misc", ""
    elif JOURNAL_VENUE.search(venue) or not PROCEEDINGS_VENUE.search(venue):
        kind, venue_field = "article", "journal"
    else:
        kind, venue_field = "inproceedings", "booktitle"
    arxiv_url = f"https://arxiv.org/abs/{paper.arxiv_id}" if paper.arxiv_id else ""
    fields = [
        ("title", _latex_title(paper.title)),
        ("author", _bibtex_authors(paper.authors)),
        (venue_field, _latex(venue)),
        ("year", str(paper.year or "")),
        ("doi", _url_safe(paper.doi)),
        ("url", _url_safe(paper.url or arxiv_url)),  # a DOI is its own field, not a URL
        ("eprint", _url_safe(paper.arxiv_id)),
        ("archivePrefix", "arXiv" if paper.arxiv_id else ""),
        ("note", f"arXiv preprint arXiv:{_latex(paper.arxiv_id)}" if paper.arxiv_id and not venue else ""),
    ]
    body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields if value)
    return f"@{kind}{{{key or citation_key(paper)},\n{body}\n}}\n"


def bibtex_entries(papers: Iterable[Paper]) -> str:
    """One entry per paper (a paper given twice, by title, once), keys unique in
    the order given: a second "vaswani2017attention" becomes "vaswani2017attentiona".
    "" for no papers."""
    unique: dict[str, Paper] = {}
    for paper in papers:
        unique.setdefault(normalise_title(paper.title), paper)
    used: set[str] = set()
    entries = []
    for paper in unique.values():
        base = key = citation_key(paper)
        collisions = 0
        while key in used:
            key = base + _letters(collisions)
            collisions += 1
        used.add(key)
        entries.append(bibtex_entry(paper, key))
    return "\n".join(entries)


def citation_key(paper: Paper) -> str:
    """First author's surname, year, first significant title word, in lower-case
    ASCII: "vaswani2017attention"; "attention2017" for a paper without authors."""
    names = [name for name in paper.authors.split(",") if name.strip()]
    surname = _ascii_word(names[0].split()[-1]) if names else ""
    title_words = (_ascii_word(word) for word in paper.title.split())
    word = next((w for w in title_words if w and w not in KEY_SKIPPED_WORDS), "")
    year = str(paper.year or "")
    if surname:
        return f"{surname}{year}{word}"
    return f"{word or FALLBACK_KEY}{year}"


# --- answers and conversations ------------------------------------------------------------


@dataclass
class Exchange:
    """One question of a conversation and its answer, as exported."""

    question: str
    answer_markdown: str  # as shown: the text with its [n] markers, then the Sources list
    sources: list[Paper] = field(default_factory=list)  # the papers the answer cites


def exchange_from_answer(answer: Answer) -> Exchange:
    return Exchange(answer.question, answer.markdown(), [source.paper for source in answer.cited])


def exchange_from_citations(question: str, answer_markdown: str, citations: Iterable[Mapping[str, Any]]) -> Exchange:
    """An exchange kept as data (the page's session records, the API's messages with
    their `citations`): the cited papers rebuilt from their citation metadata."""
    return Exchange(question, answer_markdown, [paper_from_citation(c) for c in citations if c.get("title")])


def paper_from_citation(citation: Mapping[str, Any]) -> Paper:
    """The paper back from ``Paper.citation()`` (no abstract: an export does not need one)."""
    doi = str(citation.get("doi") or "")
    url = str(citation.get("url") or "")
    if doi and url == f"https://doi.org/{doi}":  # citation() gives the DOI's address when a paper has no URL
        url = ""
    return Paper(
        title=str(citation["title"]),
        abstract="",
        authors=str(citation.get("authors") or ""),
        year=year_in(citation.get("year")),
        url=url,
        venue=str(citation.get("venue") or ""),
        categories=tuple(citation.get("categories") or ()),
        doi=doi,
        arxiv_id=str(citation.get("arxiv_id") or ""),
    )


def conversation_markdown(exchanges: Sequence[Exchange], day: date | None = None) -> str:
    """The conversation as a Markdown file: a title with the date (default: today),
    each question as a heading over its answer as shown, then a BibTeX block with
    every cited paper once."""
    parts = [f"# {CONVERSATION_TITLE}, {(day or date.today()).isoformat()}"]
    if not exchanges:
        parts.append(NO_QUESTIONS)
    for number, exchange in enumerate(exchanges, start=1):
        parts.append(f"## Q{number}: {_one_line(exchange.question) or EMPTY_QUESTION}")
        parts.append(exchange.answer_markdown.strip())
    entries = bibtex_entries(paper for exchange in exchanges for paper in exchange.sources)
    if entries:
        parts.append(BIBTEX_HEADING)
        parts.append(f"{FENCE}bibtex\n{entries.replace(FENCE, FENCE_REPLACEMENT)}{FENCE}")
    return "\n\n".join(parts) + "\n"


def answer_as(answer: Answer, fmt: ExportFormat) -> str:
    """The answer as inert Markdown (as shown, with its evidence and sources), JSON (``to_dict()``) or the
    BibTeX of its cited papers ("" when it cites none)."""
    if fmt == "markdown":  # a file a Markdown viewer may render: no HTML, image or link from a source
        return answer.safe_markdown()
    if fmt == "json":
        return json.dumps(answer.to_dict(), indent=2)
    if fmt == "bibtex":
        return bibtex_entries(source.paper for source in answer.cited)
    raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")


# --- helpers ------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _latex(text: str) -> str:
    return _LATEX_SPECIAL.sub(lambda found: LATEX_SPECIALS[found.group()], _one_line(text))


def _latex_title(title: str) -> str:
    """Escaped, with words whose capitals matter ("BERT", "DiffCSE", "GPT-4") braced:
    bibliography styles lower-case the rest of a title."""
    return " ".join(f"{{{_latex(word)}}}" if _keeps_case(word) else _latex(word) for word in title.split())


def _keeps_case(word: str) -> bool:
    capitals = sum(c.isupper() for c in word)
    return capitals >= 2 or (capitals == 1 and any(c.isdigit() for c in word))


def _bibtex_authors(authors: str) -> str:
    """"First Last, First Last" as BibTeX's "First Last and First Last"."""
    names = [_one_line(name) for name in authors.split(",") if name.strip()]
    return " and ".join(f"{{{_latex(name)}}}" if AND_WORD.search(name) else _latex(name) for name in names)


def _url_safe(value: str) -> str:
    return "".join(URL_UNSAFE.get(c, c) for c in value.strip())


def _ascii_word(word: str) -> str:
    """Lower-case ASCII letters and digits only: "Müller-Lüdenscheidt" -> "mullerludenscheidt"."""
    decomposed = unicodedata.normalize("NFKD", word.casefold().translate(ASCII_FOLDS))
    return re.sub(r"[^a-z0-9]", "", decomposed.encode("ascii", "ignore").decode())


def _letters(n: int) -> str:
    """0 -> "a", 25 -> "z", 26 -> "aa": the suffixes of colliding keys."""
    letters = ""
    n += 1
    while n:
        n, rest = divmod(n - 1, 26)
        letters = ascii_lowercase[rest] + letters
    return letters
