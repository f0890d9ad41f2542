"""CSV (.csv): a header with title and abstract, and optional authors, year, url, id, venue,
categories, doi, arxiv_id."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from rag.errors import CorpusError
from rag.paper import FoundPaper
from rag.readers.base import our_record, utf8_lines


def read_csv(path: Path) -> Iterator[FoundPaper]:
    reader = csv.DictReader(line for _, line in utf8_lines(path))
    try:
        missing = {"title", "abstract"} - set(reader.fieldnames or [])
        if missing:
            raise CorpusError(path, 1, f"header lacks column(s) {', '.join(sorted(missing))}")
        found_any = False
        for record in reader:
            if None in record:
                raise CorpusError(path, reader.line_num, "more fields than the header names")
            found_any = True
            yield our_record(path, reader.line_num, record)
    except csv.Error as err:  # the csv reader's count: the DictReader's lags while it reads the header
        raise CorpusError(path, reader.reader.line_num, f"malformed CSV ({err})") from None
    if not found_any:
        raise CorpusError(path, None, "no papers found")
