"""The one sentence splitter and the one word tokeniser, shared by chunking,
BM25, name matching, answer checking and scoring.

A sentence ends at ".", "!" or "?" (with any citation markers such as "[1]"
that follow it) when white space and a capital, a digit, a quote, a bracket
or a parenthesis come next; so "e.g. dropout" stays whole.
"""

from __future__ import annotations

import re

WORD = re.compile(r"[a-z0-9]+")
# Function words: ignored by BM25 and never enough on their own to name a paper.
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each
    few for from further had has have having he her here hers herself him himself his how
    i if in into is it its itself just me more most my myself no nor not now of off on
    once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with
    would you your yours yourself yourselves paper papers work study approach method
    methods propose proposed using use used via""".split()
)
# Half of a UTF-16 surrogate pair: JSON's "\ud800" escapes and argv's undecodable bytes
# make such strings, and tokenizers (and UTF-8 encoders) refuse them.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
SENTENCE_END = re.compile(r"[.!?](?:\s*\[\d[\d\s,;–-]*\])*(?=\s+[A-Z0-9(\[\"'“‘])")


def split_sentences(text: str) -> list[str]:
    sentences, start = [], 0
    for end in SENTENCE_END.finditer(text):
        sentences.append(text[start : end.end()].strip())
        start = end.end()
    sentences.append(text[start:].strip())
    return [s for s in sentences if s]


def words(text: str) -> list[str]:
    return WORD.findall(text.casefold())


def stem(word: str) -> str:
    # Plural folding is the one normalisation that measurably helps here.
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def bm25_terms(text: str) -> list[str]:
    """The terms BM25 indexes and searches: content words, plurals folded."""
    return [stem(w) for w in words(text) if w not in STOPWORDS]


def question_problem(text: str, max_chars: int | None) -> str | None:
    """Why a question or search query (stripped) cannot be answered or searched at all, said to a
    person; None when it can. The one check of a question: every way in asks it. max_chars:
    the limit on what a person typed (None for a query built from it, e.g. with a follow-up's titles)."""
    text = text.strip()
    if not text:
        return "Please type a question."
    if max_chars is not None and len(text) > max_chars:
        return f"That question is {len(text):,} characters long; the limit is {max_chars:,}. Please shorten it."
    return unreadable_text_problem(text)


def unreadable_text_problem(text: str) -> str | None:
    """Why text cannot be searched as a question (None when it can): a broken
    character, or no letter or digit at all (only punctuation, controls or invisible marks)."""
    broken = LONE_SURROGATE.search(text)
    if broken:
        return (
            f"The question holds a broken character (U+{ord(broken.group()):04X}, half of a surrogate pair) "
            f"at position {broken.start() + 1}; please retype it."
        )
    if not any(char.isalnum() for char in text):
        return "Please type a question: this one has no letters or digits."
    return None
