"""Baselines a user could otherwise have: a LlamaIndex starter pipeline, and
pasting the abstracts the product retrieves.

The starter: an in-memory ``VectorStoreIndex`` over one document per paper
(LlamaIndex's default chunking), queried with ``CitationQueryEngine``
(LlamaIndex's own citing query engine, default prompts, top 5), using the same
embedding model and the same LLM endpoint as the product, so the comparison
isolates the pipeline.

The pasted abstracts: the full abstracts of the product's top 3 papers, each
cited, no model. It is "correct" whenever retrieval is, so it shows which
answer metrics tell an answer from a pile of sources.
"""

from __future__ import annotations

import re
import time

from eval.harness import System, empty_row, retrieval_system
from rag.service import PaperService
from eval.questions import Question
from rag.generation import REFUSAL_CUES
from rag.pipeline import Pipeline

STARTER_TOP_K = 5
PASTE_ABSTRACTS = "paste-abstracts"
PASTED_PAPERS = 3


def llamaindex_starter(pipeline: Pipeline) -> System:
    """The starter over the pipeline's papers, embedder and LLM endpoint."""
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.embeddings import BaseEmbedding
    from llama_index.core.query_engine import CitationQueryEngine
    from llama_index.llms.openai_like import OpenAILike

    settings, papers, embedder = pipeline.settings, pipeline.papers, pipeline.embedder
    pipeline.llm.wait_until_ready()
    base_url, model = pipeline.llm.base_url, pipeline.llm.model

    class SameEmbedder(BaseEmbedding):
        def _get_query_embedding(self, query: str) -> list[float]:
            return embedder.embed([query])[0]

        def _get_text_embedding(self, text: str) -> list[float]:
            return embedder.embed([text])[0]

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return embedder.embed(texts)

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

    llm = OpenAILike(
        model=model,
        api_base=base_url,
        api_key=settings.llm.api_key.get_secret_value(),
        is_chat_model=True,
        timeout=settings.llm.timeout,
        max_retries=settings.llm.max_retries,
        max_tokens=settings.llm.max_tokens,
        temperature=settings.llm.temperature,
    )
    documents = [Document(text=f"{p.title}\n{p.abstract}", metadata={"title": p.title}) for p in papers]
    index = VectorStoreIndex.from_documents(documents, embed_model=SameEmbedder(model_name=embedder.name))
    engine = CitationQueryEngine.from_args(index, llm=llm, similarity_top_k=STARTER_TOP_K)

    def run(question: Question) -> dict:
        row = empty_row(question.id, question.question)  # no follow-up handling: the starter has none
        started = time.perf_counter()
        try:
            response = engine.query(question.question)
            nodes = response.source_nodes
            titles = [n.node.metadata["title"] for n in nodes]
            row["retrieved"] = [{"title": t, "score": round(n.score or 0.0, 6)} for t, n in zip(titles, nodes)]
            row["answer"] = str(response.response or "")
            cited = []
            for number in re.findall(r"\[(\d+)\]", row["answer"]):
                index_ = int(number) - 1
                if 0 <= index_ < len(titles) and titles[index_] not in cited:
                    cited.append(titles[index_])
            row["cited_titles"] = cited
            row["refused"] = bool(REFUSAL_CUES.search(row["answer"])) and not cited
        except Exception as err:
            row["error"] = f"{type(err).__name__}: {err}"
        row["latency_ms"]["total"] = round((time.perf_counter() - started) * 1000, 1)
        return row

    return run


def paste_abstracts(pipeline: Pipeline, k: int) -> System:
    """The product's retrieval (its retriever and retrieval mode; a follow-up made standalone
    without a model), then its top papers' abstracts as the answer, one paragraph each,
    ``Title [n]: abstract [n]``, all cited; it never refuses."""
    retrieve = retrieval_system(PaperService.of(pipeline), pipeline.settings.retrieval.mode, max(k, PASTED_PAPERS))
    abstracts = {p.title: p.abstract for p in pipeline.papers}

    def run(question: Question) -> dict:
        row = retrieve(question)
        pasted = [paper["title"] for paper in row["retrieved"][:PASTED_PAPERS]]
        # [n] is the n-th retrieved paper: how the harness reads a row without sources
        row["answer"] = "\n\n".join(
            f"{title} [{number}]: {abstracts[title]} [{number}]" for number, title in enumerate(pasted, start=1)
        )
        row["cited_titles"] = pasted
        return row

    return run
