"""The composition root: parts built from settings or injected, status for
front-ends, and the lifecycle of what it started."""

import pytest

from rag.errors import StoreError
from rag.pipeline import open_pipeline
from tests.test_generation import ScriptedLLM
from tests.test_retrieval import DIFFCSE


def test_injected_parts_are_the_ones_used(retriever):
    llm = ScriptedLLM("DiffCSE learns sentence embeddings sensitive to edits [1].")
    with open_pipeline(retriever.settings, retriever=retriever, llm=llm) as pipeline:
        assert pipeline.retriever is retriever and pipeline.llm is llm
        assert pipeline.embedder is retriever.embedder and pipeline.engine.embedder is retriever.embedder
        answer = pipeline.engine.ask("What does DiffCSE learn?")
        assert answer.cited_titles == [DIFFCSE] and llm.prompts
        assert pipeline.llm_status() == "external" and pipeline.index_state() == "present"
        assert len(pipeline.papers) == len(retriever.papers)


def test_only_what_a_front_end_asks_for_is_built(settings, embedder):
    pipeline = open_pipeline(settings, retrieval=False, answering=False, embedder=embedder)
    assert pipeline.retriever is None and pipeline.llm is None and pipeline.engine is None
    assert pipeline.index_state() == "missing" and pipeline.llm_status() == "none"
    pipeline.close()  # nothing was started: closing is harmless


def test_a_missing_index_fails_before_any_model_starts(settings, embedder, monkeypatch):
    import rag.pipeline

    started = []
    monkeypatch.setattr(rag.pipeline, "_open_llm", lambda *a: started.append(a))
    with pytest.raises(StoreError, match="rag ingest"):
        open_pipeline(settings, embedder=embedder)
    assert started == []


def test_a_newer_ingest_is_reported_as_replaced(settings, embedder, small_corpus):
    indexer = open_pipeline(settings, retrieval=False, answering=False, embedder=embedder)
    indexer.index.ingest(small_corpus[:6], progress=False)
    reading = open_pipeline(settings, answering=False, embedder=embedder)
    assert reading.index_state() == "present"
    indexer.index.ingest(small_corpus[:8], progress=False)
    assert reading.index_state() == "replaced"


def test_the_pipeline_owns_the_embedded_server_it_started(retriever, tmp_path):
    from tests.test_local_llm import smol_settings

    settings = smol_settings(tmp_path, local_threads=1)
    pipeline = open_pipeline(settings, retriever=retriever)
    with pipeline:
        assert pipeline.llm.embedded and "smollm2-135m" in pipeline.llm.description
        pipeline.llm.wait_until_ready()
        assert pipeline.llm_status() == "ready"
        assert pipeline.llm.complete([{"role": "user", "content": "Say hi."}], max_tokens=4)
    assert pipeline.llm_status() == "stopped"
