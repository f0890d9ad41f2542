"""The bundled page-dump text format (.txt): alternating title and abstract lines after some
page chrome. Strict: a missing line there shifts every later title and abstract."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from rag.errors import CorpusError
from rag.paper import FoundPaper
from rag.readers.base import our_record, utf8_lines

# Lines of web-page chrome that the bundled dump carries before the papers.
PAGE_CHROME_PREFIXES = ("Get trending papers in your email inbox",)
# The page's "Subscribe" button text is glued to the first title.
GLUED_PREFIX = "Subscribe"
# A title line longer than this is almost surely an abstract: the title/abstract
# alternation has slipped (a missing line above it).
MAX_TITLE_CHARS = 400

def read_page_dump(path: Path) -> Iterator[FoundPaper]:
    # Split at "\n" alone, as the line numbers count: str.splitlines() also splits at
    # U+2028, U+0085 or \x1e inside an abstract, which shifted every later title and abstract.
    lines = [line.rstrip("\r\n") for _, line in utf8_lines(path)]
    while lines and not lines[-1].strip():
        lines.pop()
    start = 0
    while start < len(lines) and lines[start].strip().startswith(PAGE_CHROME_PREFIXES):
        start += 1
    body = lines[start:]
    if not body:
        raise CorpusError(path, None, "no papers found")
    if len(body) % 2:
        raise CorpusError(
            path,
            len(lines),
            f"odd number of title/abstract lines ({len(body)}): a title or abstract is missing",
        )
    for offset in range(0, len(body), 2):
        title_line = start + offset + 1  # 1-based line number of the title
        title, abstract = body[offset].strip(), body[offset + 1].strip()
        if offset == 0 and title.startswith(GLUED_PREFIX) and len(title) > len(GLUED_PREFIX):
            title = title[len(GLUED_PREFIX) :]
        if len(title) > MAX_TITLE_CHARS:
            raise CorpusError(
                path,
                title_line,
                f"expected a title but found {len(title)} characters of text "
                "(is a line missing above?)",
            )
        if not title:
            raise CorpusError(path, title_line, "empty title line")
        if not abstract:
            raise CorpusError(path, title_line + 1, f"empty abstract line for {title!r}")
        yield our_record(path, title_line, {"title": title, "abstract": abstract})
