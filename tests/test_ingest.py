"""The ingest on its own: real papers and the real embedder into a real embedded Chroma
in the test's folder, then the catalog, the store and the BM25 folders read back."""

from __future__ import annotations

import dataclasses
import re

import pytest

from rag.catalog import Catalog
from rag.errors import StoreError
from rag.ingest import Ingester
from rag.vector_store import VectorStore
from rag.writer_lock import WriterLock
from tests.conftest import CountingEmbedder


def ingester_for(settings, embedder) -> Ingester:
    store = VectorStore(settings)
    return Ingester(settings, embedder, store, WriterLock(settings, store))


def committed(ingester: Ingester) -> dict[str, str]:
    catalog = Catalog.open_existing(ingester.catalog_path)
    try:
        return catalog.state()
    finally:
        catalog.close()


def chunk_ids(ingester: Ingester) -> tuple[set[str], set[str]]:
    """The committed chunk ids: in the catalog, and in the committed Chroma collection."""
    catalog = Catalog.open_existing(ingester.catalog_path)
    try:
        in_catalog = set(catalog.chunk_ids_of(catalog.paper_hashes()))
    finally:
        catalog.close()
    in_store = set(ingester.store.collection(committed(ingester)["collection"]).get(include=[])["ids"])
    return in_catalog, in_store


def lexical_folders(ingester: Ingester) -> list[str]:
    return sorted(p.name for p in (ingester.folder / "lexical").iterdir())


@pytest.fixture
def papers(small_corpus):
    return small_corpus[:4]


def test_the_first_ingest_commits_generation_one_in_a_new_collection(settings, embedder, papers):
    ingester = ingester_for(settings, embedder)
    report = ingester.ingest(papers, progress=False)
    assert (report.changed, report.rebuilt, report.embedded_papers) == (True, True, 4)
    assert "(full rebuild: new index)" in report.summary()
    state = committed(ingester)
    assert state["generation"] == "1" and state["embedding_model"] == embedder.name
    assert re.fullmatch(r"papers__g[0-9a-f]{12}", state["collection"])
    assert ingester.store.collection_names() == [state["collection"]]
    in_catalog, in_store = chunk_ids(ingester)
    assert in_catalog == in_store and len(in_catalog) == report.chunks == len(embedder.embedded)
    assert lexical_folders(ingester) == ["g1-chunks", "g1-titles"]


def test_an_edit_commits_the_next_generation_and_collects_the_vectors_it_retired(settings, embedder, papers):
    ingester = ingester_for(settings, embedder)
    ingester.ingest(papers, progress=False)
    before, _ = chunk_ids(ingester)
    collection = committed(ingester)["collection"]
    edited = dataclasses.replace(papers[1], abstract=papers[1].abstract + " We also study zebrafish.")

    report = ingester.ingest([papers[0], edited, *papers[2:]], progress=False)
    assert (report.rebuilt, report.embedded_papers, report.reused_papers) == (False, 1, 3)
    assert committed(ingester)["generation"] == "2" and committed(ingester)["collection"] == collection
    after, in_store = chunk_ids(ingester)
    assert after == in_store  # the old version's vectors are gone from the store
    retired = before - after
    assert retired and all(i.startswith(papers[1].id + "@") for i in retired)
    assert lexical_folders(ingester) == ["g2-chunks", "g2-titles"]


def test_a_rebuild_commits_a_new_collection_and_collects_the_old_one(settings, real_embedder, papers):
    ingester_for(settings, CountingEmbedder(real_embedder, name="model-a")).ingest(papers, progress=False)
    rebuilding = ingester_for(settings, CountingEmbedder(real_embedder, name="model-b"))
    old = committed(rebuilding)["collection"]

    report = rebuilding.ingest(papers, progress=False)
    assert report.rebuilt and report.reason == "embedding_model changed"
    new = committed(rebuilding)["collection"]
    assert new != old and rebuilding.store.collection_names() == [new]
    assert lexical_folders(rebuilding) == ["g2-chunks", "g2-titles"]


def test_garbage_is_collected_before_the_ingest_and_after_its_commit(settings, embedder, papers):
    ingester = ingester_for(settings, embedder)
    ingester.ingest(papers[:2], progress=False)
    sweeps = []

    def recording(catalog, after_commit):
        sweeps.append((after_commit, catalog.state()["generation"]))
        ingester.collect_garbage(catalog, after_commit)

    ingester.ingest(papers, progress=False, collect_garbage=recording)
    assert sweeps == [(False, "1"), (True, "2")]


def test_a_kill_between_commit_and_sweep_is_swept_by_the_next_ingest(settings, real_embedder, papers):
    ingester_for(settings, CountingEmbedder(real_embedder, name="model-a")).ingest(papers, progress=False)
    rebuilding = ingester_for(settings, CountingEmbedder(real_embedder, name="model-b"))
    old = committed(rebuilding)["collection"]

    def killed_after_commit(catalog, after_commit):
        if after_commit:
            raise KeyboardInterrupt
        rebuilding.collect_garbage(catalog, after_commit)

    with pytest.raises(KeyboardInterrupt):
        rebuilding.ingest(papers, progress=False, collect_garbage=killed_after_commit)
    state = committed(rebuilding)
    assert state["generation"] == "2" and state["embedding_model"] == "model-b"  # the commit stands
    assert old in rebuilding.store.collection_names()
    catalog = Catalog(rebuilding.catalog_path)
    assert rebuilding.cleanup_pending(catalog)
    assert [p.name for p in rebuilding.stale_lexical_folders(state)] == ["g1-chunks", "g1-titles"]
    catalog.close()

    assert not rebuilding.ingest(papers, progress=False).changed
    assert rebuilding.store.collection_names() == [state["collection"]]
    assert lexical_folders(rebuilding) == ["g2-chunks", "g2-titles"]


def test_each_chunk_carries_what_the_filters_read(settings, embedder, papers):
    dated = dataclasses.replace(papers[0], year=2021, categories=("cs.CL",))
    ingester = ingester_for(settings, embedder)
    ingester.ingest([dated, papers[1]], progress=False)
    found = ingester.store.collection(committed(ingester)["collection"]).get(include=["metadatas"])
    first_chunks = {m["paper_id"]: m for m in found["metadatas"] if m["ordinal"] == 0}
    filtered_on = {"paper_id": dated.id, "ordinal": 0, "year": 2021, "category:cs.cl": True, "category:cs": True}
    assert {key: first_chunks[dated.id].get(key) for key in filtered_on} == filtered_on  # beside llama-index's own keys
    assert papers[1].year is None and first_chunks[papers[1].id]["year"] == 0


def test_an_ingest_holds_the_writer_lock(settings, embedder, papers):
    ingester = ingester_for(settings, embedder)
    with ingester.lock.hold():
        with pytest.raises(StoreError, match="another ingest is running"):
            ingester_for(settings, embedder).ingest(papers, progress=False)
    assert not (ingester.folder / "catalog.sqlite").exists()  # refused before anything was written
