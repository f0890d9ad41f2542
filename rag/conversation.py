"""Conversation: turning a follow-up into a standalone query for retrieval.

"What dataset did it use?" means nothing to a retriever. When there is
history and the question names no paper itself, the papers of the last
answer are carried forward: by default their titles are appended to the
question (deterministic, instant); optionally the LLM rewrites the question
from a bounded window of history, and the deterministic form is the
fallback whenever the LLM fails or returns something unusable. A question
that asks for several papers on a topic ("Which of my papers use X?") starts
a new search, unless it refers back ("which of these ...", "... build on it").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rag.errors import InvalidQuestionError
from rag.retrieval import NameMatcher, asks_for_several_papers
from rag.text import words

ORDINALS = {"first": 0, "former": 0, "second": 1, "latter": -1, "third": 2, "last": -1}
ORDINAL_REFERENCE = re.compile(r"\b(first|second|third|last|former|latter)\b(?: one| paper| work| study)?", re.I)
OTHER_REFERENCE = re.compile(r"\bthe other(?: one| paper| work| study)?\b", re.I)
BOTH_REFERENCE = re.compile(r"\b(?:both|the two)\b", re.I)
# Words by which a "which papers ..." question refers back to earlier papers ("which of
# these", "papers that cite it"); without one it starts a new search.
BACK_REFERENCE = re.compile(
    r"\b(?:them|these|those|above|it|its)\b|\b(?:this|that|the same)\s+(?:paper|work|study|model|method)\b", re.I
)


@dataclass
class Turn:
    """One exchange; cited_titles come from the checked answer when known."""

    question: str
    answer: str
    cited_titles: list[str] = field(default_factory=list)


def turns_from_messages(messages: object) -> list[Turn]:
    """OpenAI-style history [{role, content}] (question sets, the UI, the API) to turns.

    An assistant message may carry `cited_titles` (as the API returns them), which
    follow-ups then use instead of finding titles in its text.
    """
    if messages in (None, "", []):
        return []
    if not isinstance(messages, list) or not all(isinstance(m, (dict, Turn)) for m in messages):
        raise InvalidQuestionError("history must be a list of {role, content} messages")
    turns: list[Turn] = []
    pending: str | None = None
    for message in messages:
        if isinstance(message, Turn):
            turns.append(message)
        elif message.get("role") == "user":
            pending = str(message.get("content") or "")
        elif message.get("role") == "assistant":
            titles = [str(t) for t in message.get("cited_titles") or []]
            turns.append(Turn(pending or "", str(message.get("content") or ""), titles))
            pending = None
    return turns


class PaperMentions:
    """Finds which corpus papers a piece of text refers to, in order of mention."""

    def __init__(self, titles: dict[str, str], names: NameMatcher):
        self.titles = titles
        self.names = names
        self._by_first_word: dict[str, list[tuple[tuple[str, ...], str]]] | None = None

    def in_text(self, text: str) -> list[str]:
        """Titles of the papers named in text by full title or an identifying name, in order of mention."""
        tokens = words(text)
        found: dict[str, int] = {}
        for position, token in enumerate(tokens):
            for title_words, paper_id in self._titles_starting_with(token):
                if tuple(tokens[position : position + len(title_words)]) == title_words:
                    found.setdefault(paper_id, position)
        for paper_id, (position, _) in self.names.mentions(text).items():
            found[paper_id] = min(found.get(paper_id, position), position)
        return [self.titles[pid] for pid, _ in sorted(found.items(), key=lambda item: item[1])]

    def _titles_starting_with(self, word: str) -> list[tuple[tuple[str, ...], str]]:
        if self._by_first_word is None:  # built on first use: a start never tokenises every title
            self._by_first_word = {}
            for paper_id, title in self.titles.items():
                title_words = tuple(words(title))
                if title_words:
                    self._by_first_word.setdefault(title_words[0], []).append((title_words, paper_id))
        return self._by_first_word.get(word, [])

    def titles_of(self, turn: Turn) -> list[str]:
        if turn.cited_titles:
            return list(turn.cited_titles)
        return self.in_text(turn.answer) or self.in_text(turn.question)


def carried_titles(question: str, history: list[Turn], mentions: PaperMentions) -> list[str]:
    """Titles a follow-up refers to: the last answer's papers, in the order it showed
    them, narrowed by "the second one", "the last paper", "both" or "the other one"."""
    if not history or mentions.names.named_papers(question) or mentions.in_text(question):
        return []
    if asks_for_several_papers(question) and not (
        BACK_REFERENCE.search(question) or ORDINAL_REFERENCE.search(question) or OTHER_REFERENCE.search(question)
    ):
        return []  # "Which of my papers from 2023 use X?" after an answer about another paper
    with_titles = [titles for titles in (mentions.titles_of(turn) for turn in history) if titles]
    if not with_titles:
        return []
    titles = with_titles[-1]
    if OTHER_REFERENCE.search(question):
        # "the other one": of the papers an earlier answer showed, those the last one left out.
        for earlier in reversed(with_titles[:-1]):
            others = [t for t in earlier if t not in titles]
            if others and len(earlier) > len(titles):
                return others
        return titles
    if BOTH_REFERENCE.search(question) and len(titles) > 2:
        return titles[:2]
    ordinal = ORDINAL_REFERENCE.search(question)
    if ordinal and len(titles) > 1:
        index = ORDINALS[ordinal.group(1).lower()]
        if -len(titles) <= index < len(titles):
            return [titles[index]]
    return titles


def deterministic_query(question: str, history: list[Turn], mentions: PaperMentions) -> str:
    titles = carried_titles(question, history, mentions)
    if not titles:
        return question
    return f"{question} (about: {'; '.join(titles)})"
