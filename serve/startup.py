"""What every server does before it listens, the same for the page and the API."""

from __future__ import annotations

import signal
import sys
import threading

from rag.errors import SettingsError, UserError
from rag.net import is_loopback
from rag.pipeline import Pipeline, open_pipeline
from rag.settings import Settings


def check_listen_address(settings: Settings, host: str, api_keys: list[str] | None = None, *, page: bool = True) -> None:
    """Refuse to listen on a non-loopback address unless what is served there is protected (the
    page, when served, by its login; the API or the MCP server, when served (``api_keys`` not
    None), by keys), or api_allow_unauthenticated says so: anyone who can reach an open one could
    ask, and add papers."""
    missing = []
    if api_keys is not None and not api_keys:
        missing.append("API keys (set RAG_SERVING__API_KEYS or RAG_SERVING__API_KEYS_FILE)")
    if page and not (settings.serving.ui_username and settings.serving.ui_password is not None):
        missing.append("a login for the page (set RAG_SERVING__UI_USERNAME and RAG_SERVING__UI_PASSWORD)")
    if missing:
        _refuse_unprotected(settings, host, f"refusing to listen on {host} without {' or '.join(missing)}")


def check_model_address(settings: Settings, host: str) -> None:
    """`rag llm-server`: llama.cpp's server asks for no key, so only loopback, unless
    api_allow_unauthenticated says otherwise."""
    _refuse_unprotected(settings, host, f"refusing to serve the model on {host}: it has no key")


def _refuse_unprotected(settings: Settings, host: str, refusal: str) -> None:
    if is_loopback(host) or settings.serving.api_allow_unauthenticated:
        return
    raise SettingsError(f"{refusal}: anyone who can reach it could use it. RAG_SERVING__API_ALLOW_UNAUTHENTICATED=true accepts that.")


def stop_on_sigterm() -> None:
    """SIGTERM stops a server like Ctrl-C, so the pipeline's `with` block exits and the
    embedded model's server is stopped too (uvicorn re-raises the signal it caught
    after its own shutdown: with the default handler, that killed the process first)."""

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def open_served_pipeline(settings: Settings) -> Pipeline:
    """The pipeline a server answers from, its model starting in the background. A problem the
    user can act on (no index, no model) is one line on stderr, exit 1; once it is open,
    SIGTERM stops the server like Ctrl-C."""
    try:
        pipeline = open_pipeline(settings, start_llm_in_background=True)  # no index: fails before any model starts
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    stop_on_sigterm()
    return pipeline
