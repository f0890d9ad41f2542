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
    comparison,
    citations,
    error_body,
    paper_rag_extra,
)
from rag.collections import describe_collections
from rag.errors import (
    AnswerTimeoutError,
    InvalidRequestError,
    NothingMatchesFilterError,
    ServerBusyError,
    UserError,
    describe_bug,
)
from rag.export import Exchange, exchange_from_citations
from rag.generation import Answer, AnswerStream
from rag.pipeline import Pipeline, Workspace
from rag.safe_markdown import inert_markdown
from rag.service import PaperService, Request as ServiceRequest

log = logging.getLogger(__name__)

class ApiError(Exception):
    """A request the API refuses, with its HTTP status and OpenAI-shaped body."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.body, self.headers = status, error_body(message, kind, param, code), headers


def build_api(workspace: Workspace, keys: list[str]) -> FastAPI:
    settings = workspace.settings
    service = PaperService(workspace)
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
            if length is not None and int(length) > settings.serving.api_max_body_bytes:
                message = f"the body is {int(length):,} bytes; the limit is {settings.serving.api_max_body_bytes:,} (api_max_body_bytes)"
                return JSONResponse(error_body(message, code="body_too_large"), status_code=400)
        return await call_next(request)

    def authorised(request: Request) -> None:
        if not key_check.allows(request.headers.get("authorization")):
            raise ApiError(401, "a valid API key is required: send 'Authorization: Bearer KEY'", code="invalid_api_key")

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(authorised)])

    def known(name: str | None) -> str | None:
        """The collection a request names when there is one by that name; None: the default one."""
        return name if name in workspace.names() else None

    def checked(question: str, params: dict[str, str], history: object = (), **fields) -> ServiceRequest:
        """The request, checked by the service; a bad part is a 400 naming this API's field for it."""
        try:
            return service.request(question, history, **fields)
        except InvalidRequestError as err:
            param = params.get(err.field, err.field)
            raise ApiError(400, f"{param}: {err}", param=param) from None

    def opened(request: ServiceRequest) -> Pipeline:
        """The pipeline of the request's collection (503 when it cannot be opened)."""
        name = service.collection_of(request)
        try:
            return workspace.pipeline(name)
        except UserError as err:
            raise ApiError(503, f"collection {name!r} cannot be used: {err}", kind="server_error", code="no_index") from None

    @v1.post("/chat/completions")
    def chat_completions(body: ChatCompletionRequest):
        question, history, where = _question_and_history(body.messages)
        request = checked(question, {"question": where, "history": "messages"}, history,
                          collection=known(body.model), top_k=body.top_k, **_filter_fields(body.filters))
        pipeline = opened(request)
        ids = CompletionIds(pipeline.settings.storage.collection)
        try:
            stream = service.ask_stream(request)
        except ServerBusyError as err:
            raise ApiError(429, str(err), kind="rate_limit_error", code="server_busy",
                           headers={"Retry-After": str(err.retry_after)}) from None
        if body.stream:
            return StreamingResponse(_stream(pipeline, stream, ids, body.model), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        try:
            answer = stream.finish()
        except AnswerTimeoutError as err:
            raise ApiError(504, str(err), kind="server_error", code="timeout") from None
        return ids.completion(answer, paper_rag_extra(answer, pipeline.settings.storage.collection, body.model))

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
        request = checked(body.query, {"question": "query", "top_k": "k"},
                          collection=known(body.collection), top_k=body.k, **_filter_fields(body.filters))
        pipeline = opened(request)
        try:
            result = service.search(request, mode=body.mode)
        except NothingMatchesFilterError as err:
            raise ApiError(400, str(err), param="filters", code="no_match") from None
        return {**result.to_dict(), "collection": pipeline.settings.storage.collection}

    @v1.post("/export")
    def export(body: ExportRequest):
        media = "application/x-bibtex" if body.format == "bibtex" else "text/markdown"
        return Response(service.export_conversation(_exchanges(body.messages), body.format),
                        media_type=f"{media}; charset=utf-8")

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


def _question_and_history(messages: list[ChatMessage]) -> tuple[str, list[dict], str]:
    """The last user message is the question; the messages before it are the history. Also
    where the question is, to name it in an error."""
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
    if last_user is None:
        raise ApiError(400, "messages: there is no user message to answer", param="messages")
    history = [m.as_history() for m in messages[:last_user] if m.role in ("user", "assistant")]
    return messages[last_user].text(), history, f"messages.{last_user}.content"


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


def _filter_fields(fields: PaperFilterFields | None) -> dict:
    return fields.model_dump() if fields is not None else {}


def _stream(pipeline: Pipeline, stream: AnswerStream, ids: CompletionIds, asked_for: str | None) -> Iterator[str]:
    """The answer as server-sent chunks: the role, each paragraph as soon as the model has
    judged its paper (a table: each cell, as a chunk with a `comparison_cell` field), the rest
    of the Markdown (the Sources list; a table's whole Markdown), then a final chunk with
    finish_reason, citations, comparison and paper_rag, and [DONE]."""
    yield ids.chunk({"role": "assistant", "content": ""})
    streamed, cells_sent = "", 0
    try:
        for event in stream:
            if event.kind == "cell" and event.answer.table is not None:  # a table: each cell as it passes, as data
                for cell in event.answer.table.cells[cells_sent:]:
                    yield ids.chunk({}, comparison_cell=cell.to_dict())
                cells_sent = len(event.answer.table.cells)
            elif event.kind == "token":
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
        message = describe_bug(err, pipeline.settings.storage.data_dir)
        yield ids.chunk({"content": f"\n\n{message}"}, "stop", citations=[], paper_rag={"error": "internal"})
        yield DONE
        return
    yield from _rest(ids, streamed, answer)
    collection = pipeline.settings.storage.collection
    yield ids.chunk(
        {}, "stop", citations=citations(answer), comparison=comparison(answer),
        paper_rag=paper_rag_extra(answer, collection, asked_for),
    )
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
