"""The one sentence splitter: for chunking abstracts, checking answers and scoring them.

A sentence ends at ".", "!" or "?" (with any citation markers such as "[1]"
that follow it) when white space and a capital, a digit, a quote, a bracket
or a parenthesis come next; so "e.g. dropout" stays whole.
"""

from __future__ import annotations

import re

SENTENCE_END = re.compile(r"[.!?](?:\s*\[\d[\d\s,;–-]*\])*(?=\s+[A-Z0-9(\[\"'“‘])")


def split_sentences(text: str) -> list[str]:
    sentences, start = [], 0
    for end in SENTENCE_END.finditer(text):
        sentences.append(text[start : end.end()].strip())
        start = end.end()
    sentences.append(text[start:].strip())
    return [s for s in sentences if s]
