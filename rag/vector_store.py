"""The vector store: Chroma, embedded in the data folder or on the server the settings name.

The one place that opens the Chroma client, finds collections by name, searches
and reads stored vectors, and turns a server that cannot be reached into a
StoreError saying so. It also names itself: its location, and its identity,
which a committed index records (rag/stores.py) and is checked against.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator
from urllib.parse import urlparse

import numpy as np

from rag.errors import StoreError
from rag.settings import DEFAULT_COLLECTION, Settings
from rag.stores import StoreIdentity, mismatch_message


def open_client(settings: Settings):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.storage.chroma_url:
        url = urlparse(settings.storage.chroma_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise StoreError(f"chroma_url {settings.storage.chroma_url!r} is not an http(s) URL")
        try:
            return chromadb.HttpClient(
                host=url.hostname,
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                settings=chroma_settings,
            )
        except Exception as err:  # chromadb raises bare ValueError/ConnectionError
            raise StoreError(f"cannot reach the Chroma server at {settings.storage.chroma_url}: {err}") from None
    settings.chroma_path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.chroma_path), settings=chroma_settings)


def describe_collection(settings: Settings) -> str:
    """The settings' collection as messages name it."""
    return f"collection {settings.storage.collection!r} in {settings.storage.data_dir}"


def collection_option(settings: Settings) -> str:
    """What a suggested command adds to name the settings' collection ('' for the default one)."""
    return "" if settings.storage.collection == DEFAULT_COLLECTION else f" --collection {settings.storage.collection}"


class VectorStore:
    """The Chroma store of the settings: the client, opened on first use, and what is done with it."""

    def __init__(self, settings: Settings, client=None):
        self.settings = settings
        self._client = client

    @property
    def client(self):
        # Opened on first use: `rag ingest` with nothing changed never needs it.
        if self._client is None:
            self._client = open_client(self.settings)
        return self._client

    @property
    def location(self) -> str:
        return self.settings.storage.chroma_url or str(self.settings.chroma_path)

    @property
    def identity(self) -> StoreIdentity:
        return StoreIdentity.of(self.settings)

    def mismatch(self, state: dict[str, str]) -> str | None:
        """Why a committed state cannot be read against this store (None: it can).
        A catalog from before stores were recorded is taken to be of the store it is opened with."""
        recorded = StoreIdentity.recorded(state)
        if recorded is None or recorded.same_store(self.identity):
            return None
        return mismatch_message(
            recorded, self.identity, describe_collection(self.settings), collection_option(self.settings)
        )

    # --- collections ----------------------------------------------------------
    def collection(self, name: str):
        """The existing collection ``name`` (Chroma raises when there is none)."""
        return self.client.get_collection(name, embedding_function=None)

    def create_collection(self, name: str):
        """The collection ``name``, made if new, compared by cosine distance."""
        return self.client.get_or_create_collection(
            name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
        )

    def collection_names(self) -> list[str]:
        return [c if isinstance(c, str) else c.name for c in self.client.list_collections()]

    def delete_collection(self, name: str) -> None:
        self.client.delete_collection(name)

    # --- vectors ----------------------------------------------------------------
    def dense_search(
        self, query_embedding: list[float], n: int, collection, where: dict | None = None
    ) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) of the n nearest vectors whose metadata
        passes ``where`` (a Chroma clause, see rag.filters), best first."""
        from llama_index.core.vector_stores.types import VectorStoreQuery
        from llama_index.vector_stores.chroma import ChromaVectorStore

        store = ChromaVectorStore(chroma_collection=collection)
        query = VectorStoreQuery(query_embedding=query_embedding, similarity_top_k=n)
        with self.unreachable_is_a_store_error():
            result = store.query(query, where=where) if where else store.query(query)
        # llama-index reports exp(-distance); the collection uses cosine distance.
        return [(i, 1.0 + math.log(s)) for i, s in zip(result.ids, result.similarities)]

    def chunk_vectors(self, chunk_ids: list[str], collection) -> dict[str, np.ndarray]:
        """chunk id -> its stored embedding (ids the store lacks are left out)."""
        if not chunk_ids:
            return {}
        with self.unreachable_is_a_store_error():
            found = collection.get(ids=chunk_ids, include=["embeddings"])
        return {chunk_id: np.asarray(vector) for chunk_id, vector in zip(found["ids"], found["embeddings"])}

    @contextlib.contextmanager
    def unreachable_is_a_store_error(self) -> Iterator[None]:
        """A Chroma server that stopped or cannot be reached becomes a StoreError saying
        so (the HTTP client raises httpx's errors), not a bug's traceback."""
        import httpx

        try:
            yield
        except httpx.TransportError as err:
            raise StoreError(
                f"the Chroma server at {self.settings.storage.chroma_url} is not answering ({err}): "
                "start it again, then retry"
            ) from None
