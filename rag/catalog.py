"""The catalog: papers, chunk texts and the index's state, in one SQLite file.

The catalog is the index's commit point. An ingest writes the new vectors
(under new, content-addressed chunk ids) and the new lexical folder first, then
records the new papers, chunks and generation in one SQLite transaction; only
then is what the old generation used deleted. A kill -9 at any moment leaves
either the old or the new generation in the catalog, each with all its
vectors and its lexical index in place.

Readers look up titles, papers and chunk texts here by id, so a start reads
no corpus: only the titles (for exact name matching), not the abstracts.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Iterable, Sequence

from rag.chunking import Chunk
from rag.paper import Paper
from rag.filters import PaperFilter

SCHEMA = """
CREATE TABLE IF NOT EXISTS papers (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, abstract TEXT NOT NULL, authors TEXT NOT NULL,
    year INTEGER, url TEXT NOT NULL, hash TEXT NOT NULL,
    venue TEXT NOT NULL DEFAULT '', categories TEXT NOT NULL DEFAULT '[]',
    doi TEXT NOT NULL DEFAULT '', arxiv_id TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS chunks (
    id TEXT PRIMARY KEY, paper_id TEXT NOT NULL, ordinal INTEGER NOT NULL, text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_of_paper ON chunks (paper_id);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT);
-- Vector ids that may exist in Chroma without being in `chunks`: written before
-- vectors are added and when chunks are retired; cleared once deleted from Chroma.
CREATE TABLE IF NOT EXISTS garbage (chunk_id TEXT NOT NULL, collection TEXT NOT NULL);
"""
# Columns added after the first release, with their definitions: an older
# catalog gets them (empty) when next opened for writing.
ADDED_COLUMNS = {
    "venue": "TEXT NOT NULL DEFAULT ''",
    "categories": "TEXT NOT NULL DEFAULT '[]'",
    "doi": "TEXT NOT NULL DEFAULT ''",
    "arxiv_id": "TEXT NOT NULL DEFAULT ''",
}
PAPER_COLUMNS = "id, title, abstract, authors, year, url, hash, venue, categories, doi, arxiv_id"
# SQLite's limit on bound parameters is 32766; stay well below it.
BATCH = 5000


class Catalog:
    def __init__(self, path: Path, read_only: bool = False):
        self.path = path
        if read_only:
            self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(SCHEMA)
        missing = set(ADDED_COLUMNS) - {row[1] for row in self.db.execute("PRAGMA table_info(papers)")}
        if missing and not read_only:
            with self.db:
                for column, definition in ADDED_COLUMNS.items():
                    if column in missing:
                        self.db.execute(f"ALTER TABLE papers ADD COLUMN {column} {definition}")
            missing = set()
        self.outdated = bool(missing)  # a reader of a catalog written by an older version

    @classmethod
    def open_existing(cls, path: Path) -> Catalog | None:
        return cls(path, read_only=True) if path.exists() else None

    def close(self) -> None:
        self.db.close()

    # --- state ------------------------------------------------------------------
    def state(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM state"))

    # --- reading ----------------------------------------------------------------
    def paper_hashes(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT id, hash FROM papers"))

    def titles(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT id, title FROM papers"))

    def count(self, table: str) -> int:
        assert table in ("papers", "chunks")
        return self.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

    def papers(self, ids: Iterable[str] | None = None) -> dict[str, Paper]:
        query = "SELECT id, title, abstract, authors, year, url, venue, categories, doi, arxiv_id FROM papers"
        return {
            row[0]: Paper(
                id=row[0], title=row[1], abstract=row[2], authors=row[3], year=row[4], url=row[5],
                venue=row[6], categories=tuple(json.loads(row[7])), doi=row[8], arxiv_id=row[9],
            )
            for row in self._select(query, "id", ids)
        }

    def paper_ids_matching(self, wanted: PaperFilter) -> set[str]:
        """Ids of the papers the filter lets through (the same test as its Chroma clause)."""
        conditions, values = [], []
        if wanted.year_from is not None or wanted.year_to is not None:
            conditions.append("year >= ?")
            values.append(wanted.year_from or 1)
        if wanted.year_to is not None:
            conditions.append("year <= ?")
            values.append(wanted.year_to)
        if wanted.author:
            conditions.append("instr(lower(authors), ?) > 0")
            values.append(wanted.author.lower())
        if wanted.category:
            # category_keys() of the stored list, in SQL: the category itself or its archive
            conditions.append(
                "EXISTS (SELECT 1 FROM json_each(categories) WHERE lower(value) = ? OR lower(value) LIKE ? || '.%')"
            )
            values += [wanted.category.lower()] * 2
        where = " AND ".join(conditions) or "1"
        return {row[0] for row in self.db.execute(f"SELECT id FROM papers WHERE {where}", values)}

    def chunks(self, ids: Iterable[str]) -> dict[str, Chunk]:
        return {c.id: c for c in self._chunks("chunks.id", ids)}

    def chunks_of(self, paper_ids: Iterable[str]) -> dict[str, list[Chunk]]:
        found: dict[str, list[Chunk]] = {}
        for chunk in sorted(self._chunks("chunks.paper_id", paper_ids), key=lambda c: c.ordinal):
            found.setdefault(chunk.paper_id, []).append(chunk)
        return found

    def chunk_ids_of(self, paper_ids: Iterable[str]) -> list[str]:
        return [row[0] for row in self._select("SELECT id FROM chunks", "paper_id", paper_ids)]

    def _chunks(self, column: str, values: Iterable[str]) -> list[Chunk]:
        query = (
            "SELECT chunks.id, chunks.paper_id, papers.title, chunks.text, chunks.ordinal "
            "FROM chunks JOIN papers ON papers.id = chunks.paper_id"
        )
        return [Chunk(id=r[0], paper_id=r[1], title=r[2], text=r[3], ordinal=r[4]) for r in self._select(query, column, values)]

    def _select(self, query: str, column: str, values: Iterable[str] | None) -> list[tuple]:
        if values is None:
            return self.db.execute(query).fetchall()
        values = list(dict.fromkeys(values))
        rows = []
        for start in range(0, len(values), BATCH):
            part = values[start : start + BATCH]
            marks = ",".join("?" * len(part))
            rows.extend(self.db.execute(f"{query} WHERE {column} IN ({marks})", part))
        return rows

    def garbage(self) -> list[tuple[str, str]]:
        """(chunk id, collection) of vectors no generation uses any more (or never did)."""
        return self.db.execute(
            "SELECT chunk_id, collection FROM garbage WHERE chunk_id NOT IN (SELECT id FROM chunks)"
        ).fetchall()

    # --- writing ----------------------------------------------------------------
    def expect_vectors(self, chunk_ids: Sequence[str], collection: str) -> None:
        """Record ids about to be added to Chroma, so a crash before the commit
        leaves them findable (and deletable) as garbage."""
        with self.db:
            self.db.executemany("INSERT INTO garbage VALUES (?, ?)", [(i, collection) for i in chunk_ids])

    def commit_generation(
        self,
        state: dict[str, str],
        added: Sequence[Paper],
        chunks: Sequence[Chunk],
        removed: Sequence[str],
        retired_chunk_ids: Sequence[str],
        replace_all: bool,
    ) -> None:
        """One transaction: the removed papers (and the old versions of added ones)
        give way to the added papers and their chunks, and the new state is recorded.
        The retired chunks (those of the removed and replaced papers) become
        garbage, their vectors to be deleted; with ``replace_all`` (a full
        rebuild into a new collection) every paper is replaced and the old
        collection is dropped whole instead."""
        with self.db:
            if replace_all:
                self.db.execute("DELETE FROM chunks")
                self.db.execute("DELETE FROM papers")
            else:
                gone = list(removed) + [p.id for p in added]
                self.db.executemany(
                    "INSERT INTO garbage VALUES (?, ?)", [(i, state["collection"]) for i in retired_chunk_ids]
                )
                for start in range(0, len(gone), BATCH):
                    part = gone[start : start + BATCH]
                    marks = ",".join("?" * len(part))
                    self.db.execute(f"DELETE FROM chunks WHERE paper_id IN ({marks})", part)
                    self.db.execute(f"DELETE FROM papers WHERE id IN ({marks})", part)
            self.db.executemany(
                f"INSERT INTO papers ({PAPER_COLUMNS}) VALUES ({', '.join('?' * 11)})",
                [
                    (p.id, p.title, p.abstract, p.authors, p.year, p.url, p.content_hash,
                     p.venue, json.dumps(list(p.categories)), p.doi, p.arxiv_id)
                    for p in added
                ],
            )
            self.db.executemany(
                "INSERT INTO chunks VALUES (?, ?, ?, ?)", [(c.id, c.paper_id, c.ordinal, c.text) for c in chunks]
            )
            self.db.executemany("INSERT OR REPLACE INTO state VALUES (?, ?)", state.items())

    def record_state(self, items: dict[str, str]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO state VALUES (?, ?)", items.items())

    def clear_garbage(self) -> None:
        with self.db:
            self.db.execute("DELETE FROM garbage")
