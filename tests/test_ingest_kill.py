"""kill -9 of a real `rag ingest` process at several moments leaves an index that
answers questions and is consistent: every paper all old or all new, and the
catalog, the Chroma vectors and the BM25 index listing the same chunks."""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from chromadb.api.client import SharedSystemClient

from rag.index import PaperIndex
from rag.retrieval import Retriever
from rag.settings import Settings
from tests.conftest import write_jsonl

pytestmark = pytest.mark.slow


def _state(catalog: Path) -> dict[str, str]:
    if not catalog.exists():
        return {}
    db = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=5)
    try:
        return dict(db.execute("SELECT key, value FROM state"))
    except sqlite3.OperationalError:  # the schema is not there yet
        return {}
    finally:
        db.close()


def _garbage_rows(catalog: Path) -> int:
    db = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("SELECT count(*) FROM garbage").fetchone()[0]
    finally:
        db.close()


# Moments to kill at, each seen from outside the process:
# (name, condition(data dir, generation before), seconds to wait once it holds).
KILL_POINTS = [
    # the ids are recorded just before the first batch: a moment later, batches of 4 are being added
    ("while vectors are added", lambda data, gen: _garbage_rows(data / "index" / "catalog.sqlite") > 0, 1.0),
    ("while BM25 is written", lambda data, gen: any((data / "index" / "lexical").glob(f"g{gen + 1}-*")), 0.0),
    ("right after the commit",
     lambda data, gen: _state(data / "index" / "catalog.sqlite").get("generation") == str(gen + 1), 0.0),
]


def _assert_consistent(settings: Settings, embedder, versions: list[dict[str, str]]) -> dict[str, str]:
    """The committed papers equal one of the versions exactly; all parts agree; search works."""
    SharedSystemClient.clear_system_cache()  # read what the killed process left on disk, not a cached view
    index = PaperIndex(settings, embedder)
    snapshot = index.open_snapshot()
    hashes = snapshot.catalog.paper_hashes()
    assert hashes in versions, "a mix of old and new papers is committed"
    chunk_ids = set(snapshot.catalog.chunk_ids_of(hashes))
    assert set(snapshot.chunk_lexical.doc_ids) == chunk_ids
    assert set(snapshot.title_lexical.doc_ids) == set(hashes)
    assert set(snapshot.collection.get(ids=sorted(chunk_ids), include=[])["ids"]) == chunk_ids
    papers = snapshot.catalog.papers()
    some = papers[sorted(papers)[0]]
    assert Retriever(index, settings).search(some.title, k=3).papers[0].title == some.title
    return hashes


def test_kill_9_at_any_moment_of_an_ingest_leaves_a_consistent_index(tmp_path, embedder, bundled_papers):
    settings = Settings(data_dir=tmp_path / "data")
    old = bundled_papers[:12]
    edited = [dataclasses.replace(p, abstract=p.abstract + " Code is released.") for p in old[:3]]
    new = edited + old[3:10] + bundled_papers[12:42]  # 3 edited, 2 removed, 30 added
    PaperIndex(settings, embedder).ingest(old, progress=False)
    SharedSystemClient.clear_system_cache()  # the killed processes write the same store
    versions = [{p.id: p.content_hash for p in old}, {p.id: p.content_hash for p in new}]
    corpus = write_jsonl(tmp_path / "new.jsonl", new)
    env = {**os.environ, "RAG_DATA_DIR": str(settings.data_dir), "RAG_EMBEDDING_BATCH_SIZE": "4"}
    command = [sys.executable, "-m", "cli", "ingest", "--quiet", str(corpus)]

    outcomes = []
    for name, reached, wait in KILL_POINTS:
        generation = int(_state(settings.data_dir / "index" / "catalog.sqlite")["generation"])
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 900  # generous: a loaded CI machine is slow, a quiet one takes seconds
        while not reached(settings.data_dir, generation) and process.poll() is None:
            assert time.monotonic() < deadline, f"ingest never got to the point {name!r}"
            time.sleep(0.002)
        time.sleep(wait)
        process.send_signal(signal.SIGKILL)
        process.wait()
        committed = _assert_consistent(settings, embedder, versions)
        outcomes.append((name, "new" if committed == versions[1] else "old"))
        if committed == versions[1]:
            break  # the new version is in: nothing is left to interrupt
    assert ("while vectors are added", "old") in outcomes, outcomes

    # The next ingest completes, and nothing the killed ones wrote is left behind.
    PaperIndex(settings, embedder).ingest(new, progress=False)
    assert _assert_consistent(settings, embedder, versions) == versions[1]
    snapshot = PaperIndex(settings, embedder).open_snapshot()
    assert snapshot.collection.count() == len(snapshot.chunk_lexical.doc_ids)
    assert sorted(p.name for p in (settings.data_dir / "index" / "lexical").iterdir()) == [
        f"g{snapshot.generation}-chunks",
        f"g{snapshot.generation}-titles",
    ]
