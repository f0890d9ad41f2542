"""Checking a written answer sentence against the source sentences it cites.

A sentence the model wrote is shown only when the sentences it cites support it:
- every number, name and technical term in it occurs in them (or in the cited
  paper's title, which names the paper), including the terms it took from the
  question: a benchmark or model the question asks about that the evidence does
  not contain is exactly what an invented answer asserts;
- a claim of authorship ("introduced", "proposed") needs one in the evidence, or
  what it claims named in the cited paper's title: a paper that uses a famous
  model did not introduce it;
- it says something the question did not: at least one of its content words
  comes from the evidence and neither from the question nor from the cited
  paper's title (an echo of the question under a citation answers nothing);
- its content is covered: at least ``min_coverage`` of its content words occur in
  the cited sentences or the question (restating the question is no invention),
  and its embedding is at least ``min_similarity`` similar to the closest cited
  sentence.

A sentence that fails is replaced by the shortest cited sentence that carries
the same answer (it contains every term the written sentence asserted), or,
for an echo of the question, by the cited sentence that states what it echoes;
else it is dropped. Lexical checks are crude (a synonym fails, a negation passes); they
err on the side of quoting the source.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from rag.text import STOPWORDS

TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’.-]*[A-Za-z0-9%]|[A-Za-z0-9]%?")
POSSESSIVE = re.compile(r"['’]s$")
ACRONYM = re.compile(r"[A-Z]{3,6}s?")  # two letters spell out by chance too often
NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*%?")
# Words every answer may use without the evidence saying them: how sentences are framed.
FRAME_WORDS = STOPWORDS | {
    "abstract", "abstracts", "author", "authors", "according", "describe", "describes", "described",
    "also", "show", "shows", "shown", "find", "finds", "found", "state", "states", "stated", "report", "reports",
    "reported", "say", "says", "main", "one", "two", "first", "second", "new", "like", "well", "many", "much",
}
SUFFIXES = ("ations", "ation", "ings", "ing", "ies", "ied", "ed", "es", "s", "ly")
# Sentence vectors a verifier keeps (a few answers' evidence and sentences).
VECTORS_KEPT = 4096
# Verbs that claim a paper made something: the evidence must make such a claim too.
AUTHORSHIP = frozenset({"introduc", "propos", "present", "develop", "creat", "invent", "design", "coin", "pioneer"})


def fold(word: str) -> str:
    """A word reduced to a common stem, so "introduces", "introduced" and "introduce" meet."""
    word = word.casefold().strip(".'’-")
    if word.isdigit() or len(word) <= 4:
        return word
    for suffix in SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            word = word[: -len(suffix)]
            break
    return word.rstrip("e")


def content_words(text: str) -> list[str]:
    """Folded words that carry content: no function or framing words, no bare punctuation."""
    return [fold(t) for t in TOKEN.findall(text) if t.casefold() not in FRAME_WORDS and len(t) > 1 or t.isdigit()]


def terms(sentence: str) -> list[str]:
    """Numbers, names and technical terms: a token with a digit, or a capital letter
    anywhere but the start of the sentence's first word."""
    found = []
    for position, match in enumerate(TOKEN.finditer(sentence)):
        token = match.group(0).rstrip(".")
        if any(c.isdigit() for c in token) or any(c.isupper() for c in (token if position else token[1:])):
            found.append(token)
    return found


def _normalised(text: str) -> str:
    return " " + " ".join(t.casefold().rstrip(".") for t in TOKEN.findall(text)) + " "


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "").rstrip("%") for n in NUMBER.findall(text)}


@dataclass
class SentenceCheck:
    supported: bool
    missing_terms: list[str] = field(default_factory=list)  # numbers, names, terms the evidence lacks
    unsupported_claims: list[str] = field(default_factory=list)  # authorship the evidence does not claim
    new_words: int = 0  # content words from the evidence that the question does not contain
    coverage: float = 0.0
    similarity: float = 0.0

    @property
    def reason(self) -> str:
        if self.supported:
            return ""
        if self.missing_terms:
            return f"not in the cited sentences: {', '.join(self.missing_terms[:4])}"
        if self.unsupported_claims:
            return f"the cited sentences make no such claim: {', '.join(self.unsupported_claims)}"
        if not self.new_words:
            return "it only repeats the question"
        return f"too little of it is in the cited sentences (coverage {self.coverage:.2f}, similarity {self.similarity:.2f})"


