"""What the page's events call: answering (streamed into the chat), retry, clear,
the conversation's download, the stateless /ask API, the model status and the
comparison picker.

Everything comes from one rag.pipeline.Pipeline. A session's conversation is
passed in and returned (the page keeps it in a gr.State) as a list of records,
one per exchange; nothing about a session is stored here.
"""

from __future__ import annotations

import logging
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from rag.admission import WAITING_FOR_A_TURN
from rag.conversation import Turn
from rag.errors import InvalidQuestionError, InvalidRequestError, LLMError, StoreError, UserError, describe_bug
from rag.comparison import checked_aspects, comparison_question
from rag.generation import Answer, AnswerStream
from rag.collections import describe_collections
from rag.corpus import CorpusLoad, read_corpus
from rag.export import exchange_from_citations
from rag.paper import short_name
from rag.pipeline import Pipeline, Workspace
from rag.service import PaperService, Request
from rag.text import LONE_SURROGATE
from ui import render

log = logging.getLogger(__name__)

STREAM_INTERVAL = 0.08  # seconds between streamed updates of the message (tokens come faster)
SHOWN_QUESTION_CHARS = 600  # a rejected over-long question is not shown whole
DOWNLOAD_NAME = "paper-rag-conversation-{:%Y%m%d-%H%M}.md"  # the downloaded file, named by the time
TABLE_NAME = "paper-rag-table-{:%Y%m%d-%H%M}.{}"


# --- a session's conversation -----------------------------------------------------------


def _record(question: str, display: str, answer: Answer | None = None) -> dict[str, Any]:
    """One exchange of a session. `context`: whether follow-ups may use it."""
    return {
        "question": question,
        "display": display,  # the chat message shown
        "answer": answer.markdown() if answer else display,  # what follow-ups see
        "cited_titles": answer.cited_titles if answer else [],
        "cited": [source.paper.citation() for source in answer.cited] if answer else [],  # for the download
        "context": bool(answer and answer.keeps_context),
        # A table's files, for its download buttons.
        "table_csv": answer.table.csv() if answer and answer.table else None,
        "table_markdown": answer.markdown() if answer and answer.table else None,
    }


def _turns(records: list[dict]) -> list[Turn]:
    return [Turn(r["question"], r["answer"], r["cited_titles"]) for r in records if r["context"]]


def _user_message(question: str) -> dict:
    text = question if len(question) <= SHOWN_QUESTION_CHARS else question[:SHOWN_QUESTION_CHARS] + " …"
    return {"role": "user", "content": render.question_message(text)}


def _messages(records: list[dict]) -> list[dict]:
    """The chat messages of a session (no user bubble for a blank question)."""
    shown: list[dict] = []
    for record in records:
        if record["question"].strip():
            shown.append(_user_message(record["question"]))
        shown.append({"role": "assistant", "content": record["display"]})
    return shown


def failure_details(question: str, message: str, kind: str | None = None) -> dict:
    """The details of a question that got no answer: the same keys as Answer.to_dict().
    kind: why, for programs (an LLMError's kind; "busy", "timeout")."""
    return Answer.failed(question, message, kind).to_dict()


# --- the handlers -----------------------------------------------------------------------


