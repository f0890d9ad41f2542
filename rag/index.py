"""The index: vectors in Chroma, BM25 on disk, papers in a catalog; crash-safe, incremental.

Three parts, one generation number (see rag/catalog.py for the commit rule):
- Chroma holds one vector per chunk, under a content-addressed id
  (``<paper id>@<content hash>#<n>``), so a paper's old and new versions can
  coexist until the catalog commits the new one;
- the lexical index (rag/lexical.py) has one folder per generation;
- the catalog (SQLite) names the generation, its Chroma collection and its
  lexical folder, and holds the papers and chunk texts.

Adding, editing or removing k papers embeds and writes only their chunks (plus
rebuilding BM25 from stored term ids). A different embedding model or chunking
builds a new collection instead of mixing vectors. One writer at a time: a lock
file in the data folder, and a lock collection on a Chroma server.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import filelock
import numpy as np

from rag.catalog import Catalog
from rag.chunking import Chunk, chunk_paper
from rag.paper import Paper
from rag.embedding import Embedder
from rag.errors import StoreError
from rag.filters import CATEGORY_KEY, category_keys
from rag.lexical import LexicalIndex
from rag.settings import DEFAULT_COLLECTION, Settings
from rag.stores import STATE_KEY, StoreIdentity, mismatch_message

log = logging.getLogger(__name__)

GENERATION_SEPARATOR = "__g"
WRITER_LOCK_SUFFIX = "__writer"
DELETE_BATCH = 5000


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
class IndexSnapshot:
    """One committed generation, as a reader opened it."""

    generation: int
    collection: object
    catalog: Catalog
    chunk_lexical: LexicalIndex
    title_lexical: LexicalIndex
    titles: dict[str, str]


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
    """One collection: its catalog and lexical folders under its folder, its vectors in Chroma."""

    def __init__(self, settings: Settings, embedder: Embedder, client=None):
        self.settings = settings
        self.embedder = embedder
        self._client = client
        self.base_name = settings.chroma_base_name
        self.folder = settings.collection_dir / "index"
        self.catalog_path = self.folder / "catalog.sqlite"

    @property
    def client(self):
        # Opened on first use: `rag ingest` with nothing changed never needs it.
        if self._client is None:
            self._client = open_client(self.settings)
        return self._client

    def describe_collection(self) -> str:
        return f"collection {self.settings.collection!r} in {self.settings.data_dir}"

    def _collection_option(self) -> str:
        return "" if self.settings.collection == DEFAULT_COLLECTION else f" --collection {self.settings.collection}"

    @property
    def location(self) -> str:
        return self.settings.chroma_url or str(self.settings.chroma_path)

    @property
    def store(self) -> StoreIdentity:
        """The vector store the settings name."""
        return StoreIdentity.of(self.settings)

    def store_mismatch(self, state: dict[str, str]) -> str | None:
        """Why the committed state cannot be read against the settings' store (None: it can).
        A catalog from before stores were recorded is taken to be of the store it is opened with."""
        recorded = StoreIdentity.recorded(state)
        if recorded is None or recorded.same_store(self.store):
            return None
        return mismatch_message(recorded, self.store, self.describe_collection(), self._collection_option())

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
            raise StoreError(f"no index yet for {self.describe_collection()}: run `rag ingest{self._collection_option()}` first")
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
            with self.store_unreachable_is_a_store_error():
                collection = self.client.get_collection(state["collection"], embedding_function=None)
        except StoreError:
            raise
        except Exception as err:  # NotFoundError embedded, ValueError over HTTP
            raise StoreError(
                f"the index's vectors (collection {state['collection']!r}) are missing from {self.location} "
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
            "store": self.location,
            "mode": "server" if self.settings.chroma_url else "embedded",
            # the store the committed index was built on (it must be the one above)
            "index_store": recorded.describe() if recorded else None,
            "catalog": str(self.catalog_path),
            "generation": int(state["generation"]) if state else None,
            "collection": self.settings.collection,
            "chroma_collection": state.get("collection"),
            **counts,
            "embedding_model": state.get("embedding_model"),
            "embedding_dimension": int(state["embedding_dimension"]) if state else None,
            "chunk_max_tokens": int(state["chunk_max_tokens"]) if state else None,
            "chunk_overlap_sentences": int(state["chunk_overlap_sentences"]) if state else None,
            "built_at": state.get("built_at"),
        }

    def dense_search(
        self, query_embedding: list[float], n: int, collection, where: dict | None = None
    ) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) of the n nearest vectors whose metadata
        passes ``where`` (a Chroma clause, see rag.filters), best first."""
        import math

        from llama_index.core.vector_stores.types import VectorStoreQuery
        from llama_index.vector_stores.chroma import ChromaVectorStore

        store = ChromaVectorStore(chroma_collection=collection)
        query = VectorStoreQuery(query_embedding=query_embedding, similarity_top_k=n)
        with self.store_unreachable_is_a_store_error():
            result = store.query(query, where=where) if where else store.query(query)
        # llama-index reports exp(-distance); the collection uses cosine distance.
        return [(i, 1.0 + math.log(s)) for i, s in zip(result.ids, result.similarities)]

    def chunk_vectors(self, chunk_ids: list[str], collection) -> dict[str, np.ndarray]:
        """chunk id -> its stored embedding (ids the store lacks are left out)."""
        if not chunk_ids:
            return {}
        with self.store_unreachable_is_a_store_error():
            found = collection.get(ids=chunk_ids, include=["embeddings"])
        return {chunk_id: np.asarray(vector) for chunk_id, vector in zip(found["ids"], found["embeddings"])}

    @contextlib.contextmanager
    def store_unreachable_is_a_store_error(self) -> Iterator[None]:
        """A Chroma server that stopped or cannot be reached becomes a StoreError saying
        so (the HTTP client raises httpx's errors), not a bug's traceback."""
        import httpx

        try:
            yield
        except httpx.TransportError as err:
            raise StoreError(
                f"the Chroma server at {self.settings.chroma_url} is not answering ({err}): "
                "start it again, then retry"
            ) from None

    # --- writing ------------------------------------------------------------
    def _build_config(self) -> dict[str, str]:
        return {
            "embedding_model": self.embedder.name,
            "chunk_max_tokens": str(self.settings.chunk_max_tokens),
            "chunk_overlap_sentences": str(self.settings.chunk_overlap_sentences),
        }

    def ingest(self, papers: list[Paper], progress: bool = True, keep_others: bool = False) -> IngestReport:
        """Make the index hold ``papers``: new and edited ones are embedded, unchanged
        ones reused, and the rest removed (kept instead with ``keep_others``: adding
        a file to a collection)."""
        started = time.perf_counter()
        with self.writer_lock():
            catalog = Catalog(self.catalog_path)
            try:
                with self.store_unreachable_is_a_store_error():
                    report = self._ingest(catalog, papers, progress, keep_others)
            finally:
                catalog.close()
        report.seconds = time.perf_counter() - started
        return report

    def _ingest(self, catalog: Catalog, papers: list[Paper], progress: bool, keep_others: bool) -> IngestReport:
        state, config = catalog.state(), self._build_config()
        other_store = StoreIdentity.recorded(state) if self.store_mismatch(state) else None
        if other_store:  # what it recorded for deletion lives on that store: never delete it here
            catalog.clear_garbage()
        else:
            self._collect_garbage(catalog, after_commit=False)  # what a killed ingest left behind
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
        bm25 = f"{self.settings.bm25_k1},{self.settings.bm25_b}"
        if not report.rebuilt and not to_embed and not removed and state.get("bm25") == bm25:
            if STATE_KEY not in state:  # a catalog from before stores were recorded
                catalog.record_state({STATE_KEY: self.store.to_state()})
            report.chunks = catalog.count("chunks")
            return report

        generation = int(state.get("generation", 0)) + 1
        collection_name = (
            f"{self.base_name}{GENERATION_SEPARATOR}{uuid.uuid4().hex[:12]}" if report.rebuilt else state["collection"]
        )
        chunks = self._chunk(to_embed)
        catalog.expect_vectors([c.id for c in chunks], collection_name)
        collection = self.client.get_or_create_collection(
            collection_name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
        )
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
                STATE_KEY: self.store.to_state(),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
            added=to_embed,
            chunks=chunks,
            removed=removed,
            retired_chunk_ids=retired_chunk_ids,
            replace_all=report.rebuilt,
        )
        self._collect_garbage(catalog, after_commit=True)
        report.changed = True
        report.embedded_papers, report.embedded_chunks = len(to_embed), len(chunks)
        report.chunks = catalog.count("chunks")
        return report

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
        k1, b = self.settings.bm25_k1, self.settings.bm25_b
        for kind, drop, add in (
            ("chunks", set(retired_chunk_ids), [(c.id, c.embed_text) for c in chunks]),
            ("titles", set(replaced), [(p.id, p.title) for p in papers]),
        ):
            folder = self.lexical_folder(generation, kind)
            shutil.rmtree(folder, ignore_errors=True)  # left by an ingest killed before its commit
            old = LexicalIndex.load(self.lexical_folder(previous, kind)) if previous else None
            LexicalIndex.write(folder, old, drop, add, k1, b)

    def lexical_folder(self, generation: int, kind: str) -> Path:
        return self.folder / "lexical" / f"g{generation}-{kind}"

    def _collect_garbage(self, catalog: Catalog, after_commit: bool) -> None:
        """Delete what the committed generation does not use: retired vectors, the
        vectors and collections of a killed ingest, older collections and lexical
        folders. Before an ingest this touches Chroma only when an interrupted
        ingest left something, so an ingest that changes nothing stays fast."""
        state = catalog.state()
        garbage: dict[str, list[str]] = {}
        for chunk_id, collection in catalog.garbage():
            garbage.setdefault(collection, []).append(chunk_id)
        if after_commit or self.cleanup_pending(catalog):
            for name in self.chroma_collection_names():
                if name.startswith(self.base_name + GENERATION_SEPARATOR) and name != state.get("collection"):
                    log.info("removing stale collection %s", name)
                    self.client.delete_collection(name)
                    garbage.pop(name, None)
        existing = set(self.chroma_collection_names()) if garbage else set()
        for name, ids in garbage.items():
            if name not in existing:  # a rebuild killed between recording its ids and creating its collection
                continue
            collection = self.client.get_collection(name, embedding_function=None)
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

    def chroma_collection_names(self) -> list[str]:
        return [c if isinstance(c, str) else c.name for c in self.client.list_collections()]

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

    @contextlib.contextmanager
    def writer_lock(self) -> Iterator[None]:
        """One writer at a time: a lock file (in the collection's folder, where its
        catalog lives; in the data folder with embedded Chroma, which every collection
        shares and which is not multi-process safe), plus, on a Chroma server, a lock
        collection that writers on other machines see too."""
        folder = self.settings.collection_dir if self.settings.chroma_url else self.settings.data_dir
        where = self.describe_collection() if self.settings.chroma_url else f"{self.settings.data_dir} (its collections share one embedded store)"
        path = Path(folder) / "ingest.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            lock = filelock.FileLock(path).acquire(blocking=False)
        except filelock.Timeout:
            raise StoreError(f"another ingest is running on {where}: wait for it to finish, then run this again") from None
        with lock:
            if self.settings.chroma_url:
                with self._server_writer_lock():
                    yield
            else:
                yield

    @contextlib.contextmanager
    def _server_writer_lock(self) -> Iterator[None]:
        name = self.base_name + WRITER_LOCK_SUFFIX
        me = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        client = self.client  # an unreachable server fails here, saying so
        for attempt in range(2):
            try:
                client.create_collection(name, embedding_function=None, metadata=me)
                break
            except Exception as err:  # it exists: another writer holds the lock, or one died holding it
                holder = self._lock_holder(name)
                if not holder:
                    raise StoreError(
                        f"cannot take the writer lock on the Chroma server at {self.settings.chroma_url}: {err}"
                    ) from None
                if attempt == 0 and holder.get("host") == me["host"] and not _process_alive(holder.get("pid")):
                    log.warning("removing the writer lock of ingest %s, which is no longer running", holder.get("pid"))
                    with contextlib.suppress(Exception):
                        self.client.delete_collection(name)
                    continue
                raise StoreError(
                    f"another ingest (process {holder.get('pid')} on {holder.get('host')}, since "
                    f"{holder.get('since')}) is writing to the Chroma server at {self.settings.chroma_url}: "
                    f"wait for it to finish (if that process is gone, delete the collection {name!r})"
                ) from None
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                self.client.delete_collection(name)

    def _lock_holder(self, name: str) -> dict:
        try:
            return dict(self.client.get_collection(name, embedding_function=None).metadata or {})
        except Exception:
            return {}


def _chunk_metadata(chunk: Chunk, paper: Paper) -> dict:
    """What Chroma filters on (see rag.filters): the paper, its year (0 = unknown), its category flags."""
    metadata = {"paper_id": chunk.paper_id, "ordinal": chunk.ordinal, "year": paper.year or 0}
    metadata.update({CATEGORY_KEY.format(key): True for key in category_keys(paper.categories)})
    return metadata


def _process_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True
