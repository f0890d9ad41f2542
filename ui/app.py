"""The chat web UI (Gradio 6): a thin layer over rag.generation.AnswerEngine.

`build_app(settings, engine, llm_status)` makes the page (the engine is
injected, so tests can give it any LLM); `serve(settings)` loads the index,
starts the LLM and runs the page until Ctrl-C (`rag ui`).

What the page does:
- chat: the model's words stream in, then are replaced by the checked answer
  with [n] markers and the cited papers as expandable titles (the abstract,
  the sentences given to the model in bold); history is kept per browser
  session (gr.State), so follow-ups work; Clear and Retry buttons;
- a first screen that says what is in the corpus, with example questions and
  a picker that turns 2-3 chosen papers into a comparison question;
- settings: papers retrieved per question (a per-request copy of the engine),
  which model answers and its status, polled while it starts;
- errors (a failed LLM, an empty or over-long question, a lost index, any
  unexpected exception) become chat messages; the next question works;
- concurrency through Gradio's queue: answers share one concurrency group of
  `ui_concurrency`, the rest wait (up to `ui_max_queue`); light events (status
  polling, the comparison picker) bypass the queue;
- API endpoints with explicit names: /chat (the page's chat, per session),
  /retry, /clear and /ask (stateless: question, optional history, optional
  top_k -> a JSON-able dict with the answer, its cited titles and more).
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home (offline machines)

import logging
import signal
import socket
import sys
import threading
import time
from typing import Any, Callable, Iterator

import gradio as gr

from rag.conversation import Turn
from rag.generation import Answer, AnswerEngine
from rag.llm import LLMError
from rag.settings import Settings
from ui import render

log = logging.getLogger(__name__)

STREAM_INTERVAL = 0.08  # seconds between streamed updates of the message (tokens come faster)
TOP_K_MAX = 20
ANSWER_GROUP = "answer"  # the concurrency group of every event that calls the LLM

EXAMPLES: list[tuple[str, str]] = [
    ("What problem does TransliCo address, and how?", "What problem does TransliCo address, and how?"),
    ("Which model did they fine-tune, and on how much data?",
     "↳ then a follow-up: Which model did they fine-tune, and on how much data?"),
    ("Compare TransliCo and the Semantic Hub Hypothesis", "Compare TransliCo and the Semantic Hub Hypothesis"),
    ("What does DiffCSE learn, and how does it do against SimCSE?",
     "What does DiffCSE learn, and how does it do against SimCSE?"),
    ("What is the Platonic Representation Hypothesis?", "What is the Platonic Representation Hypothesis?"),
]

CSS = """
.gradio-container { max-width: 1320px !important; margin: 0 auto !important; }
#rag-header h1 { font-size: 1.7rem; margin: 0 0 .15rem 0; letter-spacing: -.01em; }
#rag-header .rag-tagline { margin: 0; color: var(--body-text-color-subdued); font-size: 1rem; }
#rag-intro { font-size: .95rem; }
#rag-intro p { margin: .2rem 0 0 0; }
#rag-intro p + p { color: var(--body-text-color-subdued); font-size: .9rem; }
.rag-status { color: var(--body-text-color-subdued); font-style: italic; }
.rag-sources { margin-top: .6rem; border-top: 1px solid var(--border-color-primary); padding-top: .5rem; }
.rag-sources-heading { font-weight: 600; font-size: .9rem; margin-bottom: .3rem; }
.rag-hint { font-weight: 400; color: var(--body-text-color-subdued); font-size: .8rem; }
details.rag-source { border: 1px solid var(--border-color-primary); border-radius: 8px;
  padding: .35rem .6rem; margin: .3rem 0; background: var(--background-fill-secondary); }
