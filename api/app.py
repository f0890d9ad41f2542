"""The OpenAI-compatible API (FastAPI): `build_api(workspace, keys)`. `rag serve`
(serve/app.py) mounts it under /v1 beside the chat page at /, in one process,
over one Workspace.

Routes: POST /v1/chat/completions (whole or streamed), GET /v1/models (the
collections), POST /v1/search (as `rag search --json`), POST /v1/export (a
conversation as Markdown or BibTeX), GET /healthz (index and LLM state).

Every /v1 route needs a bearer key when keys are configured (api/auth.py).
Answers wait at the model's queue, which the page shares (rag/admission.py): told
"busy" there, a request gets 429 with Retry-After at once; an answer that takes
longer than answer_timeout ends with a timeout error (504, or a stream's last
chunk). Bodies over api_max_body_bytes are refused unread.
"""

from __future__ import annotations

import logging
from typing import Iterator

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse

from api.auth import KeyCheck
from api.schemas import (
    DONE,
    ChatCompletionRequest,
    ChatMessage,
    CompletionIds,
    ExportRequest,
    PaperFilterFields,
    SearchRequest,
    answer_content,
    citations,
    error_body,
    paper_rag_extra,
)
from rag.collections import describe_collections
from rag.errors import (
    AnswerTimeoutError,
    InvalidQuestionError,
    NothingMatchesFilterError,
    ServerBusyError,
    UserError,
    describe_bug,
)
from rag.export import Exchange, bibtex_entries, conversation_markdown, exchange_from_citations
from rag.filters import PaperFilter
from rag.generation import Answer, AnswerEvent, AnswerStream, final_answer
from rag.pipeline import Pipeline, Workspace, checked_top_k
from rag.safe_markdown import inert_markdown
from rag.text import LONE_SURROGATE, unreadable_text_problem

log = logging.getLogger(__name__)

class ApiError(Exception):
    """A request the API refuses, with its HTTP status and OpenAI-shaped body."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.body, self.headers = status, error_body(message, kind, param, code), headers


def build_api(workspace: Workspace, keys: list[str]) -> FastAPI:
    settings = workspace.settings
    app = FastAPI(title="paper-rag API", docs_url="/v1/docs", openapi_url="/v1/openapi.json", redoc_url=None)
    key_check = KeyCheck(keys)

    @app.exception_handler(ApiError)
    async def refused(request: Request, err: ApiError) -> JSONResponse:
        return JSONResponse(err.body, status_code=err.status, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {"loc": (), "msg": "invalid body"}
        field = ".".join(str(part) for part in first["loc"] if part != "body") or None
        message = f"{field}: {first['msg']}" if field else str(first["msg"])
        return JSONResponse(error_body(message, param=field, code="invalid_body"), status_code=400)

    @app.middleware("http")
    async def bounded_body(request: Request, call_next):
        if request.method == "POST":
            length = request.headers.get("content-length")
            if length is None and request.url.path.startswith("/v1/"):
                return JSONResponse(error_body("send the body with a Content-Length", code="length_required"), 411)
            if length is not None and int(length) > settings.api_max_body_bytes:
                message = f"the body is {int(length):,} bytes; the limit is {settings.api_max_body_bytes:,} (api_max_body_bytes)"
                return JSONResponse(error_body(message, code="body_too_large"), status_code=400)
        return await call_next(request)

    def authorised(request: Request) -> None:
        if not key_check.allows(request.headers.get("authorization")):
            raise ApiError(401, "a valid API key is required: send 'Authorization: Bearer KEY'", code="invalid_api_key")

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(authorised)])

    def collection_for(name: str | None) -> tuple[Pipeline, str]:
        """The collection a request names, else the default one."""
        chosen = name if name in workspace.names() else workspace.main.settings.collection
        try:
            return workspace.pipeline(chosen), chosen
        except UserError as err:
            raise ApiError(503, f"collection {chosen!r} cannot be used: {err}", kind="server_error", code="no_index") from None

    @v1.post("/chat/completions")
    def chat_completions(body: ChatCompletionRequest):
        question, history = _question_and_history(body.messages, settings.max_question_chars)
        paper_filter = _paper_filter(body.filters)
        pipeline, collection = collection_for(body.model)
        ids = CompletionIds(collection)
        try:
            engine = workspace.engine(collection, body.top_k)
        except InvalidQuestionError as err:
            raise ApiError(400, f"top_k: {err}", param="top_k") from None
        try:
            events = workspace.answers.events(engine, question, history, paper_filter)
        except ServerBusyError as err:
            raise ApiError(429, str(err), kind="rate_limit_error", code="server_busy",
                           headers={"Retry-After": str(err.retry_after)}) from None
        if body.stream:
            return StreamingResponse(_stream(pipeline, events, ids, body.model), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        try:
            answer = final_answer(events)
        except AnswerTimeoutError as err:
            raise ApiError(504, str(err), kind="server_error", code="timeout") from None
        return ids.completion(answer, paper_rag_extra(answer, collection, body.model))

    @v1.get("/models")
    def models():
        return {
            "object": "list",
            "data": [
                {"id": c.name, "object": "model", "created": 0, "owned_by": "paper-rag", "papers": c.papers}
                for c in describe_collections(settings)
            ],
        }

    @v1.post("/search")
    def search(body: SearchRequest):
        _check_query(body.query, settings.max_question_chars)
        try:
            checked_top_k(body.k, settings)
        except InvalidQuestionError as err:
            raise ApiError(400, f"k: {err}", param="k") from None
        pipeline, collection = collection_for(body.collection)
        try:
            result = pipeline.retriever.search(body.query, k=body.k, mode=body.mode, paper_filter=_paper_filter(body.filters))
        except NothingMatchesFilterError as err:
            raise ApiError(400, str(err), param="filters", code="no_match") from None
        except InvalidQuestionError as err:
            raise ApiError(400, str(err), param="query") from None
        return {**result.to_dict(), "collection": collection}

    @v1.post("/export")
    def export(body: ExportRequest):
        exchanges = _exchanges(body.messages)
        if body.format == "bibtex":
            text = bibtex_entries(paper for exchange in exchanges for paper in exchange.sources)
            media = "application/x-bibtex"
        else:
            text = conversation_markdown(exchanges)
            media = "text/markdown"
        return Response(text, media_type=f"{media}; charset=utf-8")

    app.include_router(v1)

    @app.get("/healthz")
    def health():
        index, llm = workspace.main.index_state(), workspace.main.llm_status()
        healthy = index == "present" and llm in ("ready", "external")  # "starting" is not ready yet
        return JSONResponse(
            {"status": "ok" if healthy else "degraded", "index": index, "llm": llm, "collections": workspace.names()},
            status_code=200 if healthy else 503,
        )

    return app


def _question_and_history(messages: list[ChatMessage], limit: int) -> tuple[str, list[dict]]:
    """The last user message is the question; the messages before it are the history."""
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
    if last_user is None:
        raise ApiError(400, "messages: there is no user message to answer", param="messages")
    question = messages[last_user].text().strip()
    where = f"messages.{last_user}.content"
    if not question:
        raise ApiError(400, f"{where}: the question is empty", param=where)
    if len(question) > limit:
        raise ApiError(400, f"{where}: the question is {len(question):,} characters; the limit is {limit:,}", param=where)
    if LONE_SURROGATE.search(question):  # the reply, which repeats it, could not be encoded
        raise ApiError(400, f"{where}: {unreadable_text_problem(question)}", param=where)
    history = [m.as_history() for m in messages[:last_user] if m.role in ("user", "assistant")]
    return question, history


def _check_query(query: str, limit: int) -> None:
    """A search query is held to the question's limits before anything is embedded."""
    if len(query) > limit:
        raise ApiError(400, f"query: the query is {len(query):,} characters; the limit is {limit:,}", param="query")
    if LONE_SURROGATE.search(query):  # the tokenizer refuses it
        raise ApiError(400, f"query: {unreadable_text_problem(query)}", param="query")


