"""The Chroma store: incremental, crash-safe ingestion and reads for retrieval.

Layout in Chroma: a small *pointer* collection named after the setting
``collection_name`` whose metadata names the active *generation* collection
(``<name>__g<hex>``). An ingest that changes anything writes a complete new
generation (copying the vectors of unchanged papers, embedding only new or
edited ones) and then flips the pointer in one metadata write. A crash or
Ctrl-C before the flip leaves the previous generation active and untouched;
the orphan is removed by the next ingest.

Each generation records the embedding model and chunking it was built with;
a different model or chunking rebuilds everything instead of mixing vectors.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import filelock

from rag.chunking import Chunk, chunk_paper
from rag.corpus import Paper
from rag.embedding import Embedder
from rag.errors import StoreError
from rag.settings import Settings

log = logging.getLogger(__name__)

GENERATION_SEPARATOR = "__g"
COPY_PAGE = 500


@dataclass
class IngestReport:
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


@dataclass
class StoredPapers:
    """Everything retrieval needs besides the vectors, read once from the store."""

    papers: dict[str, Paper] = field(default_factory=dict)
    chunks: list[Chunk] = field(default_factory=list)


def open_client(settings: Settings):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise StoreError(f"chroma_url {settings.chroma_url!r} is not an http(s) URL")
        try:
            return chromadb.HttpClient(
                host=url.hostname,
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                settings=chroma_settings,
            )
        except Exception as err:  # chromadb raises bare ValueError/ConnectionError
            raise StoreError(f"cannot reach the Chroma server at {settings.chroma_url}: {err}") from None
    settings.chroma_path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.chroma_path), settings=chroma_settings)


class PaperIndex:
    """One corpus in one Chroma store; the embedder is injected."""

    def __init__(self, settings: Settings, embedder: Embedder, client=None):
        self.settings = settings
        self.embedder = embedder
        self.client = client if client is not None else open_client(settings)
        self.base_name = settings.collection_name

    # --- reading ------------------------------------------------------------
    def _pointer(self, create: bool = False):
        if create:
            return self.client.get_or_create_collection(
                self.base_name, embedding_function=None, metadata={"role": "pointer"}
            )
        try:
            return self.client.get_collection(self.base_name, embedding_function=None)
        except Exception:  # NotFoundError in the client, ValueError over HTTP
            return None

    def active_collection(self):
        pointer = self._pointer()
        active = (pointer.metadata or {}).get("active") if pointer else None
        if not active:
            return None
        return self.client.get_collection(active, embedding_function=None)

    def require_active(self):
        collection = self.active_collection()
        if collection is None:
            raise StoreError(
                f"no index yet in {self.location}: run `rag ingest` first"
            )
        built_with = (collection.metadata or {}).get("embedding_model")
        if built_with != self.embedder.name:
            raise StoreError(
                f"the index was built with embedding model {built_with!r} but the "
                f"settings name {self.embedder.name!r}: run `rag ingest` to rebuild it"
            )
        return collection

    @property
    def location(self) -> str:
        return self.settings.chroma_url or str(self.settings.chroma_path)

    def info(self) -> dict:
        collection = self.active_collection()
        meta = dict(collection.metadata or {}) if collection else {}
        stored = self.read_all() if collection else StoredPapers()
        return {
            "store": self.location,
            "mode": "server" if self.settings.chroma_url else "embedded",
            "collection": collection.name if collection else None,
            "papers": len(stored.papers),
            "chunks": len(stored.chunks),
            "embedding_model": meta.get("embedding_model"),
            "embedding_dimension": meta.get("embedding_dimension"),
            "chunk_max_tokens": meta.get("chunk_max_tokens"),
            "chunk_overlap_sentences": meta.get("chunk_overlap_sentences"),
            "built_at": meta.get("built_at"),
        }

    def read_all(self, collection=None) -> StoredPapers:
        collection = collection or self.require_active()
        stored = StoredPapers()
        for page in _pages(collection, include=["metadatas", "documents"]):
            for chunk_id, text, meta in zip(page["ids"], page["documents"], page["metadatas"]):
                stored.chunks.append(
                    Chunk(
                        id=chunk_id,
                        paper_id=meta["paper_id"],
                        title=meta["title"],
                        text=text,
                        ordinal=int(meta["ordinal"]),
                    )
                )
                if meta.get("abstract"):
                    stored.papers[meta["paper_id"]] = Paper(
                        id=meta["paper_id"],
                        title=meta["title"],
                        abstract=meta["abstract"],
                        authors=meta.get("authors", ""),
                        year=meta.get("year") or None,
                        url=meta.get("url", ""),
                    )
        stored.chunks.sort(key=lambda c: (c.paper_id, c.ordinal))
        return stored

    def dense_search(self, query_embedding: list[float], n: int, collection=None) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) of the n nearest chunks, best first."""
        import math

        from llama_index.core.vector_stores.types import VectorStoreQuery
        from llama_index.vector_stores.chroma import ChromaVectorStore

        store = ChromaVectorStore(chroma_collection=collection or self.require_active())
        result = store.query(VectorStoreQuery(query_embedding=query_embedding, similarity_top_k=n))
        # llama-index reports exp(-distance); the collection uses cosine distance.
        return [(i, 1.0 + math.log(s)) for i, s in zip(result.ids, result.similarities)]

    # --- writing ------------------------------------------------------------
    def _build_config(self) -> dict:
        return {
            "embedding_model": self.embedder.name,
            "chunk_max_tokens": self.settings.chunk_max_tokens,
            "chunk_overlap_sentences": self.settings.chunk_overlap_sentences,
        }

    def ingest(self, papers: list[Paper], progress: bool = True) -> IngestReport:
        started = time.perf_counter()
        with self._writer_lock():
            report = self._ingest(papers, progress)
        report.seconds = time.perf_counter() - started
        return report

    def _ingest(self, papers: list[Paper], progress: bool) -> IngestReport:
        report = IngestReport(papers=len(papers))
        wanted = {p.id: p for p in papers}
        active = self.active_collection()
        config = self._build_config()
        existing: dict[str, str] = {}
        if active is not None:
            built = {k: (active.metadata or {}).get(k) for k in config}
            if built == config:
                existing = _paper_hashes(active)
            else:
                changed = [k for k in config if built[k] != config[k]]
                report.rebuilt, report.reason = True, f"{', '.join(changed)} changed"
        else:
            report.rebuilt, report.reason = True, "new index"

        reused = {pid for pid, h in existing.items() if pid in wanted and wanted[pid].content_hash == h}
        to_embed = [p for p in papers if p.id not in reused]
        removed = [pid for pid in existing if pid not in wanted]
        report.reused_papers, report.removed_papers = len(reused), len(removed)
        if active is not None and not report.rebuilt and not to_embed and not removed:
            report.chunks = active.count()
            self._drop_orphans(keep=active.name)
            return report

        chunks = self._chunk(to_embed)
        generation = self.client.create_collection(
            f"{self.base_name}{GENERATION_SEPARATOR}{uuid.uuid4().hex[:12]}",
            embedding_function=None,
            configuration={"hnsw": {"space": "cosine"}},
            metadata={**config, "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
        )
        try:
            if reused:
                _copy_papers(active, generation, reused)
            self._embed_into(generation, chunks, to_embed, progress)
            generation.modify(
                metadata={**generation.metadata, "embedding_dimension": self.embedder.dimension}
            )
        except BaseException:
            # Leave the active generation as it was; drop the half-built one.
            with contextlib.suppress(Exception):
                self.client.delete_collection(generation.name)
            raise
        self._pointer(create=True).modify(metadata={"role": "pointer", "active": generation.name})
        self._drop_orphans(keep=generation.name)
        report.changed = True
        report.embedded_papers, report.embedded_chunks = len(to_embed), len(chunks)
        report.chunks = generation.count()
        return report

    def _chunk(self, papers: list[Paper]) -> list[Chunk]:
        if not papers:
            return []
        limit = min(self.settings.chunk_max_tokens, self.embedder.max_tokens)
        return [
            chunk
            for paper in papers
            for chunk in chunk_paper(
                paper, self.embedder.count_tokens, limit, self.settings.chunk_overlap_sentences
            )
        ]

    def _embed_into(self, collection, chunks: list[Chunk], papers: list[Paper], progress: bool) -> None:
        from llama_index.core.schema import TextNode
        from llama_index.vector_stores.chroma import ChromaVectorStore
        from tqdm import tqdm

        by_id = {p.id: p for p in papers}
        store = ChromaVectorStore(chroma_collection=collection)
        batch = self.settings.embedding_batch_size
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

    def _drop_orphans(self, keep: str) -> None:
        prefix = self.base_name + GENERATION_SEPARATOR
        for collection in self.client.list_collections():
            name = collection if isinstance(collection, str) else collection.name
            if name.startswith(prefix) and name != keep:
                log.info("removing stale generation %s", name)
                self.client.delete_collection(name)

    @contextlib.contextmanager
    def _writer_lock(self) -> Iterator[None]:
        """One writer at a time on an embedded store (Chroma is not multi-process safe)."""
        if self.settings.chroma_url:
            yield
            return
        path = Path(self.settings.data_dir) / "ingest.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            lock = filelock.FileLock(path).acquire(blocking=False)
        except filelock.Timeout:
            raise StoreError(f"another ingest is running on {self.location}") from None
        with lock:
            yield


def _chunk_metadata(chunk: Chunk, paper: Paper) -> dict:
    meta = {
        "paper_id": paper.id,
        "paper_hash": paper.content_hash,
        "title": paper.title,
        "ordinal": chunk.ordinal,
        "authors": paper.authors,
        "year": paper.year or 0,
        "url": paper.url,
    }
    if chunk.ordinal == 0:  # the full abstract is kept once per paper, for display
        meta["abstract"] = paper.abstract
    return meta


def _pages(collection, include: list[str]) -> Iterator[dict]:
    offset = 0
    while True:
        page = collection.get(limit=COPY_PAGE, offset=offset, include=include)
        if not page["ids"]:
            return
        yield page
        offset += len(page["ids"])


def _paper_hashes(collection) -> dict[str, str]:
    hashes = {}
    for page in _pages(collection, include=["metadatas"]):
        for meta in page["metadatas"]:
            hashes[meta["paper_id"]] = meta["paper_hash"]
    return hashes


def _copy_papers(source, target, paper_ids: set[str]) -> None:
    for page in _pages(source, include=["metadatas", "documents", "embeddings"]):
        keep = [i for i, meta in enumerate(page["metadatas"]) if meta["paper_id"] in paper_ids]
        if keep:
            target.add(
                ids=[page["ids"][i] for i in keep],
                embeddings=[page["embeddings"][i] for i in keep],
                documents=[page["documents"][i] for i in keep],
                metadatas=[page["metadatas"][i] for i in keep],
            )
