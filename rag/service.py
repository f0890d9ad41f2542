"""The one door every front-end uses: a Request, checked in one place with one set
of limits, and PaperService's three calls: ask (streamed or whole), search, export.

The CLI, the page, the API and the evaluation each turn their own input into a
Request with :meth:`PaperService.request` (a bad part is an InvalidRequestError
naming it, so each front-end can point at its own field) and keep only their
presentation. The service answers over a Workspace (rag.pipeline): the servers'
answers wait at its shared queue at the model; the CLI and the evaluation, one
question at a time, go straight to the engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Literal, Sequence

from rag.conversation import Turn, turns_from_messages
from rag.errors import InvalidQuestionError, InvalidRequestError, LLMError, SettingsError
from rag.export import Exchange, answer_as, bibtex_entries, conversation_markdown
from rag.filters import PaperFilter
from rag.comparison import Comparison, checked_aspects, checked_paper_names, resolve_papers
from rag.generation import Answer, AnswerStream
from rag.pipeline import Pipeline, Workspace
from rag.retrieval import RetrievalResult
from rag.settings import Settings
from rag.text import question_problem


@dataclass(frozen=True)
class Request:
    """A question with what it is asked against: its conversation so far, the collection,
    the papers it may use and how many papers to retrieve (None: the setting's)."""

    question: str
    history: tuple[Turn, ...] = ()
    collection: str | None = None
    paper_filter: PaperFilter | None = None
    top_k: int | None = None


@dataclass(frozen=True)
class ComparisonRequest:
    """Papers chosen to be put side by side (ids, titles or names, as the user gave them), on
    some aspects (empty: the default ones), in a collection."""

    papers: tuple[str, ...]
    aspects: tuple[str, ...] = ()
    collection: str | None = None


def checked_request(
    settings: Settings,
    question: str,
    history: object = (),
    *,
    collection: str | None = None,
    top_k: int | None = None,
    year_from: object = None,
    year_to: object = None,
    years: str | None = None,
    author: str | None = None,
    category: str | None = None,
) -> Request:
    """The request, checked with the settings' limits; the first part at fault is an
    InvalidRequestError naming it. history: earlier turns, or OpenAI-style messages. The
    years as two fields (a page, an API) or as one range like "2019-2021" (a command line)."""
    problem = question_problem(question, settings.answering.max_question_chars)
    if problem:
        raise InvalidRequestError("question", problem)
    if top_k is not None and not 1 <= top_k <= settings.retrieval.max_top_k:
        raise InvalidRequestError("top_k", f"the number of papers must be between 1 and {settings.retrieval.max_top_k}, not {top_k}")
    try:
        turns = tuple(turns_from_messages(list(history) if isinstance(history, tuple) else history))
    except InvalidQuestionError as err:
        raise InvalidRequestError("history", str(err)) from None
    paper_filter = checked_filter(year_from=year_from, year_to=year_to, years=years, author=author, category=category)
    return Request(question.strip(), turns, checked_collection(settings, collection), paper_filter, top_k)


def checked_collection(settings: Settings, collection: str | None) -> str | None:
    """The collection a request names (None: the setting's); InvalidRequestError on "collection"
    for a name the setting's pattern refuses."""
    if collection:
        try:
            settings.for_collection(collection)
        except SettingsError:
            raise InvalidRequestError(
                "collection", f"{collection!r} cannot name a collection: use lower-case letters, digits and '-'"
            ) from None
    return collection or None


def checked_filter(
    *,
    year_from: object = None,
    year_to: object = None,
    years: str | None = None,
    author: str | None = None,
    category: str | None = None,
) -> PaperFilter | None:
    """The papers a request may use (None: all), the years as two fields or one range; a bad
    part is an InvalidRequestError on "filters"."""
    try:
        if years is not None:
            return PaperFilter.with_year_range(years, author, category)
        return PaperFilter.of(year_from, year_to, author, category)
    except InvalidQuestionError as err:
        raise InvalidRequestError("filters", str(err)) from None


class PaperService:
    """Answers, searches and exports for every front-end, over one workspace."""

    def __init__(self, workspace: Workspace, *, queued: bool = True):
        self.workspace = workspace
        self.queued = queued  # servers: answers wait at the workspace's queue at the model

    @classmethod
    def of(cls, pipeline: Pipeline, *, queued: bool = False) -> PaperService:
        """A service over one opened pipeline (the CLI, the evaluation)."""
        return cls(Workspace(pipeline), queued=queued)

    @property
    def settings(self) -> Settings:
        return self.workspace.settings

    def request(self, question: str, history: object = (), **fields) -> Request:
        """The checked request (see checked_request)."""
        return checked_request(self.settings, question, history, **fields)

    # --- the three calls -----------------------------------------------------------------
    def ask_stream(self, request: Request) -> AnswerStream:
        """The answer's events as they come (status, retrieved papers, text, the answer). Queued:
        raises ServerBusyError at once when the model's queue is full, and AnswerTimeoutError
        while reading at the deadline."""
        engine = self.workspace.engine(request.collection, request.top_k)
        if self.queued:
            events = self.workspace.answers.events(engine, request.question, request.history, request.paper_filter)
        else:
            events = engine.stream(request.question, request.history, request.paper_filter)
        return AnswerStream(events)

    def ask(self, request: Request) -> Answer:
        return self.ask_stream(request).finish()

    def search(self, request: Request, mode: Literal["hybrid", "dense", "bm25"] | None = None) -> RetrievalResult:
        """The request's papers ranked, top_k of them, with their best passages."""
        retriever = self.workspace.pipeline(request.collection).retriever
        return retriever.search(request.question, k=request.top_k, mode=mode, paper_filter=request.paper_filter)

    @staticmethod
    def export_answer(answer: Answer, fmt: str) -> str:
        """One answer as a file: markdown, json or bibtex (rag.export)."""
        return answer_as(answer, fmt)

    @staticmethod
    def export_conversation(
        exchanges: Sequence[Exchange], fmt: Literal["markdown", "bibtex"] = "markdown", day: date | None = None
    ) -> str:
        """A conversation as Markdown (each question, answer and sources, then BibTeX of the cited
        papers; dated ``day``, default today), or the BibTeX alone."""
        if fmt == "bibtex":
            return bibtex_entries(paper for exchange in exchanges for paper in exchange.sources)
        return conversation_markdown(exchanges, day)

    # --- comparison tables -------------------------------------------------------------
    def comparison_request(
        self, papers: Sequence[str], aspects: Sequence[str] | str | None = None, collection: str | None = None
    ) -> ComparisonRequest:
        """The checked comparison request (InvalidRequestError on papers, aspects or collection)."""
        names = tuple(checked_paper_names(papers, self.settings.comparison.max_papers))
        return ComparisonRequest(names, tuple(checked_aspects(aspects)), checked_collection(self.settings, collection))

    def compare_stream(self, request: ComparisonRequest) -> AnswerStream:
        """The table's events: each cell and difference as it passes, then the answer carrying it
        (answer.table). An unknown paper raises InvalidRequestError before the model is asked."""
        engine = self.workspace.engine(request.collection)
        papers = resolve_papers(engine.retriever, request.papers, self.settings.comparison.max_papers)
        if self.queued:
            events = self.workspace.answers.run(lambda: engine.compare(papers, request.aspects))
        else:
            events = engine.compare(papers, request.aspects)
        return AnswerStream(events)

    def compare(self, request: ComparisonRequest) -> Comparison:
        """The finished table; LLMError (with the reason for a person) when the model failed."""
        answer = self.compare_stream(request).finish()
        if answer.table is None:
            raise LLMError(answer.error or "no table was made", answer.error_kind or "bad_response")
        return answer.table

    @staticmethod
    def export_table(answer: Answer, fmt: str) -> str:
        """A table answer as a file: text or markdown (the table, its evidence and sources), csv,
        or json (the table as data)."""
        if answer.table is None:
            raise ValueError("the answer holds no table")
        if fmt == "csv":
            return answer.table.csv()
        if fmt == "json":
            return json.dumps(answer.table.to_dict(), ensure_ascii=False, indent=2) + "\n"
        return answer.markdown() + "\n"

    def collection_of(self, request: Request) -> str:
        """The name of the collection the request is answered from."""
        return request.collection or self.settings.storage.collection

