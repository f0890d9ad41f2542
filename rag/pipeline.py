"""The composition root: the one place that builds the pipeline from settings.

Every front-end (the CLI, the chat UI, the evaluation, the benchmarks, an API
server) gets its parts from :func:`open_pipeline`, so they all run the same
code. Any part can be injected instead of built (tests inject a scripted LLM,
the evaluation another endpoint). The returned :class:`Pipeline` owns what it
started, the embedded LLM server above all: use it as a context manager, or
call ``close()``.
"""

from __future__ import annotations

import logging
import threading

from rag.admission import AnswerQueue
from rag.paper import Paper
from rag.embedding import Embedder, EmbedderWrapper, embedder_for
from rag.generation import AnswerEngine
from rag.index import IngestReport, PaperIndex
from rag.llm import ChatLLM, OpenAIChatLLM
from rag.local_llm import LocalLLMServer
from rag.prompts import PromptLibrary
from rag.retrieval import Retriever
from rag.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "EmbedderWrapper",
    "IngestReport",
    "Pipeline",
    "Workspace",
    "build_embedder",
    "open_pipeline",
]


class Pipeline:
    """The built parts (``None`` where a front-end did not ask for them) and their lifecycle."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        index: PaperIndex,
        retriever: Retriever | None,
        llm: ChatLLM | None,
        engine: AnswerEngine | None,
        server: LocalLLMServer | None,
    ):
        self.settings = settings
        self.embedder = embedder
        self.index = index
        self.retriever = retriever
        self.llm = llm
        self.engine = engine
        self._server = server

    # --- status for front-ends ------------------------------------------------------
    @property
    def papers(self) -> list[Paper]:
        """Every indexed paper with its abstract (reads them all: for evaluation, not start-up)."""
        return list(self.retriever.papers.values()) if self.retriever else []

    @property
    def titles(self) -> list[str]:
        """Every indexed paper's title (kept in memory by the retriever)."""
        return list(self.retriever.titles.values()) if self.retriever else []

    def llm_status(self) -> str:
        """"ready", "starting", "failed: <reason>", "stopped", "external", or "none"."""
        return self.llm.status() if self.llm is not None else "none"

    def index_state(self) -> str:
        """"present"; "missing" (no active index, or the store cannot be read); or
        "replaced" (a newer ingest is active, so the generation loaded here may be gone)."""
        try:
            committed = self.index.committed_state()
            if committed:  # the vectors may be gone while the catalog is not
                self.index.client.get_collection(committed["collection"], embedding_function=None)
        except Exception:  # an unreadable catalog or store is a missing index to the user
            return "missing"
        if not committed:
            return "missing"
        loaded = self.retriever.generation if self.retriever else None
        return "replaced" if loaded and int(committed["generation"]) != loaded else "present"

    # --- lifecycle ------------------------------------------------------------------
    def close(self) -> None:
        """Stop what this pipeline started (the embedded LLM server). Idempotent."""
        if self._server is not None:
            self._server.stop()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Workspace:
    """The collections a front-end serves: the pipeline it opened (its collection,
    usually the default one) plus one per other collection, opened on first use.
    They all share its embedder, LLM and prompts, so a second collection costs an
    index, not a model. After an ingest (an upload) the collection's pipeline is
    reopened: the next question uses the new index, without a restart. ``answers``:
    the one queue at the model for everyone the front-ends answer at once."""

    def __init__(self, main: Pipeline):
        self.main = main
        self.settings = main.settings
        self.answers = AnswerQueue(main.settings)
        self._opened: dict[str, Pipeline] = {main.settings.storage.collection: main}
        self._lock = threading.Lock()
        self._engines: dict[tuple[int, int], AnswerEngine] = {}

    def engine(self, collection: str | None = None, top_k: int | None = None) -> AnswerEngine:
        """The collection's answer engine, retrieving ``top_k`` papers per question when given
        (a cheap copy sharing every part, kept)."""
        engine = self.pipeline(collection).engine
        if top_k is None or top_k == engine.settings.retrieval.top_k:
            return engine
        with self._lock:
            key = (id(engine), top_k)  # a reopened collection has a new engine
            if key not in self._engines:
                self._engines[key] = engine.with_settings(top_k=top_k)
            return self._engines[key]

    def names(self) -> list[str]:
        from rag.collections import collection_names

        return collection_names(self.settings)

    def pipeline(self, name: str | None = None) -> Pipeline:
        """The pipeline of collection ``name`` (the main one when None or empty)."""
        name = name or self.main.settings.storage.collection
        with self._lock:
            if name not in self._opened:
                self._opened[name] = self._open(name)
            return self._opened[name]

    def ingest(self, name: str, papers: list[Paper], progress: bool = False) -> IngestReport:
        """Add (or update) papers in collection ``name``, creating it if new; the
        collection's other papers stay. Then answers switch to the new index."""
        index = PaperIndex(self.settings.for_collection(name), self.main.embedder, client=self.main.index.client)
        report = index.ingest(papers, progress=progress, keep_others=True)
        reopened = self._open(name)
        with self._lock:
            self._opened[name] = reopened
        return report

    def _open(self, name: str) -> Pipeline:
        main = self.main
        return open_pipeline(
            self.settings.for_collection(name),
            answering=main.engine is not None,
            embedder=main.embedder,
            chroma_client=main.index.client,
            llm=main.llm,
            prompts=main.engine.prompts if main.engine else None,
        )

    def close(self) -> None:
        self.main.close()  # the others share its LLM and started nothing of their own


