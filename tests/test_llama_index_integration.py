"""rag.integrations.llama_index inside plain LlamaIndex pipelines, over a real index
(tests/tagged_papers.py: bundled papers with made-up years and authors, hostile abstracts,
a second collection) and, where an answer is written, the real SmolLM2 behind llama.cpp's
server: PaperRetriever as the product's search (filters, collections) and inside
LlamaIndex's own RetrieverQueryEngine; PaperQueryEngine as the product's verified answers
with their citations as source nodes."""

from __future__ import annotations

import re

import pytest
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import MetadataMode
from llama_index.llms.openai_like import OpenAILike

from benchmarks.reliability_injection import hostile_sentences
from rag.errors import InvalidRequestError
from rag.filters import PaperFilter
from rag.hostile import INSTRUCTIONS_NOTE
from rag.integrations.llama_index import PaperQueryEngine, PaperRetriever
from rag.local_llm import LocalLLMServer
from rag.pipeline import open_pipeline
from rag.service import PaperService
from rag.settings import Settings
from rag.text import split_sentences
from tests.tagged_papers import build_tagged_index
from tests.test_api import model_servers_of
from tests.test_filters import passes
from tests.test_ui import FIRST, TRANSLICO

pytestmark = pytest.mark.slow

QUESTION = "contrastive learning across scripts for multilingual language models"
SMOL = {"RAG_LLM__LOCAL_MODEL": "smollm2-135m", "RAG_LLM__MAX_TOKENS": "96", "RAG_LLM__LOCAL_THREADS": "1"}


@pytest.fixture(scope="module")
def tagged(tmp_path_factory, real_embedder, bundled_papers):
    return build_tagged_index(tmp_path_factory.mktemp("llama-index") / "data", real_embedder, bundled_papers)


@pytest.fixture(scope="module")
def service(tagged, real_embedder) -> PaperService:
    return PaperService.of(open_pipeline(tagged.settings, answering=False, embedder=real_embedder))


def titles(nodes) -> list[str]:
    return [n.node.metadata["title"] for n in nodes]


def test_two_lines_give_the_products_search_as_nodes(tagged, service, monkeypatch):
    monkeypatch.setenv("RAG_STORAGE__DATA_DIR", str(tagged.data_dir))  # the settings, as the `rag` command reads them
    nodes = PaperRetriever(k=5).retrieve(QUESTION)

    expected = service.search(service.request(QUESTION, top_k=5)).papers
    assert titles(nodes) == [p.title for p in expected] and expected[0].title == TRANSLICO
    assert [n.score for n in nodes] == pytest.approx([p.score for p in expected])
    node, paper = nodes[0].node, expected[0].paper
    assert node.metadata == {
        "title": paper.title, "authors": paper.authors, "year": paper.year, "url": paper.link,
        "paper_id": paper.id, "collection": "default", "withheld": [],
    }  # fmt: skip
    assert split_sentences(node.text) == split_sentences(paper.abstract)
    read_by_the_model = node.get_content(metadata_mode=MetadataMode.LLM)
    assert paper.title in read_by_the_model and paper.authors in read_by_the_model
    assert paper.id not in read_by_the_model


def test_the_filters_and_the_collection_are_the_products(tagged, service):
    nodes = PaperRetriever(service, k=10, years="2017-2021", author="alan").retrieve(QUESTION)
    wanted = PaperFilter(year_from=2017, year_to=2021, author="alan")
    assert nodes and all(passes(tagged.papers[n.node.metadata["paper_id"]], wanted) for n in nodes)
    assert TRANSLICO not in titles(nodes)  # 2024, by Grace Hopper: filtered out

    second = PaperRetriever(service, collection="second", k=3).retrieve(QUESTION)
    assert {n.node.metadata["paper_id"] for n in second} <= set(tagged.second)
    assert {n.node.metadata["collection"] for n in second} == {"second"}

    with pytest.raises(InvalidRequestError, match="years 'recently'"):
        PaperRetriever(service, years="recently")


def test_a_hostile_abstract_reaches_the_users_model_without_its_hostile_sentences(tagged, service):
    paper = next(p for p in tagged.hostile if p.id == "hostile-ignore")
    node = next(n.node for n in PaperRetriever(service, k=5).retrieve(paper.title) if n.node.metadata["paper_id"] == paper.id)
    read_by_the_model = node.get_content(metadata_mode=MetadataMode.LLM)
    for sentence in hostile_sentences([paper]):
        assert sentence not in read_by_the_model
    assert node.metadata["withheld"] == [INSTRUCTIONS_NOTE]


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    """SmolLM2 behind the real llama.cpp server, with room for three abstracts."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("smol"), local_model="smollm2-135m", local_context_tokens=4096, local_threads=1)
    server = LocalLLMServer(settings)
    server.start()
    server.wait_ready(180)
    yield server
    server.stop()


def test_the_retriever_inside_llamaindexs_own_query_engine(service, smollm2):
    llm = OpenAILike(model="local", api_base=smollm2.base_url, api_key="unused", is_chat_model=True,
                     context_window=4096, max_tokens=64, timeout=300, max_retries=0)  # fmt: skip
    engine = RetrieverQueryEngine.from_args(PaperRetriever(service, k=3), llm=llm)
    response = engine.query(FIRST)

    assert str(response).strip()  # whatever the tiny model wrote
    expected = service.search(service.request(FIRST, top_k=3)).papers
    assert titles(response.source_nodes) == [p.title for p in expected]
    assert TRANSLICO in titles(response.source_nodes)


def test_two_lines_give_the_products_verified_answer_with_its_citations_as_source_nodes(tagged, monkeypatch):
    for name, value in {"RAG_STORAGE__DATA_DIR": str(tagged.data_dir), **SMOL}.items():
        monkeypatch.setenv(name, value)
    engine = PaperQueryEngine()
    try:
        response = engine.query(FIRST)
    finally:
        engine.close()
    assert not model_servers_of(tagged.data_dir), "close() left the embedded model running"

    numbers = {int(n) for n in re.findall(r"\[(\d+)\]", response.response)}
    assert numbers == set(range(1, len(response.source_nodes) + 1))  # [n] is source_nodes[n - 1]
    assert response.metadata["error"] is None
    if response.metadata["refused"]:
        assert response.source_nodes == []
        return
    assert TRANSLICO in titles(response.source_nodes)
    for number, source in enumerate(response.source_nodes, start=1):
        metadata = source.node.metadata
        assert metadata["number"] == number and metadata["supporting"]
        assert set(metadata["supporting"]) <= set(split_sentences(source.node.text))
        assert set(split_sentences(source.node.text)) <= set(split_sentences(tagged.papers[metadata["paper_id"]].abstract))
