"""Source sentences that are not content: never given to the model, never quoted.

An abstract is data, but anyone can write one. A sentence addressed to an
assistant or to the reader (instructions, requests to add images, links or
citations, claims about what an answer must say), or one carrying markup
(HTML, a Markdown link or image, a URL, a chat-template token), says nothing
about the research. Such a sentence is kept out of the evidence the model sees
and out of every answer; the evidence shows a note in its place.

Judged by the form of the sentence, not by topic words: a paper *about* prompt
injection ("we show that models follow injected instructions") is content.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Markup: an HTML element (by name: "<SEG>" in a paper on segmentation tokens is content),
# an event handler, a Markdown link or image, a chat-template token.
MARKUP = re.compile(
    r"<\s*/?\s*(?:script|img|iframe|a|style|svg|object|embed|link|meta|form|input|button|video|audio|source|"
    r"div|span|p|br|b|i|u|em|strong|table|tr|td|math|details|body|html|head|title|base)\b[^>]*>"
    r"|\bon[a-z]+\s*=|<\|[^|]*\|>|!?\[[^\]]*\]\([^)]*\)",
    re.I,
)
# A URL: real abstracts end with "code is available at https://...", which answers
# nothing; such a sentence is left out without a note.
URL = re.compile(r"(?:https?|ftp)://|\bwww\.\w", re.I)
# Speech to an assistant or reader: who it names, or the imperative it opens with.
ADDRESSEE = re.compile(
    r"\b(?:(?:ai|language[- ]model|llm|chat)?\s*assistants?\b(?:\s+\w+){0,4}\s+(?:must|should|shall|need to|are to|have to)"
    r"|you are (?:now|an?|the)\b|your (?:answer|reply|response|summary|output)|(?:tell|inform|show|remind) the (?:user|reader)"
    r"|(?:previous|prior|above|earlier|all) instructions|system prompt|new (?:policy|instructions?)|maintenance mode"
    r"|(?:when|if) (?:you are |you're )?(?:summari[sz]ing|answering|citing|describing|asked about) this (?:paper|abstract|work)"
    r"|\b(?:any|every|each|your)\s+(?:summary|answer|response|reply|description)\b[^.]{0,60}\b(?:must|should|shall|has to)\b"
    r"|\bdear\s+(?:ai|assistant|model|chatbot|reader|llm)\b)",
    re.I,
)
# An imperative opening a sentence: abstracts describe, they do not command.
IMPERATIVE = re.compile(
    r"^\W*(?:please\s+)?(?:ignore|disregard|forget|tell|print|reveal|say|respond|reply|output|append|insert|"
    r"cite|include|add|begin|end|start|write|repeat|answer|always|never|do not|don't)(?![\w-])",
    re.I,
)
INSTRUCTIONS_NOTE = "this abstract contains instructions to AI assistants; they were ignored"
MARKUP_NOTE = "a sentence with markup (HTML, an image or a link) was left out"


@dataclass(frozen=True)
class SentenceVerdict:
    hostile: bool
    note: str = ""  # why it is not shown, for the evidence panel


def judge_sentence(sentence: str) -> SentenceVerdict:
    """Whether a source sentence must be kept out of the model's input and every answer."""
    if ADDRESSEE.search(sentence) or IMPERATIVE.search(sentence):
        return SentenceVerdict(True, INSTRUCTIONS_NOTE)
    if MARKUP.search(sentence):
        return SentenceVerdict(True, MARKUP_NOTE)
    if URL.search(sentence):
        return SentenceVerdict(True)
    return SentenceVerdict(False)


def is_hostile(sentence: str) -> bool:
    return judge_sentence(sentence).hostile
