"""The select-evidence stage: the few sentences of each candidate paper the model writes from.

Each candidate paper gives its sentences closest to the question (the
embedder's cosine plus the share of the question's words they contain), kept
in the paper's own order; the best-ranked paper gives more than the others. A sentence addressed to an
assistant or carrying markup (rag/hostile.py) is never selected: the model
never sees it, no answer quotes it, and the evidence shows a note instead.
Few sentences keep the prompt short, which is what decides time to first
token on a small local model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from rag.paper import Paper
from rag.embedding import Embedder
from rag.hostile import judge_sentence
from rag.text import split_sentences
from rag.understanding import Query
from rag.verification import content_words


# A sentence of fewer words is a label (a structured abstract's "Findings."), not evidence.
LABEL_WORDS = 3


@dataclass
class Source:
    """A paper as the answer numbers it, with the evidence sentences the model was given."""

    number: int
    paper: Paper
    sentences: list[str]
    supporting: list[int] = field(default_factory=list)  # indexes of the sentences an answer sentence cites
    withheld: list[str] = field(default_factory=list)  # notes on sentences kept out (instructions, markup)

    @property
    def title(self) -> str:
        return self.paper.title

    @property
    def text(self) -> str:
        return " ".join(self.sentences)

    @property
    def supporting_flags(self) -> list[bool]:
        """For each sentence, in order: whether an answer sentence rests on it."""
        return [i in self.supporting for i in range(len(self.sentences))]

    def to_dict(self) -> dict:
        """The paper as data (its citation, its number in the answer), the sentences the model was
        given (``supporting`` flags, in the same order, those an answer sentence rests on), and notes
        on sentences kept out of the evidence (instructions to assistants, markup): the one form of
        `rag ask --format json`, evaluation rows and the API's citations."""
        return {
            **self.paper.citation(),
            "number": self.number,
            "sentences": self.sentences,
            "supporting": self.supporting_flags,
            "withheld": self.withheld,
        }


def usable_sentences(abstract: str) -> tuple[list[str], list[str]]:
    """(the abstract's sentences that may be evidence, notes on those kept out). A fragment of
    fewer than LABEL_WORDS words ("Findings.", a structured abstract's heading) is no evidence."""
    kept, notes = [], []
    for sentence in split_sentences(abstract):
        if len(sentence.split()) < LABEL_WORDS:
            continue
        verdict = judge_sentence(sentence)
        if not verdict.hostile:
            kept.append(sentence)
        elif verdict.note and verdict.note not in notes:
            notes.append(verdict.note)
    return kept, notes


def select_evidence(
    embedder: Embedder, query: Query, papers: Sequence[Paper], per_paper: Sequence[int], word_weight: float
) -> list[Source]:
    """Each paper numbered in order with its ``per_paper[i]`` usable sentences closest to the
    question: cosine similarity to the query's embedding plus ``word_weight`` times the share
    of the question's content words the sentence contains (one embedding call for every sentence)."""
    usable = [usable_sentences(paper.abstract) for paper in papers]
    flat = [s for sentences, _ in usable for s in sentences]
    question_vector = query.vector
    sentence_vectors = np.asarray(embedder.embed(flat)) if flat else np.zeros((0, len(question_vector)))
    question_words = set(content_words(query.question))
    sources, offset = [], 0
    for number, (paper, (sentences, notes), wanted) in enumerate(zip(papers, usable, per_paper), start=1):
        own = sentence_vectors[offset : offset + len(sentences)]
        offset += len(sentences)
        score = closeness(question_vector, question_words, own, sentences, word_weight)
        keep = sorted(int(i) for i in np.argsort(-score)[:wanted])
        sources.append(Source(number, paper, [sentences[i] for i in keep], withheld=notes))
    return sources


def question_parts(question: str) -> list[str]:
    """The things a question asks: its sentences that end with a question mark ("Which model
    ...? Which benchmarks ...?"), without the statements that set them up ("I need a test set
    for X. Which languages does it cover?"); a question with none is its own only part."""
    parts = [p for p in split_sentences(question) if p.endswith("?") and len(p.split()) >= 3]
    return parts or [question]


def best_sentence_for(embedder: Embedder, text: str, sentences: Sequence[str], word_weight: float) -> int:
    """The index of the sentence closest to ``text`` (cosine plus word_weight x shared words)."""
    vectors = np.asarray(embedder.embed([text, *sentences]))
    return int(np.argmax(closeness(vectors[0], set(content_words(text)), vectors[1:], sentences, word_weight)))


def closeness(
    vector: np.ndarray, words: set[str], sentence_vectors: np.ndarray, sentences: Sequence[str], word_weight: float
) -> np.ndarray:
    """How close each sentence is to a text (its vector and content words): cosine similarity
    plus ``word_weight`` times the share of the text's words the sentence holds."""
    shared = np.array([len(words & set(content_words(s))) for s in sentences], dtype=float)
    return sentence_vectors @ vector + word_weight * shared / max(1, len(words))