details.rag-source > summary { cursor: pointer; font-size: .9rem; line-height: 1.35; }
details.rag-source[open] > summary { margin-bottom: .35rem; }
.rag-num { font-weight: 700; color: var(--color-accent); margin-right: .15rem; }
.rag-title { font-weight: 600; }
.rag-meta { font-size: .8rem; color: var(--body-text-color-subdued); margin-bottom: .25rem; }
.rag-abstract { font-size: .88rem; line-height: 1.5; }
.rag-abstract strong { background: rgba(250, 204, 21, .22); font-weight: 600; }
.rag-note { font-size: .75rem; color: var(--body-text-color-subdued); margin-top: .3rem; }
.rag-model { font-size: .85rem; line-height: 1.45; }
.rag-model code { font-size: .8rem; }
.rag-llm-status { font-size: .9rem; font-weight: 600; margin-top: .4rem; display: flex;
  align-items: center; gap: .45rem; }
.rag-dot { width: .65rem; height: .65rem; border-radius: 50%; display: inline-block; flex: none; }
.rag-ok .rag-dot { background: #16a34a; }
.rag-wait .rag-dot { background: #f59e0b; animation: rag-pulse 1s infinite alternate; }
.rag-bad .rag-dot { background: #dc2626; }
.rag-bad { color: #b91c1c; }
@keyframes rag-pulse { from { opacity: .35; } to { opacity: 1; } }
.rag-status-detail { font-size: .75rem; white-space: pre-wrap; max-height: 8rem; overflow: auto; }
#rag-buttons button { min-width: 0; }
.rag-error-tag { display: inline-block; font-size: .75rem; font-weight: 700; text-transform: uppercase;
  letter-spacing: .04em; color: #fff; background: #dc2626; border-radius: 4px; padding: 0 .4rem; margin-right: .3rem; }
"""

THEME = gr.themes.Soft(
    primary_hue="indigo",
    neutral_hue="slate",
    font=["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
)  # system fonts only: nothing is fetched from a font service


# --- the LLM, one request at a time for the embedded server ---------------------------


class OneAtATime:
    """Lets one request at a time reach an LLM server that serves one at a time.

    llama-cpp-python's server (the embedded model) answers one request at a
    time and, with its default `interrupt_requests`, ends a streaming answer
    early when another request arrives; a request waiting inside it also uses
    up its own timeout. So the UI sends the embedded server one request at a
    time and the others wait here (their page says so), at most `wait_limit`
    seconds.
    """

    def __init__(self, llm, wait_limit: float):
        self.llm = llm
        self.description = llm.description
        self.base_url = getattr(llm, "base_url", None)
        self.wait_limit = wait_limit
        self._lock = threading.Lock()

    def busy(self) -> bool:
        return self._lock.locked()

    def _acquire(self) -> None:
        if not self._lock.acquire(timeout=self.wait_limit):
            raise LLMError(
                f"the language model ({self.description}) was busy with other answers for "
                f"{self.wait_limit:g} s; please ask again",
                "timeout",
            )

    def stream(self, messages: list[dict], max_tokens: int | None = None) -> Iterator[str]:
        self._acquire()
        try:
            yield from self.llm.stream(messages, max_tokens)
        finally:
            self._lock.release()

    def complete(self, messages: list[dict], max_tokens: int | None = None) -> str:
        self._acquire()
        try:
            return self.llm.complete(messages, max_tokens)
        finally:
            self._lock.release()


def open_engine(settings: Settings, retriever=None):
    """The engine `serve` uses, with the LLM from settings (the embedded one is
    started in the background). Returns (engine, server or None, llm_status).
    Raises rag.index.StoreError when there is no index."""
    from rag.components import open_llm, open_retriever

    if retriever is None:
        retriever = open_retriever(settings)  # fails fast, before any model starts
    llm, server = open_llm(settings, start_in_background=True)
    if server is not None:
        llm = OneAtATime(llm, wait_limit=settings.llm_timeout)

        def llm_status() -> str:
            return server.status
    else:

        def llm_status() -> str:
            return "external endpoint (not monitored)"

    return AnswerEngine(settings, retriever, llm), server, llm_status


# --- results as data -------------------------------------------------------------------


def answer_summary(answer: Answer) -> dict[str, Any]:
    """An answer as plain JSON-able values (the /ask result, the details panel)."""
    return {
        "question": answer.question,
        "answer": answer.text,
        "cited_titles": answer.cited_titles,
        "refused": answer.refused,
        "generated": answer.generated,
        "error": answer.error,
        "query": answer.query,
        "comparison": answer.comparison,
        "sources": [
            {"number": s.number, "title": s.title, "cited": s.number in answer.cited_numbers, "sentences": s.sentences}
            for s in answer.sources
        ],
        "retrieved": [
            {"title": p.title, "score": round(p.score, 4), "named_in_question": p.named} for p in answer.retrieved
        ],
        "markdown": answer.markdown(),
        "timings_ms": answer.timings_ms,
    }


def turns_from_history(history: Any) -> list[Turn]:
    """OpenAI-style messages [{role, content}] (assistant messages may carry
    `cited_titles`, as /ask returns them) to the engine's turns."""
    if history in (None, "", []):
        return []
    if not isinstance(history, list) or not all(isinstance(m, dict) for m in history):
        raise ValueError("history must be a list of {role, content} messages")
    turns: list[Turn] = []
    pending: str | None = None
    for message in history:
        role = message.get("role")
        if role == "user":
            pending = str(message.get("content") or "")
        elif role == "assistant":
            titles = message.get("cited_titles") or []
            turns.append(Turn(pending or "", str(message.get("content") or ""), [str(t) for t in titles]))
            pending = None
    return turns


def _record(question: str, display: str, answer: Answer | None = None) -> dict[str, Any]:
    """One exchange in the session state. `context` says whether follow-ups may use it."""
    return {
        "question": question,
        "display": display,
        "answer": answer.markdown() if answer else display,
        "cited_titles": answer.cited_titles if answer else [],
        "context": bool(answer and (answer.generated or answer.refused)),
    }


SHOWN_QUESTION_CHARS = 600  # a rejected over-long question is not shown whole


def _user_message(question: str) -> dict:
    text = question if len(question) <= SHOWN_QUESTION_CHARS else question[:SHOWN_QUESTION_CHARS] + " …"
    return {"role": "user", "content": text}


def _messages(records: list[dict]) -> list[dict]:
    shown: list[dict] = []
    for record in records:
        if record["question"].strip():
            shown.append(_user_message(record["question"]))
        shown.append({"role": "assistant", "content": record["display"]})
    return shown


# --- the handlers -----------------------------------------------------------------------


class ChatHandlers:
    """What the page's events call; all state is passed in and returned (gr.State)."""

    def __init__(self, settings: Settings, engine: AnswerEngine, llm_status: Callable[[], str]):
        self.settings = settings
        self.engine = engine
        self.llm_status = llm_status
        self._engines: dict[int, AnswerEngine] = {}
        self._engines_lock = threading.Lock()
        self.short_names = _short_names(engine)

    def engine_for(self, top_k: Any) -> AnswerEngine:
        """The engine with `top_k` papers retrieved per question (a cheap copy)."""
        try:
            k = int(top_k)
        except (TypeError, ValueError):
            return self.engine
        k = max(1, min(TOP_K_MAX, k))
        if k == self.engine.settings.top_k:
            return self.engine
        with self._engines_lock:
            if k not in self._engines:
                engine = self.engine
                self._engines[k] = AnswerEngine(
                    engine.settings.model_copy(update={"top_k": k}), engine.retriever, engine.llm, engine.prompts
                )
            return self._engines[k]

    # chat (streaming) ------------------------------------------------------------------
    def respond(self, question: str, records: list[dict] | None, top_k: float | None):
        yield from self._answer(question or "", list(records or []), top_k, clear_box=True)

    def retry(self, records: list[dict] | None, top_k: float | None):
        records = list(records or [])
        if not records:
            yield _messages(records), records, gr.skip(), gr.skip()
            return
        last = records.pop()
        yield from self._answer(last["question"], records, top_k, clear_box=False)

    def clear(self):
        return [], [], None

    def _answer(self, question: str, records: list[dict], top_k: Any, clear_box: bool):
        shown = _messages(records)
        if question.strip():
            shown.append(_user_message(question))

        def view(content: str) -> list[dict]:
            return [*shown, {"role": "assistant", "content": content}]

        skip = gr.skip()
        yield view(render.status_message("Searching the abstracts…")), skip, ("" if clear_box else skip), skip
        raw, pushed = "", 0.0
        answer: Answer | None = None
        events = None
        try:
            engine = self.engine_for(top_k)
            turns = [Turn(r["question"], r["answer"], r["cited_titles"]) for r in records if r["context"]]
            events = engine.stream(question, turns)
            for event in events:
                if event.kind == "status":
                    yield view(render.status_message(event.text + self._waiting_note())), skip, skip, skip
                elif event.kind == "token":
                    raw += event.text
                    now = time.monotonic()
                    if now - pushed >= STREAM_INTERVAL:
                        pushed = now
                        yield view(render.streaming_message(raw)), skip, skip, skip
                elif event.kind == "answer":
                    answer = event.answer
            if answer is None:
                raise RuntimeError("the engine ended without an answer")
        except Exception as err:  # any failure is a message in the chat; the app goes on
            message = self.explain_failure(err)
            records = [*records, _record(question, render.error_message(message))]
            yield _messages(records), records, skip, {"question": question, "error": message}
            return
        finally:
            if events is not None:
                events.close()
        records = [*records, _record(question, render.answer_message(answer), answer)]
        yield _messages(records), records, skip, answer_summary(answer)

    def _waiting_note(self) -> str:
        status = self.llm_status()
        if status == "starting":
            return " (the model is still loading; the answer starts when it is ready)"
        busy = getattr(self.engine.llm, "busy", None)
        if busy is not None and busy():
            return " (waiting for the model: it is writing another answer)"
        return ""

    def explain_failure(self, err: Exception) -> str:
        from rag.index import StoreError

        log.error("answering failed: %s: %s", type(err).__name__, err, exc_info=err)
        detail = " ".join(str(err).split())[:300]
        index = self._index_state()
        if index == "replaced":
            return (
                "The paper index was rebuilt (`rag ingest`) after this app started, and the version it "
                "loaded is gone. Restart `rag ui` to use the new index."
            )
        if isinstance(err, StoreError) or index == "missing":
            return f"The paper index is not available ({detail}). Run `rag ingest` to build it, then ask again."
        if isinstance(err, LLMError):
            return f"No answer: {err}. Please try again."
        return (
            f"Something went wrong while answering ({type(err).__name__}: {detail}). "
            "Please try again; the app is still running."
        )

    def _index_state(self) -> str:
        """"present", "missing" (no active index, or the store cannot be read) or
        "replaced" (a newer ingest is active; the loaded generation may be gone)."""
        retriever = self.engine.retriever
        try:
            active = retriever.index.active_collection()
        except Exception:
            return "missing"
        if active is None:
            return "missing"
        loaded = getattr(getattr(retriever, "collection", None), "name", None)
        return "replaced" if loaded and active.name != loaded else "present"

    # the stateless API -----------------------------------------------------------------
    def ask(self, question: str, history: list[dict] | None = None, top_k: int | None = None) -> dict:
        """Answer one question from the abstracts.

        history: earlier messages [{"role": "user"|"assistant", "content": ...}], e.g. the
        `history` of the previous result, for follow-up questions. top_k: papers retrieved
        (default: the server's setting). Returns answer, cited_titles, refused, generated,
        error, query (the standalone query searched), sources, retrieved, markdown,
        timings_ms and history (the history to send with a follow-up).
        """
        question = question or ""
        try:
            turns = turns_from_history(history)
            answer = self.engine_for(top_k).ask(question, turns)
        except ValueError as err:
            return _api_error(question, str(err), history)
        except Exception as err:
            return _api_error(question, self.explain_failure(err), history)
        result = answer_summary(answer)
        result["history"] = list(history or [])
        if answer.generated or answer.refused:
            result["history"] += [
                {"role": "user", "content": answer.question},
                {"role": "assistant", "content": answer.markdown(), "cited_titles": answer.cited_titles},
            ]
        return result

    # light events --------------------------------------------------------------------
    def poll_status(self):
        status = self.llm_status()
        interval = 1.0 if status == "starting" else 5.0
        return render.status_badge(status), gr.Timer(value=interval)

    def comparison(self, titles: list[str] | None):
        names = [self.short_names.get(t, t) for t in list(titles or [])[:3]]
        question = render.comparison_question(names)
        return question if question else gr.skip()


def _short_names(engine: AnswerEngine) -> dict[str, str]:
    """title -> the part before its colon ("TransliCo"), where that alone names the
    paper for the retriever; the comparison picker writes these into the question."""
    names: dict[str, str] = {}
    matcher = getattr(engine.retriever, "names", None)
    for paper in engine.retriever.papers.values():
        short = paper.title.split(":", 1)[0].strip()
        if matcher is not None and ":" in paper.title and short:
            try:
                if set(matcher.named_papers(short)) == {paper.id}:
                    names[paper.title] = short
            except Exception:  # a name is a nicety; the full title always works
                pass
    return names


def _api_error(question: str, message: str, history: Any) -> dict:
    return {
        "question": question,
        "answer": message,
        "cited_titles": [],
        "refused": False,
        "generated": False,
        "error": message,
        "query": question,
        "sources": [],
        "retrieved": [],
        "markdown": message,
        "timings_ms": {},
        "history": history if isinstance(history, list) else [],
    }


# --- the page ---------------------------------------------------------------------------


def build_app(settings: Settings, engine: AnswerEngine, llm_status: Callable[[], str]) -> gr.Blocks:
    handlers = ChatHandlers(settings, engine, llm_status)
    papers = list(engine.retriever.papers.values())
    titles = sorted((p.title for p in papers), key=str.casefold)
    embedded = not settings.llm_base_url
    llm_text = render.model_description(embedded, engine.llm.description, getattr(engine.llm, "base_url", None))

    with gr.Blocks(title="paper-rag · ask the abstracts", analytics_enabled=False) as app:
        app.handlers = handlers  # for tests and embedding
        records = gr.State([])
        gr.HTML(
            '<div id="rag-header"><h1>paper-rag</h1>'
            '<p class="rag-tagline">Grounded, cited answers from research-paper abstracts, running locally.</p></div>'
        )
        gr.Markdown(render.corpus_description(papers), elem_id="rag-intro")
        with gr.Row(equal_height=False):
            with gr.Column(scale=7, min_width=420):
                chatbot = gr.Chatbot(
                    label="Conversation",
                    show_label=False,
                    elem_id="rag-chat",
                    height=600,
                    layout="bubble",
                    buttons=["copy", "copy_all"],
                    feedback_options=None,
                    group_consecutive_messages=False,
                    placeholder=(
                        "**Ask a question about the papers** below, click an example, "
                        "or pick two or three papers on the right to compare them."
                    ),
                )
                with gr.Row(equal_height=True):
                    question = gr.Textbox(
                        label="Question",
                        show_label=False,
                        placeholder=f"Ask about the papers… (up to {settings.max_question_chars:,} characters)",
                        max_length=settings.max_question_chars,
                        lines=1,
                        max_lines=6,
                        scale=8,
                        autofocus=True,
                        elem_id="rag-question",
                    )
                    send = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="rag-send")
                with gr.Row(elem_id="rag-buttons"):
                    retry = gr.Button("↻ Retry last answer", size="sm", variant="secondary", elem_id="rag-retry")
                    clear = gr.Button("✕ Clear conversation", size="sm", variant="secondary", elem_id="rag-clear")
                gr.Examples(
                    examples=[[q] for q, _ in EXAMPLES],
                    example_labels=[label for _, label in EXAMPLES],
                    inputs=[question],
                    label="Example questions (click one, then Ask)",
                )
            with gr.Column(scale=3, min_width=280):
                with gr.Accordion("Compare papers", open=True):
                    pick = gr.Dropdown(
                        choices=titles,
                        multiselect=True,
                        max_choices=3,
                        label="Pick 2–3 papers",
                        info="Fills in a comparison question; then press Ask.",
                        elem_id="rag-compare",
                    )
                with gr.Accordion("Settings", open=True):
                    top_k = gr.Slider(
                        minimum=1,
                        maximum=TOP_K_MAX,
                        step=1,
                        value=min(settings.top_k, TOP_K_MAX),
                        label="Papers retrieved per question",
                        info=f"The {settings.context_papers} best (all named papers, for comparisons) are given to the model.",
                        elem_id="rag-top-k",
                    )
                    gr.HTML(llm_text, elem_id="rag-model")
                    status = gr.HTML(render.status_badge(llm_status()), elem_id="rag-llm-status")
                with gr.Accordion("Last answer: what was searched", open=False):
                    details = gr.JSON(label="Query, retrieved papers, timings", elem_id="rag-details")

        timer = gr.Timer(1.0)
        light = {"queue": False, "api_visibility": "private", "show_progress": "hidden"}
        timer.tick(handlers.poll_status, None, [status, timer], **light)
        app.load(handlers.poll_status, None, [status, timer], **light)
        pick.change(handlers.comparison, [pick], [question], **light)

        outputs = [chatbot, records, question, details]
        answering = {"concurrency_id": ANSWER_GROUP, "show_progress": "minimal"}
        chat_event = gr.on(
            triggers=[question.submit, send.click],
            fn=handlers.respond,
            inputs=[question, records, top_k],
            outputs=outputs,
            api_name="chat",
            api_description="Ask in this session (history kept server-side): returns the chat messages, "
            "the cleared textbox and the answer's details (query, cited titles, ...).",
            **answering,
        )
        retry_event = retry.click(
            handlers.retry,
            [records, top_k],
            outputs,
            api_name="retry",
            api_description="Regenerate the last answer of this session.",
            **answering,
        )
        clear.click(
            handlers.clear,
            None,
            [chatbot, records, details],
            api_name="clear",
            api_description="Forget this session's conversation.",
            cancels=[chat_event, retry_event],
            show_progress="hidden",
            concurrency_limit=None,
        )
        gr.api(handlers.ask, api_name="ask", concurrency_id=ANSWER_GROUP)
    return app


# --- running it ---------------------------------------------------------------------------


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host if host not in ("", "0.0.0.0") else "127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(app: gr.Blocks, settings: Settings, *, block: bool = True) -> str:
    """Queue and launch the app on settings.ui_host/ui_port (0: a free port), with
    a login when ui_username and ui_password are set; never a public share link.
    Returns the local URL (blocks until Ctrl-C when `block`)."""
    app.queue(default_concurrency_limit=settings.ui_concurrency, max_size=settings.ui_max_queue)
    auth = None
    if settings.ui_username and settings.ui_password is not None:
        auth = (settings.ui_username, settings.ui_password.get_secret_value())
    port = settings.ui_port or _free_port(settings.ui_host)
    app.launch(
        server_name=settings.ui_host,
        server_port=port,
        share=False,
        auth=auth,
        auth_message="paper-rag: please log in." if auth else None,
        prevent_thread_lock=True,
        quiet=True,
        show_error=False,
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
        enable_monitoring=False,
        footer_links=["api"],
        theme=THEME,
        css=CSS,
    )
    url = app.local_url or f"http://{settings.ui_host}:{port}/"
    if block:
        print(f"paper-rag UI: {url}  (Ctrl-C to stop)", flush=True)
        try:
            app.block_thread()
        finally:
            app.close()
    return url


def serve(settings: Settings) -> None:
    """`rag ui`: load the index once, start the LLM in the background, serve the page."""
    from rag.embedding import EmbeddingModelError
    from rag.index import StoreError
    from rag.local_llm import LocalModelError

    try:
        engine, server, llm_status = open_engine(settings)
    except StoreError as err:
        message = str(err)
        hint = "" if "rag ingest" in message else " (run `rag ingest` first)"
        print(f"error: {message}{hint}", file=sys.stderr)
        raise SystemExit(1) from None
    except (EmbeddingModelError, LocalModelError, LLMError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    def interrupt(*_: object) -> None:  # SIGTERM stops like Ctrl-C: the model server is stopped too
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)
    try:
        app = build_app(settings, engine, llm_status)
        if server is not None:
            print(f"starting the embedded model ({engine.llm.description}); the page shows its status", flush=True)
        launch(app, settings, block=True)
    finally:
        if server is not None:
            server.stop()
