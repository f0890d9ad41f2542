"""Shared fixtures: real parts (the bundled MiniLM model, real Chroma stores),
each test's state in its own tmp folder.

The whole run is sealed off from the user's state: before anything of the
product is imported, HOME, the XDG folders, RAG_STORAGE__DATA_DIR and RAG_CONFIG point
into one temporary folder, so every Settings() made in a test, every in-process
`main([...])` and every subprocess (which inherits the environment) uses it.
The last test checks that the user's real data folder was left as it was."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

# --- the seal: set before the product is imported (settings read HOME and RAG_*) --------
USER_DATA_DIRS = [
    Path(os.environ.get("RAG_STORAGE__DATA_DIR") or os.environ.get("RAG_DATA_DIR") or Path.home() / ".local" / "share" / "paper-rag")
    .expanduser()
    .resolve()
]
SEALED_HOME = Path(tempfile.mkdtemp(prefix="paper-rag-tests-"))
for _name in [name for name in os.environ if name.startswith("RAG_")]:  # none of the user's settings reach a test
    del os.environ[_name]
os.environ.update(
    {
        "HOME": str(SEALED_HOME / "home"),
        "XDG_DATA_HOME": str(SEALED_HOME / "home" / ".local" / "share"),
        "XDG_CONFIG_HOME": str(SEALED_HOME / "home" / ".config"),
        "XDG_CACHE_HOME": str(SEALED_HOME / "home" / ".cache"),
        "XDG_STATE_HOME": str(SEALED_HOME / "home" / ".local" / "state"),
        "RAG_STORAGE__DATA_DIR": str(SEALED_HOME / "data"),
        "RAG_CONFIG": str(SEALED_HOME / "rag.toml"),
    }
)
(SEALED_HOME / "home").mkdir()
(SEALED_HOME / "rag.toml").write_text("# the tests' empty config file: a user's rag.toml is never read\n")


def snapshot(folder: Path) -> dict[str, tuple[int, int]] | None:
    """Every file under ``folder`` with its size and modification time (None: no folder)."""
    if not folder.exists():
        return None
    return {
        str(path.relative_to(folder)): (path.lstat().st_size, path.lstat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
    }


USER_DATA_AT_START = {folder: snapshot(folder) for folder in USER_DATA_DIRS}

import pytest  # noqa: E402

from rag.pipeline import EmbedderWrapper, build_embedder  # noqa: E402
from rag.corpus import load_corpus
from rag.paper import Paper  # noqa: E402
from rag.index import PaperIndex  # noqa: E402
from rag.retrieval import Retriever  # noqa: E402
from rag.settings import BUNDLED_CORPUS, Settings  # noqa: E402


def pytest_collection_modifyitems(items):
    """The user-data guard runs last, after everything that could have written there."""
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(SEALED_HOME, ignore_errors=True)


class CountingEmbedder(EmbedderWrapper):
    """The real embedder, recording what it was asked to embed (and able to
    pretend to be another model, to test model changes)."""

    def __init__(self, inner, name: str | None = None):
        super().__init__(inner, name)
        self.embedded: list[str] = []

    def embed(self, texts):
        self.embedded.extend(texts)
        return self.inner.embed(texts)


@pytest.fixture
def chroma_server(tmp_path):
    """A real `chroma run` on a free loopback port, its data in the test's folder: its URL."""
    from benchmarks.reliability_faults import chroma_server as running_chroma
    from rag.net import free_port

    port = free_port()
    with running_chroma(tmp_path / "server-data", port, tmp_path / "chroma.log"):
        yield f"http://127.0.0.1:{port}"


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
