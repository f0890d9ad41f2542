import dataclasses

import pytest

from rag.index import PaperIndex, StoreError
from rag.retrieval import Retriever
from tests.conftest import CountingEmbedder


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
    active = index.active_collection().name
    embedder.embedded.clear()
    report = index.ingest(small_corpus, progress=False)
    assert embedder.embedded == []
    assert not report.changed and report.reused_papers == 12
    assert index.active_collection().name == active


def test_editing_one_abstract_reembeds_only_that_paper(settings, embedder, small_corpus):
    index = PaperIndex(settings, embedder)
    index.ingest(small_corpus, progress=False)
    edited = dataclasses.replace(small_corpus[3], abstract=small_corpus[3].abstract + " We also release zebrafish code.")
    corpus = small_corpus[:3] + [edited] + small_corpus[4:]
    embedder.embedded.clear()
    report = index.ingest(corpus, progress=False)
    assert _embedded_papers(embedder) == {edited.title}
    assert report.embedded_papers == 1 and report.reused_papers == 11
    stored = index.read_all()
    assert stored.papers[edited.id].abstract.endswith("zebrafish code.")
    assert len(stored.papers) == 12


def test_removed_papers_are_deleted_and_added_ones_embedded(settings, embedder, small_corpus, bundled_papers):
    index = PaperIndex(settings, embedder)
    index.ingest(small_corpus, progress=False)
    newcomer = bundled_papers[40]
    embedder.embedded.clear()
    report = index.ingest(small_corpus[2:] + [newcomer], progress=False)
    assert report.removed_papers == 2 and report.embedded_papers == 1
    assert _embedded_papers(embedder) == {newcomer.title}
    titles = {p.title for p in index.read_all().papers.values()}
    assert small_corpus[0].title not in titles and newcomer.title in titles
    assert {c.paper_id for c in index.read_all().chunks} == {p.id for p in small_corpus[2:] + [newcomer]}


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
    # only one generation remains: no mixed vectors anywhere
    names = [c.name for c in index.client.list_collections()]
    assert sorted(names) == sorted([settings.collection_name, index.active_collection().name])


def test_chunk_setting_change_rebuilds(settings, embedder, small_corpus):
    PaperIndex(settings, embedder).ingest(small_corpus, progress=False)
    smaller = settings.model_copy(update={"chunk_max_tokens": 64})
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
    before = index.active_collection().name
    question = small_corpus[5].title

    tiny_batches = settings.model_copy(update={"embedding_batch_size": 2})
    crashing = PaperIndex(tiny_batches, ExplodingEmbedder(real_embedder))
    with pytest.raises(KeyboardInterrupt):
        crashing.ingest(bundled_papers[20:40], progress=False)

    assert index.active_collection().name == before
    assert len(index.read_all().papers) == 12
    result = Retriever(index, settings).search(question, k=3)
    assert result.papers[0].title == question
    # the next ingest completes and leaves exactly one generation
    report = PaperIndex(settings, CountingEmbedder(real_embedder)).ingest(bundled_papers[20:40], progress=False)
    assert report.changed and len(index.read_all().papers) == 20
    assert len(index.client.list_collections()) == 2


def test_search_before_any_ingest_is_a_clear_error(settings, embedder):
    with pytest.raises(StoreError, match="run `rag ingest` first"):
        Retriever(PaperIndex(settings, embedder), settings)


def test_two_writers_are_refused(settings, embedder, small_corpus):
    index = PaperIndex(settings, embedder)
    with index._writer_lock():
        with pytest.raises(StoreError, match="another ingest is running"):
            PaperIndex(settings, embedder).ingest(small_corpus, progress=False)
