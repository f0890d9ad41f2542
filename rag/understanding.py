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
from typing import Literal

import numpy as np

from rag.filters import PaperFilter
from rag.retrieval import Retriever, asks_for_several_papers, topic_of

# "different" and "similarity" are left out: research questions use them as content
# words ("different distances", "semantic similarity"), and a false comparison reads
# every candidate paper unfiltered.
COMPARISON_CUES = re.compile(
    r"\b(compare[sd]?|comparing|comparison|vs\.?|versus|differ(?:s|ence|ences)?|both|contrast)\b", re.I
)

Kind = Literal["single", "multi", "comparison"]


@dataclass
class Query:
    question: str  # as asked
    text: str  # standalone: what retrieval searches
    kind: Kind
    topic: str | None  # a "which papers" question's topic, without its frame
    named: dict[str, int]  # paper id -> length of the phrase of `text` that names it
    paper_filter: PaperFilter | None
    vector: np.ndarray = field(repr=False)  # the embedding of `text`

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
    named = retriever.names.named_papers(standalone) if retriever.settings.retrieval_mode == "hybrid" else {}
    several = asks_for_several_papers(question)
    kind: Kind = "comparison" if COMPARISON_CUES.search(question) or len(named) >= 2 else "multi" if several else "single"
    vector = np.asarray(retriever.embedder.embed([standalone])[0])
    return Query(question, standalone, kind, topic_of(standalone) if several else None, named, paper_filter, vector)

