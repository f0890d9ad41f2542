"""The chat web UI (Gradio 6): a thin layer over one rag.pipeline.Pipeline.

`build_app(pipeline)` makes the page from the pipeline's parts (tests give it
one with any LLM); `launch` serves it. `rag ui` and `rag serve` start it
through serve/app.py (the listen-address check, the served pipeline, SIGTERM).

Where things are:
- ui/panels/: the page's parts, each with its events: chat.py (the
  conversation and the /chat /retry /clear /ask endpoints), compare.py (the
  comparison picker), scope.py (the collection and the year/author/category
  filters), upload.py (adding a file of papers to a collection), settings.py
  (top-k, the model and its status), details.py (the last answer as data);
- ui/handlers.py: what those events call (answering, streamed; the API);
- ui/render.py: answers, the corpus and the model status as HTML;
- ui/style.py: the CSS and theme.

Errors (a failed LLM, an empty or over-long question, a lost index, a bug)
become chat messages; the next question works. Answers wait at the model's
queue (rag/admission.py, shared with the API in `rag serve`): "busy, ask again"
when it is full, a timeout message after answer_timeout. Other queued events
(uploads) wait in Gradio's queue (up to `ui_max_queue`); light events (status
polling, the comparison picker) bypass it.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home (offline machines)


import gradio as gr

from rag.net import free_port
from rag.pipeline import Pipeline, Workspace
from rag.settings import Settings
from ui import render
from ui.handlers import ChatHandlers
from ui.panels.chat import ChatPanel
from ui.panels.compare import ComparePanel
from ui.panels.details import DetailsPanel
from ui.panels.scope import ScopePanel
from ui.panels.settings import SettingsPanel
from ui.panels.upload import UploadPanel
from ui.style import CITATION_SCRIPT, CSS, THEME

MEGABYTE = 1024 * 1024
HEADER = (
    '<div id="rag-header"><h1>paper-rag</h1>'
    '<p class="rag-tagline">Grounded, cited answers from research-paper abstracts, running locally.</p></div>'
)


def build_app(pipeline: Pipeline, workspace: Workspace | None = None) -> gr.Blocks:
    """The page: a header and what the corpus holds, the conversation on the left,
    the comparison picker, settings and the last answer's details on the right.
    `workspace`: the collections, when another front-end (the API) shares them."""
    handlers = ChatHandlers(workspace or Workspace(pipeline))
    with gr.Blocks(title="paper-rag · ask the abstracts", analytics_enabled=False) as app:
        app.handlers = handlers  # for tests and embedding
        gr.HTML(HEADER)
        intro = gr.Markdown(render.corpus_description(pipeline.titles, pipeline.settings.storage.collection), elem_id="rag-intro")
        with gr.Row(equal_height=False):
            with gr.Column(scale=7, min_width=420):
                chat = ChatPanel(pipeline.settings)
            with gr.Column(scale=3, min_width=280):
                compare = ComparePanel(pipeline.titles, pipeline.settings.comparison.max_papers)
                scope = ScopePanel(handlers)
                upload = UploadPanel(handlers) if pipeline.settings.serving.uploads_enabled else None
                settings_panel = SettingsPanel(pipeline.settings, pipeline.llm)
                details = DetailsPanel()
        chat.wire(handlers, top_k=settings_panel.top_k, scope=scope.inputs, details=details.json)
        compare.wire(
            handlers, chatbot=chat.chatbot, records=chat.records, question=chat.question, details=details.json,
            collection=scope.collection,
        )
        scope.wire(handlers, compare_pick=compare.pick, intro=intro)
        if upload is not None:
            upload.wire(handlers, collection=scope.collection)
        settings_panel.wire(handlers, app=app)
    return app


def page_options(settings: Settings) -> dict:
    """How the page is served, by `rag ui` (launch) and `rag serve` (mounted beside the API):
    a login when ui_username and ui_password are set; nothing that calls out."""
    auth = None
    if settings.serving.ui_username and settings.serving.ui_password is not None:
        auth = (settings.serving.ui_username, settings.serving.ui_password.get_secret_value())
    return {
        "auth": auth,
        "auth_message": "paper-rag: please log in." if auth else None,
        "show_error": False,
        "ssr_mode": False,
        "mcp_server": False,
        "pwa": False,
        "enable_monitoring": False,
        "footer_links": ["api"],
        # Gradio's own cap stops absurd bodies; files between the setting and twice it
        # reach the upload panel, which says what the limit is (Gradio's toast does not).
        "max_file_size": int(2 * settings.serving.max_upload_mb * MEGABYTE),
        "theme": THEME,
        "css": CSS,
        "head": CITATION_SCRIPT,
    }


def launch(app: gr.Blocks, settings: Settings, *, block: bool = True) -> str:
    """Queue and launch the app on settings.serving.ui_host/ui_port (0: a free port), with
    a login when ui_username and ui_password are set; never a public share link.
    Returns the local URL (blocks until Ctrl-C when `block`)."""
    queue_page(app, settings)
    port = settings.serving.ui_port or free_port(settings.serving.ui_host)
    app.launch(
        server_name=settings.serving.ui_host,
        server_port=port,
        share=False,
        prevent_thread_lock=True,
        quiet=True,
        **page_options(settings),
    )
    url = app.local_url or f"http://{settings.serving.ui_host}:{port}/"
    if block:
        print(f"paper-rag UI: {url}  (Ctrl-C to stop)", flush=True)
        try:
            app.block_thread()
        finally:
            app.close()
    return url


def queue_page(app: gr.Blocks, settings: Settings) -> None:
    """The page's queue, however it is served: ui_max_queue events waiting (answers wait at the model's)."""
    app.queue(max_size=settings.serving.ui_max_queue)
