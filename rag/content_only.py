"""Abstract text as it is handed to another model: its content, without the sentences
rag.hostile judges not to be content.

The MCP tools and the LlamaIndex components give abstracts and passages to an
agent's or a user's own model, which reads them as part of its prompt. A sentence
addressed to an assistant, or carrying markup, would reach that model as an
instruction; it is left out, and a note (the same one the evidence shows) says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rag.hostile import judge_sentence
from rag.text import split_sentences


@dataclass(frozen=True)
class ContentOnly:
    text: str
    withheld: list[str] = field(default_factory=list)  # notes on the sentences left out, each once


def content_only(text: str) -> ContentOnly:
    """The text's sentences that are content, joined by spaces, and notes on those left out."""
    kept, notes = [], []
    for sentence in split_sentences(text):
        verdict = judge_sentence(sentence)
        if not verdict.hostile:
            kept.append(sentence)
        elif verdict.note and verdict.note not in notes:
            notes.append(verdict.note)
    return ContentOnly(" ".join(kept), notes)