class ChatHandlers:
    """The page's event handlers over a workspace: the pipeline the app was built
    with (its collection, engine, LLM and index) and the other collections."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self.service = PaperService(workspace)
        self.pipeline = workspace.main
        self.settings = workspace.settings

    def request(self, question: str, history: object, top_k: Any, scope: tuple) -> Request:
        """The checked request: the slider's number of papers (none given: the setting's), the
        collection and the filter fields (collection, year_from, year_to, author, category)."""
        try:
            k = int(top_k)
        except (TypeError, ValueError):
            k = None
        collection, year_from, year_to, author, category = scope
        return self.service.request(
            question, history, collection=collection, top_k=k,
            year_from=year_from, year_to=year_to, author=author, category=category,
        )  # fmt: skip

    # chat (streaming): each yield is (messages, records, question box, details) -------------
    def respond(
        self,
        question: str,
        records: list[dict] | None,
        top_k: float | None,
        collection: str | None = None,
        year_from: float | None = None,
        year_to: float | None = None,
        author: str | None = None,
        category: str | None = None,
    ):
        """Answer in this session, on the collection (default: the app's) and among the
        papers the year range, author substring and category let through."""
        scope = (collection, year_from, year_to, author, category)
        question = readable(question)
        records = list(records or [])
        yield from self._answer(
            question, records, lambda: self.service.ask_stream(self.request(question, _turns(records), top_k, scope)), True,
            collection,
        )

    def retry(
        self,
        records: list[dict] | None,
        top_k: float | None,
        collection: str | None = None,
        year_from: float | None = None,
        year_to: float | None = None,
        author: str | None = None,
        category: str | None = None,
    ):
        records = list(records or [])
        if not records:
            yield _messages(records), records, gr.skip(), gr.skip()
            return
        last = records.pop()
        scope = (collection, year_from, year_to, author, category)
        question = last["question"]
        yield from self._answer(
            question, records, lambda: self.service.ask_stream(self.request(question, _turns(records), top_k, scope)), False,
            collection,
        )

    def compare(self, titles: list[str] | None, aspects: str | None, records: list[dict] | None, collection: str | None = None):
        """The picked papers' table, streamed into this session's chat cell by cell."""
        titles = list(titles or [])
        pipeline = self.workspace.pipeline(collection)
        try:
            named_aspects = checked_aspects(aspects)
        except InvalidRequestError:  # said when the table is asked for, below
            named_aspects = []
        question = comparison_question([_short_name(pipeline, t) for t in titles], named_aspects) or "Compare"

        def start() -> AnswerStream:
            return self.service.compare_stream(self.service.comparison_request(titles, aspects, collection))

        yield from self._answer(question, list(records or []), start, False, collection)

    def clear(self):
        return [], [], None

    def _answer(
        self, question: str, records: list[dict], start: Callable[[], AnswerStream], clear_box: bool, collection: str | None
    ):
        """Stream what ``start`` begins (an answer, a table) into the chat: start raises
        InvalidRequestError for a request that cannot be made."""
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
            try:
                events = start()
            except InvalidRequestError as err:  # said as the answer, as it would be to any question like it
                rejected = Answer.failed(question, str(err), "invalid_question")
                records = [*records, _record(question, render.answer_message(rejected), rejected)]
                yield _messages(records), records, skip, rejected.to_dict()
                return
            found = ""  # the retrieved papers, shown until the answer replaces them
            status = ""
            for event in events:
                if event.kind == "status":
                    status = render.status_message(event.text + self._waiting_note(event.text))
                    yield view(f"{raw and render.streaming_message(raw) or status}{found}"), skip, skip, skip
                elif event.kind == "retrieved":
                    found = render.retrieved_block(event.answer)
                    yield view(f"{status}{found}"), skip, skip, skip
                elif event.kind == "cell":
                    now = time.monotonic()
                    if now - pushed >= STREAM_INTERVAL:
                        pushed = now
                        yield view(render.table_streaming_message(event.answer)), skip, skip, skip
                elif event.kind == "token":
                    raw += event.text
                    now = time.monotonic()
                    if now - pushed >= STREAM_INTERVAL:
                        pushed = now
                        yield view(render.streaming_message(raw) + found), skip, skip, skip
            answer = events.answer
        except Exception as err:  # any failure is a message in the chat; the app goes on
            message = self.explain_failure(err, collection)
            records = [*records, _record(question, render.error_message(message))]
            yield _messages(records), records, skip, failure_details(question, message, getattr(err, "kind", None))
            return
        finally:
            if events is not None:
                events.close()
        records = [*records, _record(question, render.answer_message(answer), answer)]
        yield _messages(records), records, skip, answer.to_dict()

    def _waiting_note(self, status: str) -> str:
        if self.pipeline.llm_status() == "starting":
            return " (the model is still loading; the answer starts when it is ready)"
        if self.pipeline.llm.busy() and not status.startswith(WAITING_FOR_A_TURN):
            return " (waiting for the model: it is writing another answer)"
        return ""

    def explain_failure(self, err: Exception, collection: str | None = None) -> str:
        """One message for the chat: what failed and what to do about it."""
        try:
            index = self.workspace.pipeline(collection).index_state()
        except UserError:  # the collection itself cannot be opened
            index = "missing"
        if index == "replaced":
            log.warning("answering failed after the index was rebuilt: %s", err)
            return (
                "The paper index was rebuilt (`rag ingest`) after this app started, and the version it "
                "loaded is gone. Restart `rag ui` to use the new index."
            )
        if isinstance(err, StoreError) or index == "missing":
            log.warning("answering failed, no index: %s", err)
            detail = " ".join(str(err).split())[:300]
            return f"The paper index is not available ({detail}). Run `rag ingest` to build it, then ask again."
        if isinstance(err, LLMError):
            log.warning("answering failed: %s", err)
            return f"No answer: {err}. Please try again."
        if isinstance(err, UserError):
            log.warning("answering failed: %s", err)
            return f"No answer: {err}."
        line = describe_bug(err, self.settings.storage.data_dir)  # the traceback goes to the log file it names
        log.error("answering failed: %s", line)
        return f"{line[:1].upper()}{line[1:]}. The app is still running; please try again."

    # the stateless API -----------------------------------------------------------------
    def ask(
        self,
        question: str,
        history: list[dict] | None = None,
        top_k: int | None = None,
        collection: str | None = None,
        year_from: int | None = None,
        year_to: int | None = None,
        author: str | None = None,
        category: str | None = None,
    ) -> dict:
        """Answer one question from the abstracts.

        history: earlier messages [{"role": "user"|"assistant", "content": ...}], e.g. the
        `history` of the previous result, for follow-up questions. top_k: papers retrieved
        (default: the server's setting). collection: which collection (default: the one the
        server opened). year_from, year_to, author (a substring), category: only papers that
        match. Returns the answer as data (answer, cited_titles, refused, generated, error,
        query: the standalone query searched, sources, retrieved, markdown, latency_ms, ...)
        and history: the history to send with a follow-up.
        """
        question = readable(question)
        try:
            request = self.request(question, history, top_k, (collection, year_from, year_to, author, category))
            answer = self.service.ask(request)
        except InvalidQuestionError as err:
            return _api_error(question, str(err), history)
        except Exception as err:
            return _api_error(question, self.explain_failure(err, collection), history, getattr(err, "kind", None))
        result = answer.to_dict()
        result["history"] = list(history or [])
        if answer.keeps_context:
            result["history"] += [
                {"role": "user", "content": answer.question},
                {"role": "assistant", "content": answer.markdown(), "cited_titles": answer.cited_titles},
            ]
        return result

    # light events --------------------------------------------------------------------
    def poll_status(self):
        """The model status badge, and the next poll: soon while the model starts."""
        status = self.pipeline.llm_status()
        interval = 1.0 if status == "starting" else 5.0
        return render.status_badge(status), gr.Timer(value=interval)

    def download_table(self, records: list[dict] | None, fmt: str):
        """The table download buttons, whenever the conversation changes: the last table of the
        session as CSV or Markdown, or the button disabled while there is none."""
        table = next((r.get(f"table_{fmt}") for r in reversed(list(records or [])) if r.get(f"table_{fmt}")), None)
        if table is None:
            return gr.update(value=None, interactive=False)
        path = Path(tempfile.mkdtemp(prefix="paper-rag-table-")) / TABLE_NAME.format(datetime.now(), "csv" if fmt == "csv" else "md")
        path.write_text(table, encoding="utf-8")
        return gr.update(value=str(path), interactive=True)

    def download_conversation(self, records: list[dict] | None):
        """The "Download conversation" button, whenever the conversation changes: the
        session as Markdown (each question, answer and sources, then BibTeX of the cited
        papers) in a new file, or the button disabled while there is nothing to download.
        It is made ahead because the button downloads the file it holds when clicked."""
        records = list(records or [])
        if not records:
            return gr.update(value=None, interactive=False)
        exchanges = [exchange_from_citations(r["question"], r["answer"], r["cited"]) for r in records]
        now = datetime.now()
        # A folder per file: two sessions exporting in the same minute never share a file.
        path = Path(tempfile.mkdtemp(prefix="paper-rag-export-")) / DOWNLOAD_NAME.format(now)
        path.write_text(self.service.export_conversation(exchanges, day=now.date()), encoding="utf-8")
        return gr.update(value=str(path), interactive=True)

    # collections and uploads ----------------------------------------------------------
    def collection_choices(self) -> list[tuple[str, str]]:
        """(label, name) of every collection, e.g. ("default · 248 papers", "default")."""
        return [(f"{c.name} · {c.papers:,} papers", c.name) for c in describe_collections(self.settings)]

    def switch_collection(self, collection: str | None):
        """A new collection picked: its papers in the comparison picker (the picks cleared),
        and what it holds at the top of the page."""
        try:
            pipeline = self.workspace.pipeline(collection)
        except UserError as err:
            gr.Warning(f"Collection {collection!r} cannot be opened: {err}")
            return gr.skip(), gr.skip()
        titles = pipeline.titles
        picker = gr.update(choices=sorted(titles, key=str.casefold), value=[])
        return picker, render.corpus_description(titles, pipeline.settings.storage.collection)

    def preview_upload(self, path: str | None) -> tuple[str, Any]:
        """What an uploaded file holds (papers, skipped entries with reasons), and
        whether it can be added: (the summary as HTML, the Add button's state)."""
        if not path:
            return "", gr.update(interactive=False)
        try:
            loaded = self._read_upload(Path(path))
        except UserError as err:
            return render.upload_error(_without_folder(str(err), path)), gr.update(interactive=False)
        skipped = [_without_folder(str(entry), path) for entry in loaded.skipped]
        return render.upload_summary(Path(path).name, len(loaded.papers), skipped), gr.update(
            interactive=bool(loaded.papers)
        )

    def add_upload(self, path: str | None, collection: str | None, progress=gr.Progress(track_tqdm=True)):
        """Ingest the uploaded file into the collection (new or existing; its other papers
        stay). Returns the result as HTML and the collection picker, pointing at it."""
        skip = gr.skip()
        if not path:
            return render.upload_error("Choose a file first."), skip
        name = (collection or "").strip().lower()
        try:
            self.settings.for_collection(name)
        except UserError:
            return render.upload_error(
                f"{name!r} cannot name a collection: use lower-case letters, digits and '-' (at most 40)."
            ), skip
        try:
            loaded = self._read_upload(Path(path))
            if not loaded.papers:
                return render.upload_error("The file has no papers to add."), skip
            progress(0, desc="Embedding")
            report = self.workspace.ingest(name, loaded.papers, progress=True)
        except UserError as err:
            return render.upload_error(_without_folder(str(err), path)), skip
        except Exception as err:  # a bug: the message names its log; nothing was committed
            return render.upload_error(describe_bug(err, self.settings.storage.data_dir)), skip
        return render.upload_done(name, report), gr.update(choices=self.collection_choices(), value=name)

    def _read_upload(self, path: Path) -> CorpusLoad:
        size_mb = path.stat().st_size / (1024 * 1024)
        if size_mb > self.settings.serving.max_upload_mb:
            raise InvalidQuestionError(
                f"{path.name} is {size_mb:,.1f} MB; the limit is {self.settings.serving.max_upload_mb:g} MB (setting max_upload_mb)"
            )
        return read_corpus([path])


def readable(question: str | None) -> str:
    """The question with each half of a broken surrogate pair (a browser can send one,
    from a pasted broken emoji) shown as U+FFFD: the page's JSON cannot carry it."""
    return LONE_SURROGATE.sub("\ufffd", question or "")


def _without_folder(message: str, path: str) -> str:
    """A message about an uploaded file, naming the file without the server's temp folder."""
    return message.replace(str(Path(path).parent) + "/", "")


def _short_name(pipeline: Pipeline, title: str) -> str:
    """The part of a title before its colon ("TransliCo") where that alone names the
    paper for the retriever, else the whole title; the comparison picker writes these
    into the question."""
    short = short_name(title)
    if short == title:
        return title
    try:
        named = list(pipeline.retriever.names.named_papers(short))
    except Exception:  # a name is a nicety; the full title always works
        return title
    return short if len(named) == 1 and pipeline.retriever.titles.get(named[0]) == title else title


def _api_error(question: str, message: str, history: Any, kind: str | None = None) -> dict:
    """An /ask result for a question that got no answer: the same keys as an answer's."""
    return {**failure_details(question, message, kind), "history": history if isinstance(history, list) else []}