def _exchanges(messages: list[ChatMessage]) -> list[Exchange]:
    """Each user message with the assistant message after it (and the papers its
    citations name), as the export reads a conversation."""
    exchanges, question = [], None
    for message in messages:
        if message.role == "user":
            question = message.text()
        elif message.role == "assistant" and question is not None:
            exchanges.append(exchange_from_citations(question, message.text(), message.citations or []))
            question = None
    if not exchanges:
        raise ApiError(400, "messages: no user message followed by an assistant answer to export", param="messages")
    return exchanges


def _paper_filter(fields: PaperFilterFields | None) -> PaperFilter | None:
    if fields is None:
        return None
    try:
        return PaperFilter.of(fields.year_from, fields.year_to, fields.author, fields.category)
    except InvalidQuestionError as err:
        raise ApiError(400, f"filters: {err}", param="filters") from None


def _stream(pipeline: Pipeline, events: Iterator[AnswerEvent], ids: CompletionIds, asked_for: str | None) -> Iterator[str]:
    """The answer as server-sent chunks: the role, each paragraph as soon as the model has
    judged its paper, the rest of the Markdown (the Sources list), then a final chunk
    with finish_reason, citations and paper_rag, and [DONE]."""
    yield ids.chunk({"role": "assistant", "content": ""})
    streamed, stream = "", AnswerStream(events)
    try:
        for event in stream:
            if event.kind == "token":
                streamed += event.text
                # Made inert piece by piece: pieces are paragraphs, and nothing that
                # rag.safe_markdown escapes reaches across the blank line between them.
                yield ids.chunk({"content": inert_markdown(event.text)})
        answer = stream.answer
    except AnswerTimeoutError as err:
        yield ids.chunk({"content": f"\n\n{err}"}, "stop", citations=[], paper_rag={"error": "timeout"})
        yield DONE
        return
    except Exception as err:  # a bug: one line for the client, the traceback in the log
        message = describe_bug(err, pipeline.settings.data_dir)
        yield ids.chunk({"content": f"\n\n{message}"}, "stop", citations=[], paper_rag={"error": "internal"})
        yield DONE
        return
    yield from _rest(ids, streamed, answer)
    collection = pipeline.settings.collection
    yield ids.chunk({}, "stop", citations=citations(answer), paper_rag=paper_rag_extra(answer, collection, asked_for))
    yield DONE


def _rest(ids: CompletionIds, streamed: str, answer: Answer) -> Iterator[str]:
    """What the streamed paragraphs lack of the final Markdown. The paragraphs are the
    answer's text as it is kept, so this is its Sources list; if the answer changed
    after streaming began (the LLM failed midway), the final Markdown follows whole."""
    final = answer.markdown()
    if final.startswith(streamed):
        rest = final[len(streamed):]
    else:
        rest = "\n\n---\n\n" + final
    if rest:
        yield ids.chunk({"content": answer_content(rest, answer)})
