"""The corpus readers, one module per format, registered by file suffix.

Each yields what it finds entry by entry (a FoundPaper, or a SkippedEntry with
the reason), streaming large files, and raises CorpusError naming the file and
line for a file it cannot read at all. rag/corpus.py checks and selects.
A reader is imported when a file of its format is read (BibTeX and RIS bring
their parsers).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

from rag.errors import CorpusError
from rag.paper import FoundPaper, SkippedEntry

# suffix -> (module, function) of its reader; "" (no suffix) reads as the page dump.
READERS = {
    ".txt": ("rag.readers.page_dump", "read_page_dump"),
    "": ("rag.readers.page_dump", "read_page_dump"),
    ".jsonl": ("rag.readers.jsonl", "read_jsonl"),
    ".ndjson": ("rag.readers.jsonl", "read_jsonl"),
    ".json": ("rag.readers.jsonl", "read_jsonl"),  # the arXiv snapshot is JSON Lines named .json
    ".csv": ("rag.readers.csv_table", "read_csv"),
    ".bib": ("rag.readers.bibtex", "read_bibtex"),
    ".ris": ("rag.readers.ris", "read_ris"),
}
# The suffixes read, each naming a format.
CORPUS_SUFFIXES = tuple(suffix for suffix in READERS if suffix)


def read_file(path: Path) -> Iterator[FoundPaper | SkippedEntry]:
    """The entries of one file, in file order, read by the reader for its suffix."""
    if not path.exists():
        raise CorpusError(path, None, "file not found")
    if not path.is_file():
        raise CorpusError(path, None, "not a file")
    suffix = path.suffix.lower()
    if suffix not in READERS:
        raise CorpusError(path, None, f"unknown corpus format {suffix!r} (use {', '.join(CORPUS_SUFFIXES)})")
    module, function = READERS[suffix]
    return getattr(importlib.import_module(module), function)(path)
