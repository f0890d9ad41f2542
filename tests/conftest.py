"""Shared fixtures: real parts (the bundled MiniLM model, real Chroma stores),
each test's state in its own tmp folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.pipeline import EmbedderWrapper, build_embedder
from rag.corpus import Paper, load_corpus
from rag.index import PaperIndex
from rag.retrieval import Retriever
from rag.settings import BUNDLED_CORPUS, Settings


class CountingEmbedder(EmbedderWrapper):
    """The real embedder, recording what it was asked to embed (and able to
    pretend to be another model, to test model changes)."""

    def __init__(self, inner, name: str | None = None):
        super().__init__(inner, name)
        self.embedded: list[str] = []

    def embed(self, texts):
        self.embedded.extend(texts)
        return self.inner.embed(texts)


@pytest.fixture(scope="session")
def real_embedder():
    return build_embedder(Settings())


@pytest.fixture
def embedder(real_embedder):
    return CountingEmbedder(real_embedder)


@pytest.fixture(scope="session")
def bundled_papers() -> list[Paper]:
    return load_corpus([BUNDLED_CORPUS])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


def write_jsonl(path: Path, papers: list[Paper]) -> Path:
    path.write_text("".join(json.dumps({"title": p.title, "abstract": p.abstract}) + "\n" for p in papers))
    return path


@pytest.fixture
def small_corpus(bundled_papers) -> list[Paper]:
    """Twelve real papers: enough for incremental-ingest tests, fast to embed."""
    return bundled_papers[:12]


@pytest.fixture(scope="session")
def full_index(tmp_path_factory, real_embedder, bundled_papers):
    """The whole bundled corpus indexed once for the session (about a minute)."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("full") / "data")
    index = PaperIndex(settings, real_embedder)
    index.ingest(bundled_papers, progress=False)
    return index


@pytest.fixture(scope="session")
def retriever(full_index) -> Retriever:
    return Retriever(full_index, full_index.settings)
