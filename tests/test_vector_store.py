"""The vector store on its own: a real embedded Chroma in the test's folder (vectors
written by hand, no embedder), and a server URL nothing answers at."""

from __future__ import annotations

import httpx
import pytest

from rag.errors import StoreError
from rag.net import free_port
from rag.settings import Settings
from rag.stores import StoreIdentity
from rag.vector_store import VectorStore


@pytest.fixture
def store(settings) -> VectorStore:
    return VectorStore(settings)


@pytest.fixture
def filled(store):
    """A cosine collection of three unit vectors, two of them from paper "a" of 2021."""
    collection = store.create_collection("papers__gtest")
    collection.add(
        ids=["a@1#0", "a@1#1", "b@2#0"],
        embeddings=[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.6, 0.8, 0.0]],
        metadatas=[{"paper_id": "a", "year": 2021}, {"paper_id": "a", "year": 2021}, {"paper_id": "b", "year": 2019}],
    )
    return collection


def test_the_embedded_store_is_opened_on_first_use_in_the_data_folder(settings, store):
    assert store.location == str(settings.chroma_path)
    assert not settings.chroma_path.exists()  # nothing opened yet: an unchanged ingest never needs it
    assert store.collection_names() == []
    assert settings.chroma_path.is_dir()


def test_dense_search_gives_cosine_similarities_best_first_within_the_filter(store, filled):
    hits = store.dense_search([1.0, 0.0, 0.0], 3, filled)
    assert [chunk_id for chunk_id, _ in hits] == ["a@1#0", "b@2#0", "a@1#1"]
    assert [round(score, 4) for _, score in hits] == [1.0, 0.6, 0.0]
    assert [chunk_id for chunk_id, _ in store.dense_search([1.0, 0.0, 0.0], 3, filled, where={"year": 2019})] == ["b@2#0"]
    assert len(store.dense_search([0.0, 1.0, 0.0], 1, filled)) == 1


def test_chunk_vectors_are_the_stored_embeddings_of_the_ids_the_store_has(store, filled):
    found = store.chunk_vectors(["b@2#0", "gone@0#0"], filled)
    assert list(found) == ["b@2#0"]
    assert found["b@2#0"].tolist() == pytest.approx([0.6, 0.8, 0.0])
    assert store.chunk_vectors([], filled) == {}


def test_collections_are_found_listed_and_deleted_by_name(store, filled):
    store.create_collection("papers__gother")
    assert sorted(store.collection_names()) == ["papers__gother", "papers__gtest"]
    assert store.collection("papers__gtest").count() == 3
    assert store.create_collection("papers__gtest").count() == 3  # an existing one is opened, not replaced
    store.delete_collection("papers__gother")
    assert store.collection_names() == ["papers__gtest"]
    with pytest.raises(Exception):
        store.collection("papers__gother")


def test_a_server_url_nothing_answers_at_is_a_store_error_naming_it(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    store = VectorStore(Settings(data_dir=tmp_path, chroma_url=url))
    assert store.location == url
    with pytest.raises(StoreError, match=f"cannot reach the Chroma server at {url}"):
        store.collection_names()
    with pytest.raises(StoreError, match="is not an http"):
        VectorStore(Settings(data_dir=tmp_path, chroma_url="ftp://127.0.0.1:21")).collection_names()


def test_a_server_that_stops_answering_is_a_store_error_and_other_errors_pass(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    store = VectorStore(Settings(data_dir=tmp_path, chroma_url=url))
    with pytest.raises(StoreError, match=f"the Chroma server at {url} is not answering"):
        with store.unreachable_is_a_store_error():
            httpx.get(f"{url}/api/v2/heartbeat", timeout=5)  # what the HTTP client raises mid-query
    with pytest.raises(KeyError):
        with store.unreachable_is_a_store_error():
            raise KeyError("not the store's")


def test_a_state_from_another_store_is_a_mismatch_naming_both_and_the_fix(tmp_path):
    embedded = Settings(data_dir=tmp_path).for_collection("mine")
    server = Settings(data_dir=tmp_path, chroma_url="http://127.0.0.1:8000")
    store = VectorStore(embedded)
    assert store.identity == StoreIdentity.of(embedded)
    assert store.mismatch({}) is None  # a catalog from before stores were recorded: taken as this store's
    assert store.mismatch({"store": store.identity.to_state()}) is None
    problem = store.mismatch({"store": StoreIdentity.of(server).to_state()})
    assert f"collection 'mine' in {tmp_path}" in problem
    assert "the Chroma server at http://127.0.0.1:8000" in problem and "the embedded Chroma store" in problem
    assert "rag ingest --collection mine" in problem