class SentenceVerifier:
    """Checks written sentences against cited sentences; ``embed`` gives unit vectors."""

    def __init__(self, embed: Callable[[list[str]], Sequence], min_coverage: float, min_similarity: float):
        self.embed = embed
        # A written sentence is checked against several papers' evidence in turn, and the same
        # evidence against every sentence of an answer: each text is embedded once.
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self.min_coverage = min_coverage
        self.min_similarity = min_similarity

    def check(self, sentence: str, cited: Sequence[str], question: str, titles: Sequence[str] = ()) -> SentenceCheck:
        evidence = " ".join([*cited, *titles])
        known = _normalised(evidence)
        known_words = set(content_words(evidence))
        known_numbers = _numbers(evidence)
        missing = [t for t in terms(sentence) if not _term_known(t, known, known_numbers, known_words)]
        words = content_words(sentence)
        claims = self._unsupported_claims(words, cited, titles)
        question_words = set(content_words(question))
        title_words = set(content_words(" ".join(titles)))  # naming the paper says nothing new
        new_words = sum(w in known_words and w not in question_words and w not in title_words for w in words)
        coverage = sum(w in known_words or w in question_words for w in words) / len(words) if words else 0.0
        similarity = self._similarity(sentence, cited)
        supported = (
            bool(cited)
            and not missing
            and not claims
            and new_words > 0
            and coverage >= self.min_coverage
            and similarity >= self.min_similarity
        )
        return SentenceCheck(supported, missing, claims, new_words, round(coverage, 3), round(similarity, 3))

    @staticmethod
    def _unsupported_claims(words: list[str], cited: Sequence[str], titles: Sequence[str]) -> list[str]:
        """Authorship the sentence claims that neither the evidence ("we propose ...") nor the
        cited paper's title (what it made: two of the sentence's other words) supports."""
        claimed = sorted({w for w in words if w in AUTHORSHIP})
        if not claimed or AUTHORSHIP & set(content_words(" ".join(cited))):
            return []
        title_words = set(content_words(" ".join(titles)))
        return [] if sum(w in title_words for w in set(words) - AUTHORSHIP) >= 2 else claimed

    def similarities(self, sentence: str, cited: Sequence[str]) -> np.ndarray:
        """Cosine similarity of the sentence to each cited sentence."""
        if not cited:
            return np.zeros(0)
        vectors = self._embedded([sentence, *cited])
        return vectors[1:] @ vectors[0]

    def _embedded(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            for text, vector in zip(missing, np.asarray(self.embed(missing))):
                self._vectors[text] = vector
        for text in texts:
            self._vectors.move_to_end(text)
        while len(self._vectors) > VECTORS_KEPT:
            self._vectors.popitem(last=False)
        return np.asarray([self._vectors[t] for t in texts])

    def _similarity(self, sentence: str, cited: Sequence[str]) -> float:
        return float(np.max(self.similarities(sentence, cited))) if cited else 0.0

    @staticmethod
    def replacement(sentence: str, cited: Sequence[str]) -> str | None:
        """The shortest cited sentence that carries the same answer: it contains every number,
        name and term the written sentence asserted (None: no cited sentence does)."""
        asserted = terms(sentence)
        carrying = [
            s for s in cited if all(_term_known(t, _normalised(s), _numbers(s), set(content_words(s))) for t in asserted)
        ]
        return min(carrying, key=len) if carrying else None

    def echo_replacement(self, sentence: str, cited: Sequence[str], question: str) -> str | None:
        """For a sentence that only restates the question (the small model's commonest miss):
        the cited sentence that states what it restates, i.e. that holds at least half of the
        question words it used and is the closest to it (None: none does, as when the evidence
        never mentions what the question asks about)."""
        question_words = set(content_words(question))
        asked = {w for w in content_words(sentence) if w in question_words}
        if not asked or not cited:
            return None
        candidates = [
            (float(similarity), text)
            for text, similarity in zip(cited, self.similarities(sentence, cited))
            if len(asked & set(content_words(text))) * 2 >= len(asked) and similarity >= self.min_similarity
        ]
        return max(candidates)[1] if candidates else None


def _term_known(term: str, known: str, known_numbers: set[str], known_words: set[str]) -> bool:
    if NUMBER.fullmatch(term):
        return term.replace(",", "").rstrip("%") in known_numbers
    term = POSSESSIVE.sub("", term)
    return (
        _normalised(term) in known
        or fold(term) in known_words
        or _derived_word_known(fold(term), known_words)
        or _acronym_known(term, known)
    )


def _derived_word_known(word: str, known_words: set[str]) -> bool:
    """A name and the word made from it ("Malaysia" / "Malaysian", "Brazil" / "Brazilian"): one is
    the other plus at most three letters. Only for plain words: "ViT-L" is not "ViT"."""
    if not word.isalpha() or len(word) < 5:
        return False
    return any(
        k.isalpha() and len(k) >= 5 and 0 < abs(len(k) - len(word)) <= 3 and (k.startswith(word) or word.startswith(k))
        for k in known_words
    )


def _acronym_known(term: str, known: str) -> bool:
    """An acronym whose words the evidence spells out: "NER" for "named entity recognition",
    "POS" for "part-of-speech"."""
    if not ACRONYM.fullmatch(term):
        return False
    words = [w for w in re.split(r"[\s-]+", known) if w]
    initials = "".join(w[0] for w in words)
    return term.rstrip("s").casefold() in initials


def restates(text: str, source: str, min_coverage: float = 0.9) -> bool:
    """Whether a short text restates its source sentence: every number, name and term of it
    occurs there, and at least ``min_coverage`` of its content words do (a table cell's check)."""
    known = _normalised(source)
    known_words = set(content_words(source))
    numbers = _numbers(source)
    if any(not _term_known(t, known, numbers, known_words) for t in terms(text)):
        return False
    words = content_words(text)
    return bool(words) and sum(w in known_words for w in words) >= min_coverage * len(words)