def open_pipeline(
    settings: Settings,
    *,
    retrieval: bool = True,
    answering: bool = True,
    start_llm_in_background: bool = False,
    embedder: Embedder | None = None,
    chroma_client=None,
    index: PaperIndex | None = None,
    retriever: Retriever | None = None,
    llm: ChatLLM | None = None,
    prompts: PromptLibrary | None = None,
) -> Pipeline:
    """Build the pipeline from settings; pass a part to use it instead of building it.

    retrieval: load the index for searching (raises StoreError when there is
    none, before any model starts). answering: also the LLM and the answer
    engine (implies retrieval). With no ``llm`` and no ``llm_base_url`` setting,
    the embedded model's server is started here (in a thread when
    ``start_llm_in_background``, so a UI can show its status meanwhile) and
    stopped by ``close()``.
    """
    retrieval = retrieval or answering
    if retriever is not None:
        index = index or retriever.index
    if index is not None:
        embedder = embedder or index.embedder
    embedder = embedder or build_embedder(settings)
    index = index or PaperIndex(settings, embedder, client=chroma_client)
    if retrieval and retriever is None:
        retriever = Retriever(index, settings)
    server = None
    engine = None
    if answering:
        if llm is None:
            llm, server = _open_llm(settings, start_llm_in_background)
        engine = AnswerEngine(settings, retriever, llm, embedder=embedder, prompts=prompts)
    return Pipeline(settings, embedder, index, retriever, llm, engine, server)


def build_embedder(settings: Settings) -> Embedder:
    """The embedding model the settings name (loaded on first use)."""
    return embedder_for(settings)


def _open_llm(settings: Settings, in_background: bool) -> tuple[ChatLLM, LocalLLMServer | None]:
    """The configured endpoint, or the embedded model behind a server started here."""
    if settings.llm.base_url:
        return OpenAIChatLLM(settings, settings.llm.base_url, settings.llm.model), None
    server = LocalLLMServer(settings)
    if in_background:
        threading.Thread(target=_start_logging_failure, args=(server,), name="llm-start", daemon=True).start()
    else:
        server.start()
    name = settings.llm.local_model_file.name if settings.llm.local_model_file else settings.llm.local_model
    return OpenAIChatLLM(settings, server.base_url, "local", server=server, display_name=name), server


def _start_logging_failure(server: LocalLLMServer) -> None:
    try:
        server.start()
    except Exception as err:  # whatever it was, the server's status carries the reason for the UI
        log.warning("embedded LLM failed to start: %s", err)
