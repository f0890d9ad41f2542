"""What the API reads and writes, in OpenAI's shapes where OpenAI has one.

Requests are pydantic models: a wrong body is a 400 whose message names the
field. Replies: chat completions (whole, or as server-sent chunks ending with
``data: [DONE]``) whose content is the Markdown answer with its [n] markers and
Sources list, made inert (rag.safe_markdown: no HTML, image or link but to a
cited paper's own page, whatever the corpus or the model wrote), plus two
top-level fields OpenAI clients keep in ``model_extra``: ``citations`` (one
entry per cited paper) and ``paper_rag`` (the collection used, and whether and
why there is no answer). Errors are OpenAI's
``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rag.generation import Answer

# --- requests -------------------------------------------------------------------------------


class ContentPart(BaseModel):
    """One part of a message's content in OpenAI's list form; only text parts are read."""

    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # e.g. name, tool_calls: accepted, not used
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    citations: list[dict[str, Any]] | None = Field(
        default=None, description="On an assistant message: the citations this API returned with it."
    )

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(part.text or "" for part in self.content if part.type == "text")
        return self.content or ""

    def as_history(self) -> dict[str, Any]:
        """The message as rag.conversation reads history (cited titles from our citations)."""
        message: dict[str, Any] = {"role": self.role, "content": self.text()}
        if self.citations:
            message["cited_titles"] = [str(c.get("title", "")) for c in self.citations if c.get("title")]
        return message


class PaperFilterFields(BaseModel):
    """Which papers may be used (all optional): the same filters as `rag ask`."""

    model_config = ConfigDict(extra="forbid")
    year_from: int | None = None
    year_to: int | None = None
    author: str | None = Field(default=None, max_length=200)
    category: str | None = Field(default=None, max_length=100)


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # top_p, user, n, ...: accepted and ignored
    model: str | None = Field(default=None, description="A collection's name; another name means the default collection.")
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    temperature: float | None = Field(default=None, ge=0, le=2, description="Accepted, ignored: answers quote the abstracts.")
    max_tokens: int | None = Field(default=None, ge=1, description="Accepted, ignored: an answer is as long as its evidence.")
    filters: PaperFilterFields | None = None
    top_k: int | None = Field(default=None, description="Papers retrieved for the answer (1 to max_top_k); the setting's when unset.")


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1)
    k: int | None = Field(default=None, description="Papers to return (1 to max_top_k); top_k when unset.")
    collection: str | None = None
    mode: Literal["hybrid", "dense", "bm25"] | None = None
    filters: PaperFilterFields | None = None


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    messages: list[ChatMessage] = Field(min_length=1)
    format: Literal["markdown", "bibtex"] = "markdown"


# --- replies -------------------------------------------------------------------------------


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def answer_content(text: str, answer: Answer) -> str:
    """Markdown of (part of) the answer as the API returns it: made inert, so a client
    that renders it shows no HTML, image or link but to a source's own page (the
    structured fields, e.g. citations, are the raw data: escape them to show them)."""
    return answer.safe_markdown(text)


def citations(answer: Answer) -> list[dict[str, Any]]:
    """One entry per cited paper, as rag.evidence.Source.to_dict gives it."""
    return [source.to_dict() for source in answer.cited]


def comparison(answer: Answer) -> dict[str, Any] | None:
    """A comparison table as data (aspects, papers, cells with text, paper number, source
    sentence and support, differences); None for an answer in prose."""
    return answer.table.to_dict() if answer.table else None


def paper_rag_extra(answer: Answer, collection: str, asked_for: str | None) -> dict[str, Any]:
    """What programs need beyond the text: which collection answered, and refusal or failure."""
    extra: dict[str, Any] = {
        "collection": collection,
        "refused": answer.refused,
        "error": answer.error_kind,
        "query": answer.query,
    }
    if answer.candidates_read:  # a "which papers" answer: what was read, and what was left out as off-topic
        extra["candidates_read"] = answer.candidates_read
        extra["near_misses"] = [p.title for p in answer.near_misses]
    if asked_for is not None and asked_for != collection:
        extra["note"] = f"there is no collection {asked_for!r}: the {collection!r} collection answered"
    return extra


class CompletionIds:
    """The id, creation time and model name shared by every chunk of one completion."""

    def __init__(self, model: str):
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.model = model

    def completion(self, answer: Answer, extra: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer_content(answer.markdown(), answer)},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},  # not counted
            "citations": citations(answer),
            "comparison": comparison(answer),
            "paper_rag": extra,
        }

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None, **fields: Any) -> str:
        """One server-sent event of a streamed completion."""
        body = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            **fields,
        }
        return f"data: {json.dumps(body)}\n\n"


DONE = "data: [DONE]\n\n"
