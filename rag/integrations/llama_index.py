"""The product inside LlamaIndex: its search as a retriever, its verified answers as a query engine.

    from rag.integrations.llama_index import PaperRetriever
    nodes = PaperRetriever(k=5, years="2020-").retrieve("contrastive sentence embeddings")

    from rag.integrations.llama_index import PaperQueryEngine
    response = PaperQueryEngine().query("How does DiffCSE differ from SimCSE?")

Without a ``service``, each opens the index its settings name (RAG_* variables, rag.toml;
``collection`` picks one); PaperQueryEngine also starts the configured LLM (or the embedded
model, stopped by ``close()`` or at exit). PaperRetriever plugs into any LlamaIndex pipeline,
e.g. ``RetrieverQueryEngine.from_args(PaperRetriever(), llm=...)``.

A node's text is the paper's abstract (a retriever's) or the answer's evidence sentences (a
query engine's source), without the sentences rag.hostile judges not to be content: the
user's own model reads them.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.response.schema import Response
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from rag.content_only import content_only
from rag.evidence import Source
from rag.generation import Answer
from rag.paper import Paper
from rag.pipeline import open_pipeline
from rag.retrieval import RetrievedPaper
from rag.service import PaperService, Request, checked_filter
from rag.settings import load_settings

# Metadata a synthesising model does not need to read (it is still on the node).
NOT_FOR_THE_MODEL = ["paper_id", "url", "collection", "withheld", "number", "supporting"]


class _ServiceRequests:
    """What the retriever and the query engine share: the service they ask (opened here when
    none is given, then theirs to close), and the parts every request of theirs has."""

    def __init__(
        self,
        service: PaperService | None,
        answering: bool,
        collection: str | None,
        k: int | None,
        years: str | None,
        author: str | None,
        category: str | None,
    ):
        checked_filter(years=years, author=author, category=category)  # a bad filter: now, not at the first query
        self.opened = service is None
        if service is None:
            settings = load_settings(**({"collection": collection} if collection else {}))
            service = PaperService.of(open_pipeline(settings, answering=answering))
        self.service = service
        self.fields = {"collection": collection, "top_k": k, "years": years, "author": author, "category": category}

    def request(self, query_bundle: QueryBundle) -> Request:
        return self.service.request(query_bundle.query_str, **self.fields)


class PaperRetriever(BaseRetriever):
    """The product's hybrid search (its filters included) as a LlamaIndex retriever: one node per
    paper, best first, scored by the search's fused score."""

    def __init__(
        self,
        service: PaperService | None = None,
        *,
        collection: str | None = None,
        k: int | None = None,
        years: str | None = None,
        author: str | None = None,
        category: str | None = None,
        mode: Literal["hybrid", "dense", "bm25"] | None = None,
        callback_manager: CallbackManager | None = None,
    ):
        """k: papers per query (default: the top_k setting); years: "2021", "2019-2021", "2019-"
        or "-2021"; author: part of an author's name; category: "cs.CL" or an archive, "cs"."""
        self._requests = _ServiceRequests(service, False, collection, k, years, author, category)
        self.mode = mode
        super().__init__(callback_manager=callback_manager)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        service = self._requests.service
        request = self._requests.request(query_bundle)
        result = service.search(request, mode=self.mode)
        return [paper_node(found, service.collection_of(request)) for found in result.papers]


class PaperQueryEngine(BaseQueryEngine):
    """The product's verified, cited answers as a LlamaIndex query engine: ``response`` is the
    answer with its [n] markers, and ``source_nodes[n - 1]`` the paper [n] cites, its text the
    evidence sentences the answer was written from. A refusal or an LLM failure has no sources;
    ``metadata`` says which (refused, generated, error)."""

    def __init__(
        self,
        service: PaperService | None = None,
        *,
        collection: str | None = None,
        k: int | None = None,
        years: str | None = None,
        author: str | None = None,
        category: str | None = None,
        callback_manager: CallbackManager | None = None,
    ):
        self._requests = _ServiceRequests(service, True, collection, k, years, author, category)
        super().__init__(callback_manager=callback_manager)

    def _query(self, query_bundle: QueryBundle) -> Response:
        service = self._requests.service
        request = self._requests.request(query_bundle)
        answer = service.ask(request)
        return answer_response(answer, service.collection_of(request))

    async def _aquery(self, query_bundle: QueryBundle) -> Response:
        return await asyncio.to_thread(self._query, query_bundle)

    def _get_prompt_modules(self) -> dict:
        return {}  # no prompt of LlamaIndex's is used: the product writes its own

    def close(self) -> None:
        """Stop the embedded model, if this engine opened its service (a given service is the giver's)."""
        if self._requests.opened:
            self._requests.service.workspace.close()


def paper_node(found: RetrievedPaper, collection: str) -> NodeWithScore:
    """A retrieved paper as a node: its abstract, and what a reader needs to find it again."""
    abstract = content_only(found.paper.abstract)
    return NodeWithScore(node=_node(found.paper, abstract.text, collection, withheld=abstract.withheld), score=found.score)


def answer_response(answer: Answer, collection: str) -> Response:
    """The answer as a LlamaIndex Response: its text, and its cited papers as source nodes in [n] order."""
    scores = {found.paper.id: found.score for found in answer.retrieved}
    return Response(
        response=answer.text,
        source_nodes=[NodeWithScore(node=_cited_node(source, collection), score=scores.get(source.paper.id)) for source in answer.cited],
        metadata={
            "collection": collection,
            "query": answer.query,
            "refused": answer.refused,
            "generated": answer.generated,
            "error": answer.error,
        },
    )


def _cited_node(source: Source, collection: str) -> TextNode:
    supporting = [sentence for sentence, rests in zip(source.sentences, source.supporting_flags) if rests]
    return _node(
        source.paper, source.text, collection, number=source.number, supporting=supporting, withheld=source.withheld
    )


def _node(paper: Paper, text: str, collection: str, **extra: object) -> TextNode:
    metadata = {
        "title": paper.title,
        "authors": paper.authors,
        "year": paper.year,
        "url": paper.link,
        "paper_id": paper.id,
        "collection": collection,
        **extra,
    }
    return TextNode(
        id_=f"{collection}/{paper.id}",
        text=text,
        metadata=metadata,
        excluded_llm_metadata_keys=[key for key in NOT_FOR_THE_MODEL if key in metadata],
        excluded_embed_metadata_keys=list(metadata),
    )
