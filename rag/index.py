"""The index of one collection: what readers open, and the way to write it.

Three parts share one generation number (see rag/catalog.py for the commit rule):
vectors in Chroma, one per chunk (rag/vector_store.py); BM25 on disk, one folder
per generation (rag/lexical.py); and the catalog (SQLite), which names the
committed generation, its Chroma collection and its lexical folders, and holds
the papers and chunk texts. Writing them is rag/ingest.py's, one writer at a
time (rag/writer_lock.py). PaperIndex composes the three, and reads the
committed generation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.catalog import Catalog
from rag.embedding import Embedder
from rag.errors import StoreError
from rag.ingest import GENERATION_SEPARATOR, IngestReport, Ingester
from rag.lexical import LexicalIndex
from rag.paper import Paper
from rag.settings import Settings
from rag.stores import StoreIdentity
from rag.vector_store import VectorStore, collection_option, describe_collection
from rag.writer_lock import WriterLock

# Imported from here by the library's other modules and the tests.
__all__ = ["GENERATION_SEPARATOR", "IndexSnapshot", "IngestReport", "PaperIndex", "StoreError"]


@dataclass
class IndexSnapshot:
    """One committed generation, as a reader opened it."""

    generation: int
    collection: object
    catalog: Catalog
    chunk_lexical: LexicalIndex
    title_lexical: LexicalIndex
    titles: dict[str, str]


class PaperIndex:
    """One collection: its catalog and lexical folders under its folder, its vectors in Chroma."""

    def __init__(self, settings: Settings, embedder: Embedder, client=None):
        self.settings = settings
        self.embedder = embedder
        self.vectors = VectorStore(settings, client)
        self.lock = WriterLock(settings, self.vectors)
        self.ingester = Ingester(settings, embedder, self.vectors, self.lock)
        self.base_name = settings.chroma_base_name
        self.catalog_path = self.ingester.catalog_path

    @property
    def client(self):
        """The Chroma client, opened on first use (pipelines of other collections share it)."""
        return self.vectors.client

    def store_mismatch(self, state: dict[str, str]) -> str | None:
        return self.vectors.mismatch(state)

    # --- reading ------------------------------------------------------------
    def committed_state(self) -> dict[str, str]:
        """The committed generation's state ({} when there is no index)."""
        catalog = Catalog.open_existing(self.catalog_path)
        if catalog is None:
            return {}
        try:
            return catalog.state()
        finally:
            catalog.close()

    def open_snapshot(self) -> IndexSnapshot:
        """The committed generation, ready for searching: reads no corpus, only titles."""
        catalog = Catalog.open_existing(self.catalog_path)
        state = catalog.state() if catalog else {}
        if not state:
            raise StoreError(
                f"no index yet for {describe_collection(self.settings)}: "
                f"run `rag ingest{collection_option(self.settings)}` first"
            )
        if catalog.outdated:
            raise StoreError("the index was written by an older paper-rag: run `rag ingest` to update it (nothing is re-embedded)")
        if problem := self.store_mismatch(state):
            catalog.close()
            raise StoreError(problem)
        if state["embedding_model"] != self.embedder.name:
            raise StoreError(
                f"the index was built with embedding model {state['embedding_model']!r} but the "
                f"settings name {self.embedder.name!r}: run `rag ingest` to rebuild it"
            )
        generation = int(state["generation"])
        try:
            with self.vectors.unreachable_is_a_store_error():
                collection = self.vectors.collection(state["collection"])
        except StoreError:
            raise
        except Exception as err:  # NotFoundError embedded, ValueError over HTTP
            raise StoreError(
                f"the index's vectors (collection {state['collection']!r}) are missing from {self.vectors.location} "
                f"({err}): run `rag ingest` to rebuild"
            ) from None
        return IndexSnapshot(
            generation=generation,
            collection=collection,
            catalog=catalog,
            chunk_lexical=LexicalIndex.load(self.lexical_folder(generation, "chunks")),
            title_lexical=LexicalIndex.load(self.lexical_folder(generation, "titles")),
            titles=catalog.titles(),
        )

    def info(self) -> dict:
        catalog = Catalog.open_existing(self.catalog_path)
        state, counts = {}, {"papers": 0, "chunks": 0}
        if catalog is not None:
            try:
                state = catalog.state()
                if state:
                    counts = {t: catalog.count(t) for t in ("papers", "chunks")}
            finally:
                catalog.close()
        recorded = StoreIdentity.recorded(state) if state else None
        return {
            "store": self.vectors.location,
            "mode": "server" if self.settings.storage.chroma_url else "embedded",
            # the store the committed index was built on (it must be the one above)
            "index_store": recorded.describe() if recorded else None,
            "catalog": str(self.catalog_path),
            "generation": int(state["generation"]) if state else None,
            "collection": self.settings.storage.collection,
            "chroma_collection": state.get("collection"),
            **counts,
            "embedding_model": state.get("embedding_model"),
            "embedding_dimension": int(state["embedding_dimension"]) if state else None,
            "chunk_max_tokens": int(state["chunk_max_tokens"]) if state else None,
            "chunk_overlap_sentences": int(state["chunk_overlap_sentences"]) if state else None,
            "built_at": state.get("built_at"),
        }

    # --- the parts, as retrieval and `rag check` reach them ---------------------
    def dense_search(
        self, query_embedding: list[float], n: int, collection, where: dict | None = None
    ) -> list[tuple[str, float]]:
        return self.vectors.dense_search(query_embedding, n, collection, where)

    def chunk_vectors(self, chunk_ids: list[str], collection) -> dict[str, np.ndarray]:
        return self.vectors.chunk_vectors(chunk_ids, collection)

    def store_unreachable_is_a_store_error(self):
        return self.vectors.unreachable_is_a_store_error()

    def chroma_collection_names(self) -> list[str]:
        return self.vectors.collection_names()

    def lexical_folder(self, generation: int, kind: str) -> Path:
        return self.ingester.lexical_folder(generation, kind)

    def stale_lexical_folders(self, state: dict[str, str]) -> list[Path]:
        return self.ingester.stale_lexical_folders(state)

    def cleanup_pending(self, catalog: Catalog) -> bool:
        return self.ingester.cleanup_pending(catalog)

    # --- writing ------------------------------------------------------------
    def writer_lock(self):
        """Held for the block: one writer at a time (see rag/writer_lock.py)."""
        return self.lock.hold()

    def ingest(self, papers: list[Paper], progress: bool = True, keep_others: bool = False) -> IngestReport:
        """Make the index hold ``papers`` (see Ingester.ingest)."""
        return self.ingester.ingest(papers, progress, keep_others, collect_garbage=self._collect_garbage)

    def _collect_garbage(self, catalog: Catalog, after_commit: bool) -> None:
        # The ingest's sweeps run through here, where tests/test_faults.py stages a kill
        # between a commit and its sweep by replacing this method.
        self.ingester.collect_garbage(catalog, after_commit)
