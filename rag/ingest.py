"""Ingest: make one collection's index hold a list of papers, crash-safe and incremental.

Each ingest that changes something writes a new generation (see rag/catalog.py
for the commit rule):
- its vectors go into the collection's Chroma collection under content-addressed
  ids (``<paper id>@<content hash>#<n>``), so a paper's old and new versions
  coexist until the catalog commits the new one; a different embedding model or
  chunking builds a new collection (``<base name>__g<random>``) instead of
  mixing vectors;
- its BM25 indexes (rag/lexical.py) go into folders of their own;
- the catalog's commit makes it the one readers open.

Adding, editing or removing k papers embeds and writes only their chunks (plus
rebuilding BM25 from stored term ids). The order is what makes a kill at any
moment safe: record the new vector ids for deletion, write vectors, write BM25,
commit, and only then collect the garbage (retired vectors, older collections
and lexical folders). An ingest first collects what a killed one left behind.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rag.catalog import Catalog
from rag.chunking import Chunk, chunk_paper
from rag.embedding import Embedder
from rag.filters import CATEGORY_KEY, category_keys
from rag.lexical import LexicalIndex
from rag.paper import Paper
from rag.settings import Settings
from rag.stores import STATE_KEY, StoreIdentity
from rag.vector_store import VectorStore
from rag.writer_lock import WriterLock

log = logging.getLogger(__name__)

GENERATION_SEPARATOR = "__g"
DELETE_BATCH = 5000  # vector ids deleted from Chroma per call


@dataclass
class IngestReport:
    """What one ingest did (`rag ingest` prints its summary)."""

    papers: int = 0
    chunks: int = 0
    embedded_papers: int = 0
    embedded_chunks: int = 0
    reused_papers: int = 0
    removed_papers: int = 0
    rebuilt: bool = False
    changed: bool = False
    seconds: float = 0.0
    reason: str = ""

    def summary(self) -> str:
        if not self.changed:
            return f"Index up to date: {self.papers} papers, {self.chunks} chunks ({self.seconds:.1f} s)."
        return (
            f"Indexed {self.papers} papers in {self.chunks} chunks: embedded "
            f"{self.embedded_papers} papers ({self.embedded_chunks} chunks), reused "
            f"{self.reused_papers}, removed {self.removed_papers}"
            f"{' (full rebuild: ' + self.reason + ')' if self.rebuilt else ''} "
            f"in {self.seconds:.1f} s."
        )


class GarbageCollector(Protocol):
    """Ingester.collect_garbage, or what a caller runs in its place."""

    def __call__(self, catalog: Catalog, after_commit: bool) -> None: ...


class Ingester:
    """Writes one collection's index: its catalog and lexical folders under its folder, its vectors in ``store``."""

    def __init__(self, settings: Settings, embedder: Embedder, store: VectorStore, lock: WriterLock):
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self.lock = lock
        self.base_name = settings.chroma_base_name
        self.folder = settings.collection_dir / "index"
        self.catalog_path = self.folder / "catalog.sqlite"

    def lexical_folder(self, generation: int, kind: str) -> Path:
        return self.folder / "lexical" / f"g{generation}-{kind}"

    def ingest(
        self,
        papers: list[Paper],
        progress: bool = True,
        keep_others: bool = False,
        collect_garbage: GarbageCollector | None = None,
    ) -> IngestReport:
        """Make the index hold ``papers``: new and edited ones are embedded, unchanged
        ones reused, and the rest removed (kept instead with ``keep_others``: adding
        a file to a collection). ``collect_garbage`` runs before the ingest and after
        its commit (this ingester's own, unless the caller routes it elsewhere)."""
        started = time.perf_counter()
        collect_garbage = collect_garbage or self.collect_garbage
        with self.lock.hold():
            catalog = Catalog(self.catalog_path)
            try:
                with self.store.unreachable_is_a_store_error():
                    report = self._ingest(catalog, papers, progress, keep_others, collect_garbage)
            finally:
                catalog.close()
        report.seconds = time.perf_counter() - started
        return report

    def _build_config(self) -> dict[str, str]:
        return {
            "embedding_model": self.embedder.name,
            "chunk_max_tokens": str(self.settings.embedding.chunk_max_tokens),
            "chunk_overlap_sentences": str(self.settings.embedding.chunk_overlap_sentences),
        }

    def _ingest(
        self,
        catalog: Catalog,
        papers: list[Paper],
        progress: bool,
        keep_others: bool,
        collect_garbage: GarbageCollector,
    ) -> IngestReport:
        state, config = catalog.state(), self._build_config()
        other_store = StoreIdentity.recorded(state) if self.store.mismatch(state) else None
        if other_store:  # what it recorded for deletion lives on that store: never delete it here
            catalog.clear_garbage()
        else:
            collect_garbage(catalog, after_commit=False)  # what a killed ingest left behind
            state = catalog.state()
        report = IngestReport()
        if not state:
            report.rebuilt, report.reason = True, "new index"
        elif changed := [k for k in config if state.get(k) != config[k]]:
            report.rebuilt, report.reason = True, f"{', '.join(changed)} changed"
        elif other_store:
            report.rebuilt, report.reason = True, f"it was built on {other_store.describe()}"
        stored = catalog.paper_hashes()
        wanted = {p.id: p for p in papers}
        if keep_others:
            others = [pid for pid in stored if pid not in wanted]
            # a rebuild re-embeds them; otherwise they stay as they are
            wanted = {**(catalog.papers(others) if report.rebuilt else {pid: None for pid in others}), **wanted}
        report.papers = len(wanted)
        reused = set() if report.rebuilt else {
            pid for pid, h in stored.items() if pid in wanted and (wanted[pid] is None or wanted[pid].content_hash == h)
        }
        to_embed = [paper for pid, paper in wanted.items() if pid not in reused]
        removed = [pid for pid in stored if pid not in wanted]
        report.reused_papers, report.removed_papers = len(reused), len(removed)
        bm25 = f"{self.settings.retrieval.bm25_k1},{self.settings.retrieval.bm25_b}"
        if not report.rebuilt and not to_embed and not removed and state.get("bm25") == bm25:
            if STATE_KEY not in state:  # a catalog from before stores were recorded
                catalog.record_state({STATE_KEY: self.store.identity.to_state()})
            report.chunks = catalog.count("chunks")
            return report

        generation = int(state.get("generation", 0)) + 1
        collection_name = (
            f"{self.base_name}{GENERATION_SEPARATOR}{uuid.uuid4().hex[:12]}" if report.rebuilt else state["collection"]
        )
        chunks = self._chunk(to_embed)
        catalog.expect_vectors([c.id for c in chunks], collection_name)
        collection = self.store.create_collection(collection_name)
        self._embed_into(collection, chunks, to_embed, progress)

        previous = None if report.rebuilt else generation - 1
        replaced = removed + [p.id for p in to_embed if p.id in stored]
        retired_chunk_ids = [] if report.rebuilt else catalog.chunk_ids_of(replaced)
        self._write_lexical(generation, previous, replaced, retired_chunk_ids, to_embed, chunks)
        catalog.commit_generation(
            {
                **config,
                "generation": str(generation),
                "collection": collection_name,
                "embedding_dimension": str(self.embedder.dimension),
                "bm25": bm25,  # other parameters: BM25 is rescored from the stored terms, nothing re-embedded
                STATE_KEY: self.store.identity.to_state(),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
            added=to_embed,
            chunks=chunks,
            removed=removed,
            retired_chunk_ids=retired_chunk_ids,
            replace_all=report.rebuilt,
        )
        collect_garbage(catalog, after_commit=True)
        report.changed = True
        report.embedded_papers, report.embedded_chunks = len(to_embed), len(chunks)
        report.chunks = catalog.count("chunks")
        return report

    def _chunk(self, papers: list[Paper]) -> list[Chunk]:
        if not papers:
            return []
        limit = min(self.settings.embedding.chunk_max_tokens, self.embedder.max_tokens)
        return [
            chunk
            for paper in papers
            for chunk in chunk_paper(
                paper, self.embedder.count_tokens, limit, self.settings.embedding.chunk_overlap_sentences
            )
        ]

    def _embed_into(self, collection, chunks: list[Chunk], papers: list[Paper], progress: bool) -> None:
        from llama_index.core.schema import TextNode
        from llama_index.vector_stores.chroma import ChromaVectorStore
        from tqdm import tqdm

        by_id = {p.id: p for p in papers}
        store = ChromaVectorStore(chroma_collection=collection)
        batch = self.settings.embedding.batch_size
        with tqdm(total=len(chunks), unit="chunk", desc="Embedding", disable=not progress) as bar:
            for start in range(0, len(chunks), batch):
                part = chunks[start : start + batch]
                vectors = self.embedder.embed([c.embed_text for c in part])
                nodes = [
                    TextNode(
                        id_=chunk.id,
                        text=chunk.text,
                        embedding=vector,
                        metadata=_chunk_metadata(chunk, by_id[chunk.paper_id]),
                    )
                    for chunk, vector in zip(part, vectors)
                ]
                store.add(nodes)
                bar.update(len(part))

    def _write_lexical(
        self,
        generation: int,
        previous: int | None,
        replaced: list[str],
        retired_chunk_ids: list[str],
        papers: list[Paper],
        chunks: list[Chunk],
    ) -> None:
        """The new generation's BM25 over chunks and over titles (for name matching)."""
        k1, b = self.settings.retrieval.bm25_k1, self.settings.retrieval.bm25_b
        for kind, drop, add in (
            ("chunks", set(retired_chunk_ids), [(c.id, c.embed_text) for c in chunks]),
            ("titles", set(replaced), [(p.id, p.title) for p in papers]),
        ):
            folder = self.lexical_folder(generation, kind)
            shutil.rmtree(folder, ignore_errors=True)  # left by an ingest killed before its commit
            old = LexicalIndex.load(self.lexical_folder(previous, kind)) if previous else None
            LexicalIndex.write(folder, old, drop, add, k1, b)

    # --- garbage collection ---------------------------------------------------
    def collect_garbage(self, catalog: Catalog, after_commit: bool) -> None:
        """Delete what the committed generation does not use: retired vectors, the
        vectors and collections of a killed ingest, older collections and lexical
        folders. Before an ingest this touches Chroma only when an interrupted
        ingest left something, so an ingest that changes nothing stays fast."""
        state = catalog.state()
        garbage: dict[str, list[str]] = {}
        for chunk_id, collection in catalog.garbage():
            garbage.setdefault(collection, []).append(chunk_id)
        if after_commit or self.cleanup_pending(catalog):
            for name in self.store.collection_names():
                if name.startswith(self.base_name + GENERATION_SEPARATOR) and name != state.get("collection"):
                    log.info("removing stale collection %s", name)
                    self.store.delete_collection(name)
                    garbage.pop(name, None)
        existing = set(self.store.collection_names()) if garbage else set()
        for name, ids in garbage.items():
            if name not in existing:  # a rebuild killed between recording its ids and creating its collection
                continue
            collection = self.store.collection(name)
            for start in range(0, len(ids), DELETE_BATCH):
                collection.delete(ids=ids[start : start + DELETE_BATCH])
        catalog.clear_garbage()
        for folder in self.stale_lexical_folders(state):
            shutil.rmtree(folder, ignore_errors=True)

    def cleanup_pending(self, catalog: Catalog) -> bool:
        """Whether an interrupted ingest left something the next one deletes: vector
        ids it recorded (in any collection: a rebuild's ids may equal committed ones),
        or BM25 folders of another generation (a kill after the commit leaves only these)."""
        recorded = catalog.db.execute("SELECT 1 FROM garbage LIMIT 1").fetchone() is not None
        return recorded or bool(self.stale_lexical_folders(catalog.state()))

    def stale_lexical_folders(self, state: dict[str, str]) -> list[Path]:
        """BM25 folders (finished or half-written) of any generation but the committed one."""
        if not state:
            return []
        current = {self.lexical_folder(int(state["generation"]), k).name for k in ("chunks", "titles")}
        return sorted(p for p in (self.folder / "lexical").glob("g*") if p.name not in current)


def _chunk_metadata(chunk: Chunk, paper: Paper) -> dict:
    """What Chroma filters on (see rag.filters): the paper, its year (0 = unknown), its category flags."""
    metadata = {"paper_id": chunk.paper_id, "ordinal": chunk.ordinal, "year": paper.year or 0}
    metadata.update({CATEGORY_KEY.format(key): True for key in category_keys(paper.categories)})
    return metadata
