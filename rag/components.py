"""Building the pipeline's parts from settings, with any part injectable.

The CLI, the UI and the evaluation all start here, so they run the same code.
"""

from __future__ import annotations

import logging
import threading

from rag.embedding import Embedder, SentenceTransformerEmbedder
from rag.index import PaperIndex
from rag.retrieval import Retriever
from rag.settings import Settings

log = logging.getLogger(__name__)


def make_embedder(settings: Settings) -> Embedder:
    return SentenceTransformerEmbedder(settings.embedding_model, settings.embedding_batch_size)


def open_index(settings: Settings, embedder: Embedder | None = None, client=None) -> PaperIndex:
    return PaperIndex(settings, embedder or make_embedder(settings), client=client)


def open_retriever(settings: Settings, embedder: Embedder | None = None, client=None) -> Retriever:
    return Retriever(open_index(settings, embedder, client), settings)


def open_llm(settings: Settings, start_in_background: bool = False):
    """The configured LLM endpoint, or the embedded local model's server.

    Returns (llm, server); server is None for an external endpoint. The
    embedded server is started here (in a thread when asked, so a UI can show
    its status) and every request waits until it is ready.
    """
    from rag.llm import LLMError, OpenAIChatLLM
    from rag.local_llm import LocalLLMServer, LocalModelError

    if settings.llm_base_url:
        return OpenAIChatLLM(settings, settings.llm_base_url, settings.llm_model), None

    server = LocalLLMServer(settings)

    def wait_until_ready() -> None:
        try:
            server.wait_ready()
        except LocalModelError as err:
            raise LLMError(f"the embedded model is not available: {err}", "not_ready") from None

    if start_in_background:
        threading.Thread(target=_start_logging_failure, args=(server,), name="llm-start", daemon=True).start()
    else:
        server.start()
    model = settings.local_model_file.name if settings.local_model_file else settings.local_model
    llm = OpenAIChatLLM(
        settings, server.base_url, "local", wait_until_ready, description=f"embedded {model}"
    )
    return llm, server


def _start_logging_failure(server) -> None:
    try:
        server.start()
    except Exception as err:  # the server's status carries the reason for the UI
        log.warning("embedded LLM failed to start: %s", err)

