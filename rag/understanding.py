"""The understand stage: what a question asks, decided once for every later stage.

A question becomes a Query: the standalone text retrieval searches (a
follow-up carries the papers of the last answer), its kind (one paper, several
papers, a comparison), the topic of a "which papers" question, the papers it
names, the filter, and its embedding. Retrieval, evidence selection and writing
read these fields; none of them decides the kind again or embeds the question
again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from rag.filters import PaperFilter
from rag.retrieval import Kind, Retriever, asks_for_several_papers, question_kind, topic_of
from rag.text import STOPWORDS, words

# A title given in quotes: at least four words between matching quotes.
QUOTED = re.compile(r"'([^']{12,300})'|\"([^\"]{12,300})\"|“([^”]{12,300})”|‘([^’]{12,300})’")
# Share of a quoted title's words some paper's title must hold for it to be that paper.
TITLE_WORDS_HELD = 0.8
# A question with at most this many content words besides a quoted title asks about that title alone.
WORDS_BESIDES_A_TITLE = 6


@dataclass
class Query:
    question: str  # as asked
    text: str  # standalone: what retrieval searches
    kind: Kind
    topic: str | None  # a "which papers" question's topic, without its frame
    named: dict[str, int]  # paper id -> length of the phrase of `text` that names it
    paper_filter: PaperFilter | None
    vector: np.ndarray = field(repr=False)  # the embedding of `text`
    # A title in quotes that no paper in the collection has, when the question asks about it alone
    # ("Summarise the paper 'X'"): the answer is that the collection does not hold it.
    absent_title: str | None = None

    @property
    def several(self) -> bool:
        return self.kind == "multi"


def understand(
    retriever: Retriever,
    question: str,
    standalone: str,
    paper_filter: PaperFilter | None,
) -> Query:
    """The Query of a (checked, stripped) question whose standalone text is ``standalone``."""
    named = retriever.names.named_papers(standalone) if retriever.settings.retrieval.mode == "hybrid" else {}
    kind = question_kind(question, named)
    several = asks_for_several_papers(question)
    vector = np.asarray(retriever.embedder.embed([standalone])[0])
    topic = topic_of(standalone) if several else None
    absent = None if named else absent_title(question, retriever.titles.values())
    return Query(question, standalone, kind, topic, named, paper_filter, vector, absent)


def absent_title(question: str, titles: Iterable[str]) -> str | None:
    """The title a question quotes and asks about alone, when no paper's title holds most of its
    words (a made-up or missing paper); None otherwise. A question that asks something more
    besides the title, or names a paper of the collection (an attack citing a fake paper around
    a real question), is answered."""
    for match in QUOTED.finditer(question):
        quoted = next(group for group in match.groups() if group)
        quoted_words = {w for w in words(quoted) if w not in STOPWORDS}
        if len(words(quoted)) < 4 or len(quoted_words) < 3:
            continue
        besides = [w for w in words(question[: match.start()] + " " + question[match.end() :]) if w not in STOPWORDS]
        if len(besides) > WORDS_BESIDES_A_TITLE:
            continue
        needed = TITLE_WORDS_HELD * len(quoted_words)
        if not any(len(quoted_words & set(words(title))) >= needed for title in titles):
            return quoted
    return None

