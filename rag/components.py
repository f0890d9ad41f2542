"""Building the pipeline's parts from settings, with any part injectable.

The CLI, the UI and the evaluation all start here, so they run the same code.
"""

from __future__ import annotations

from rag.embedding import Embedder, SentenceTransformerEmbedder
from rag.index import PaperIndex
from rag.retrieval import Retriever
from rag.settings import Settings


def make_embedder(settings: Settings) -> Embedder:
    return SentenceTransformerEmbedder(settings.embedding_model, settings.embedding_batch_size)


def open_index(settings: Settings, embedder: Embedder | None = None, client=None) -> PaperIndex:
    return PaperIndex(settings, embedder or make_embedder(settings), client=client)


def open_retriever(settings: Settings, embedder: Embedder | None = None, client=None) -> Retriever:
    return Retriever(open_index(settings, embedder, client), settings)
