"""Splitting abstracts into passages that the embedding model sees whole.

Chunks are packed from whole sentences; each chunk, with the paper title
prefixed as the model will see it, fits the model's maximum sequence length
as counted by the model's own tokenizer, so no text is ever silently
truncated. A sentence too long on its own is split at word boundaries, and a
"word" too long on its own (a run of Chinese or Japanese, which has no spaces but
one token per character, or of punctuation) at character boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from rag.paper import Paper
from rag.errors import CorpusError
from rag.text import split_sentences


@dataclass(frozen=True)
class Chunk:
    id: str
    paper_id: str
    title: str
    text: str
    ordinal: int

    @property
    def embed_text(self) -> str:
        return embed_text(self.title, self.text)


def embed_text(title: str, passage: str) -> str:
    """What the embedding model (and BM25) see for a passage."""
    return f"{title}\n{passage}"


def chunk_paper(
    paper: Paper,
    count_tokens: Callable[[str], int],
    max_tokens: int,
    overlap_sentences: int = 0,
) -> list[Chunk]:
    """Pack the abstract's sentences into chunks of at most max_tokens each."""

    def fits(sentences: list[str]) -> bool:
        return count_tokens(embed_text(paper.title, " ".join(sentences))) <= max_tokens

    if not fits(["."]):  # the title must leave room for some text: a user's file, not a bug
        raise CorpusError(
            paper.source or paper.id,
            None,
            f"the title of {paper.title[:80]!r} is {count_tokens(paper.title):,} tokens long: "
            f"chunks hold at most {max_tokens}, title included (shorten the title)",
        )
    pieces: list[str] = []
    for sentence in split_sentences(paper.abstract):
        pieces.extend([sentence] if fits([sentence]) else _split_long(sentence, fits))

    passages: list[list[str]] = []
    current: list[str] = []
    fresh = 0  # sentences in `current` not carried over from the previous chunk
    for piece in pieces:
        if fits(current + [piece]):
            current.append(piece)
            fresh += 1
            continue
        passages.append(current)
        carried = current[-overlap_sentences:] if overlap_sentences else []
        while carried and not fits(carried + [piece]):
            carried = carried[1:]
        current, fresh = carried + [piece], 1
    if fresh:
        passages.append(current)

    return [
        Chunk(
            # Content-addressed: an edited paper's new chunks never overwrite the
            # vectors its committed version still uses (see rag/ingest.py).
            id=f"{paper.id}@{paper.content_hash[:10]}#{n}",
            paper_id=paper.id,
            title=paper.title,
            text=" ".join(sentences),
            ordinal=n,
        )
        for n, sentences in enumerate(passages)
    ]


def _split_long(sentence: str, fits: Callable[[list[str]], bool]) -> list[str]:
    """Word windows of a sentence that is too long to be a chunk by itself."""
    parts, current = [], []
    for word in sentence.split():
        if not fits([word]):  # a part of its own, cut at characters
            if current:
                parts.append(" ".join(current))
            *whole, current_piece = _split_word(word, fits)
            parts.extend(whole)
            current = [current_piece]
            continue
        if current and not fits([" ".join(current + [word])]):
            parts.append(" ".join(current))
            current = []
        current.append(word)
    if current:
        parts.append(" ".join(current))
    return parts


def _split_word(word: str, fits: Callable[[list[str]], bool]) -> list[str]:
    """Runs of characters of a word too long for a chunk, each the longest that fits."""
    pieces, start = [], 0
    while start < len(word):
        low, high = start + 1, len(word)  # at least one character: chunk_paper left room beside the title
        while low < high:  # the longest prefix that fits (token counts grow with the text)
            middle = (low + high + 1) // 2
            if fits([word[start:middle]]):
                low = middle
            else:
                high = middle - 1
        pieces.append(word[start:low])
        start = low
    return pieces
