import dataclasses

import pytest

from rag.index import PaperIndex, StoreError
from rag.retrieval import Retriever
from tests.conftest import CountingEmbedder


def _stored(index: PaperIndex) -> tuple[dict, set[str]]:
    """The committed papers, and the chunk ids in the catalog, Chroma and BM25 (checked equal)."""
    snapshot = index.open_snapshot()
    papers = snapshot.catalog.papers()
    in_catalog = set(snapshot.catalog.chunk_ids_of(papers))
    in_chroma = set(snapshot.collection.get(include=[])["ids"])
    in_bm25 = set(snapshot.chunk_lexical.doc_ids)
    assert in_catalog == in_chroma == in_bm25
    assert set(snapshot.title_lexical.doc_ids) == set(papers)
    return papers, in_catalog


def _embedded_papers(embedder: CountingEmbedder) -> set[str]:
    return {text.split("\n", 1)[0] for text in embedder.embedded}


def test_first_ingest_embeds_everything_and_records_the_model(settings, embedder, small_corpus):
    index = PaperIndex(settings, embedder)
    report = index.ingest(small_corpus, progress=False)
    assert report.changed and report.rebuilt
    assert report.embedded_papers == 12 and report.chunks == len(embedder.embedded)
    info = index.info()
    assert info["papers"] == 12 and info["chunks"] == report.chunks
    assert info["embedding_model"] == embedder.name
    assert info["embedding_dimension"] == 384


def test_reingest_with_nothing_changed_embeds_nothing(settings, embedder, small_corpus):
    index = PaperIndex(settings, embedder)
    index.ingest(small_corpus, progress=False)
    generation = index.info()["generation"]
    embedder.embedded.clear()
    report = index.ingest(small_corpus, progress=False)
    assert embedder.embedded == []
    assert not report.changed and report.reused_papers == 12
    assert index.info()["generation"] == generation


def test_editing_one_abstract_reembeds_only_that_paper(settings, embedder, small_corpus):
    index = PaperIndex(settings, embedder)
    index.ingest(small_corpus, progress=False)
    edited = dataclasses.replace(small_corpus[3], abstract=small_corpus[3].abstract + " We also release zebrafish code.")
    corpus = small_corpus[:3] + [edited] + small_corpus[4:]
    embedder.embedded.clear()
    report = index.ingest(corpus, progress=False)
    assert _embedded_papers(embedder) == {edited.title}
    assert report.embedded_papers == 1 and report.reused_papers == 11
    papers, chunk_ids = _stored(index)
    assert papers[edited.id].abstract.endswith("zebrafish code.")
    assert len(papers) == 12
    # the old version's vectors are gone, the other papers' kept their ids
    assert sum(i.startswith(edited.id + "@") for i in chunk_ids) == report.embedded_chunks
    hits = Retriever(index, settings).bm25_hits("zebrafish", 3)
    assert hits and hits[0][0].startswith(edited.id + "@")


def test_removed_papers_are_deleted_and_added_ones_embedded(settings, embedder, small_corpus, bundled_papers):
    index = PaperIndex(settings, embedder)
    index.ingest(small_corpus, progress=False)
    newcomer = bundled_papers[40]
    embedder.embedded.clear()
    report = index.ingest(small_corpus[2:] + [newcomer], progress=False)
    assert report.removed_papers == 2 and report.embedded_papers == 1
    assert _embedded_papers(embedder) == {newcomer.title}
    papers, chunk_ids = _stored(index)
    titles = {p.title for p in papers.values()}
    assert small_corpus[0].title not in titles and newcomer.title in titles
    assert {i.split("@")[0] for i in chunk_ids} == {p.id for p in small_corpus[2:] + [newcomer]}


def test_a_model_change_rebuilds_instead_of_mixing(settings, real_embedder, small_corpus):
    first = CountingEmbedder(real_embedder, name="model-a")
    PaperIndex(settings, first).ingest(small_corpus, progress=False)
    second = CountingEmbedder(real_embedder, name="model-b")
    index = PaperIndex(settings, second)
    with pytest.raises(StoreError, match="built with embedding model 'model-a'"):
        Retriever(index, settings)
    report = index.ingest(small_corpus, progress=False)
    assert report.rebuilt and "embedding_model changed" in report.reason
    assert report.embedded_papers == 12
    assert index.info()["embedding_model"] == "model-b"
    # only one collection remains: no mixed vectors anywhere
    names = [c.name for c in index.client.list_collections()]
    assert names == [index.info()["chroma_collection"]]
    _stored(index)


def test_chunk_setting_change_rebuilds(settings, embedder, small_corpus):
    PaperIndex(settings, embedder).ingest(small_corpus, progress=False)
    smaller = settings.changed(**{"chunk_max_tokens": 64})
    report = PaperIndex(smaller, embedder).ingest(small_corpus, progress=False)
    assert report.rebuilt and "chunk_max_tokens" in report.reason


class ExplodingEmbedder(CountingEmbedder):
    """Fault injection: dies (like Ctrl-C) after the first batch."""

    def embed(self, texts):
        if self.embedded:
            raise KeyboardInterrupt
        return super().embed(texts)


def test_an_interrupted_ingest_leaves_the_previous_index_usable(settings, real_embedder, small_corpus, bundled_papers):
    index = PaperIndex(settings, CountingEmbedder(real_embedder))
    index.ingest(small_corpus, progress=False)
    before = index.info()["generation"]
    question = small_corpus[5].title

    tiny_batches = settings.changed(**{"embedding_batch_size": 2})
    crashing = PaperIndex(tiny_batches, ExplodingEmbedder(real_embedder))
    with pytest.raises(KeyboardInterrupt):
        crashing.ingest(bundled_papers[20:40], progress=False)

    assert index.info()["generation"] == before
    result = Retriever(index, settings).search(question, k=3)
    assert result.papers[0].title == question
    # the vectors the interrupted ingest added are not part of the index ...
    collection = index.open_snapshot().collection
    assert collection.count() > index.info()["chunks"]
    # ... and the next ingest removes them and completes
    report = PaperIndex(settings, CountingEmbedder(real_embedder)).ingest(bundled_papers[20:40], progress=False)
    papers, chunk_ids = _stored(index)
    assert report.changed and len(papers) == 20
    assert collection.count() == len(chunk_ids)


def test_search_before_any_ingest_is_a_clear_error(settings, embedder):
    with pytest.raises(StoreError, match="run `rag ingest` first"):
        Retriever(PaperIndex(settings, embedder), settings)


def test_two_writers_are_refused(settings, embedder, small_corpus):
    index = PaperIndex(settings, embedder)
    with index.writer_lock():
        with pytest.raises(StoreError, match="another ingest is running"):
            PaperIndex(settings, embedder).ingest(small_corpus, progress=False)


def test_new_bm25_parameters_rescore_without_embedding(settings, embedder, small_corpus):
    PaperIndex(settings, embedder).ingest(small_corpus, progress=False)
    before = Retriever(PaperIndex(settings, embedder), settings).bm25_hits("contrastive learning", 3)
    embedder.embedded.clear()
    flatter = settings.changed(**{"bm25_k1": 0.5})
    report = PaperIndex(flatter, embedder).ingest(small_corpus, progress=False)
    assert report.changed and not report.rebuilt and embedder.embedded == []
    after = Retriever(PaperIndex(flatter, embedder), flatter).bm25_hits("contrastive learning", 3)
    assert [s for _, s in after] != [s for _, s in before]
    _stored(PaperIndex(flatter, embedder))
