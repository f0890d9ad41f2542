"""The MCP server's tools and resources over one Workspace (`rag mcp`, serve/mcp.py).

Tools: search_papers, ask, compare_papers, get_paper, list_collections; each with a JSON
schema made from its signature and a description written for the model that calls it.
Resources: each paper as paper://<collection>/<id>. Answers wait at the workspace's queue
at the model, like the page's and the API's; a client that sends a progress token gets
the answer's stages as progress notifications.

A bad argument, an unknown paper or collection, a busy model or a failed answer is a tool
error whose text says what to do, never a traceback (a bug is one line naming its log).
Abstract text reaches the calling model without the sentences rag.hostile judges not to
be content (rag.content_only), and the answer's Markdown is made inert (rag.safe_markdown).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
from typing import Annotated, Iterator

import anyio.from_thread
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from rag.collections import describe_collections
from rag.content_only import content_only
from rag.errors import InvalidRequestError, UserError, describe_bug
from rag.generation import Answer, AnswerStream
from rag.paper import Paper, normalise_title, short_name
from rag.pipeline import Workspace
from rag.retrieval import RetrievedPaper
from rag.safe_markdown import inert_markdown
from rag.service import PaperService

INSTRUCTIONS = (
    "This server answers from a collection of scientific paper abstracts, offline. "
    "search_papers finds papers on a topic; ask answers a question with sentences verified "
    "against the abstracts, each citing its papers as [n]; compare_papers compares named papers; "
    "get_paper gives one paper's record and abstract. Quote answers with their [n] and sources: "
    "every claim in them is checked against the cited abstract sentences."
)
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
CLOSEST_SHOWN = 3  # titles suggested when a paper is not found

# The tools' arguments, each with the description the calling model reads in its schema.
Collection = Annotated[
    str | None, Field(description="The collection to use (list_collections names them); the server's default when left out.")
]
Years = Annotated[
    str | int | None, Field(description='Only papers from these years: "2021", "2019-2021", "2019-" or "-2021".')
]
Author = Annotated[str | None, Field(description="Only papers with an author whose name contains this text (any case).")]
Category = Annotated[str | None, Field(description='Only papers in this arXiv category ("cs.CL") or archive ("cs").')]
Query = Annotated[str, Field(description="A topic, a question or a paper's name.")]
HowMany = Annotated[
    int | None, Field(description="How many papers to return (1 to the server's max_top_k); the top_k setting when left out.")
]
Question = Annotated[
    str, Field(description="One standalone question (name the papers or the topic: earlier calls are not remembered).")
]
PaperName = Annotated[
    str, Field(description='The paper\'s id (as search_papers gives it), its title, or its short name ("DiffCSE").')
]
ComparedPapers = Annotated[
    list[str],
    Field(min_length=2, description='The papers to compare, each by its id, its title or its short name ("DiffCSE").'),
]
Aspects = Annotated[
    list[str] | None,
    Field(description='What to compare them on, e.g. ["method", "datasets", "results"]; what they state when left out.'),
]


class PaperFilters(BaseModel):
    """Which papers an answer may use; each part optional."""

    years: Years = None
    author: Author = None
    category: Category = None


Filters = Annotated[PaperFilters | None, Field(description="Which papers the answer may use.")]


class FoundPaper(BaseModel):
    rank: int
    paper_id: str = Field(description="The paper's id in its collection (for get_paper and compare_papers).")
    title: str
    authors: str
    year: int | None
    url: str
    score: float = Field(description="The search's fused score: higher is closer; comparable within one search only.")
    passage: str = Field(description="The passage of its abstract closest to the query.")
    resource: str = Field(description="The paper as an MCP resource (paper://<collection>/<id>).")


class PaperSearch(BaseModel):
    collection: str
    query: str
    papers: list[FoundPaper]


class Citation(BaseModel):
    number: int = Field(description="The n of the [n] markers that cite this paper.")
    paper_id: str
    title: str
    authors: str
    year: int | None
    url: str
    resource: str
    evidence: list[str] = Field(description="The sentences of its abstract the answer was written from.")
    supporting: list[str] = Field(description="Those of the evidence sentences an answer sentence rests on.")
    withheld: list[str] = Field(description="Notes on sentences left out (e.g. instructions to AI assistants).")


class VerifiedAnswer(BaseModel):
    collection: str
    question: str
    answer: str = Field(description="The answer's text; each sentence ends with the [n] of the papers it rests on.")
    refused: bool = Field(
        description="True when the abstracts do not answer: `answer` says so and closest_papers lists the nearest."
    )
    generated: bool = Field(description="False when the model could not write an answer (see error).")
    error: str | None
    citations: list[Citation] = Field(description="One per paper the answer cites, in [n] order.")
    closest_papers: list[str] = Field(
        description="For a refusal or a failure: the titles of the papers closest to the question."
    )


class PaperRecord(BaseModel):
    paper_id: str
    collection: str
    title: str
    authors: str
    year: int | None
    venue: str
    categories: list[str]
    doi: str
    arxiv_id: str
    url: str
    abstract: str = Field(description="The abstract, without sentences that are not content (see withheld).")
    withheld: list[str] = Field(
        description="Notes on sentences left out of the abstract (e.g. instructions to AI assistants)."
    )
    resource: str


class CollectionSummary(BaseModel):
    name: str
    papers: int
    chunks: int
    built_at: str | None
    embedding_model: str | None


class Collections(BaseModel):
    default: str = Field(description="The collection a tool uses when its collection argument is left out.")
    collections: list[CollectionSummary]


def paper_uri(collection: str, paper_id: str) -> str:
    return f"paper://{collection}/{paper_id}"


def build_mcp_server(workspace: Workspace) -> MCPServer:
    """The server's tools and resources, answering from ``workspace`` (answers queued at its model)."""
    service = PaperService(workspace)
    settings = workspace.settings
    server = MCPServer(
        "paper-rag", instructions=INSTRUCTIONS, version=importlib.metadata.version("paper-rag"), log_level="WARNING"
    )

    @contextlib.contextmanager
    def as_tool_errors(arguments: dict[str, str]) -> Iterator[None]:
        """A failure as a tool error for the calling model; ``arguments``: this tool's name for each
        request field, so a bad part names the argument the model sent."""
        try:
            yield
        except ToolError:
            raise
        except InvalidRequestError as err:
            raise ToolError(f"{arguments.get(err.field, err.field)}: {err}") from None
        except UserError as err:  # a busy model, a timeout, a filter nothing passes, a store that cannot be read
            raise ToolError(str(err)) from None
        except Exception as err:  # a bug: one line naming the log that holds its traceback
            raise ToolError(describe_bug(err, settings.storage.data_dir)) from None

    def known_collection(name: str | None) -> str:
        """The collection a tool was asked to use (the default one when None)."""
        if name and name not in workspace.names():
            raise ToolError(f"there is no collection {name!r}; the collections are: {', '.join(workspace.names())}")
        return name or settings.storage.collection

    def filter_fields(years: str | int | None, author: str | None, category: str | None) -> dict:
        return {"years": None if years is None else str(years), "author": author, "category": category}

    def find_paper(wanted: str, collection: str) -> Paper:
        """The paper a caller named by its id, its title or its short name ("DiffCSE"), any case."""
        retriever = workspace.pipeline(collection).retriever
        titles = retriever.titles
        if wanted in titles:
            return retriever.papers[wanted]
        key = normalise_title(wanted)
        matches = [pid for pid, title in titles.items() if normalise_title(title) == key]
        matches = matches or [pid for pid, title in titles.items() if normalise_title(short_name(title)) == key]
        if len(matches) == 1:
            return retriever.papers[matches[0]]
        if matches:
            named = "; ".join(titles[pid] for pid in matches)
            raise ToolError(
                f"several papers of collection {collection!r} are named {wanted!r} ({named}): give the full title or the id"
            )
        closest = closest_titles(wanted, collection)
        raise ToolError(f"no paper of collection {collection!r} has the id or title {wanted!r}{closest}")

    def closest_titles(text: str, collection: str) -> str:
        """"; the closest titles are: ..." for a paper not found ("" when the text cannot be searched)."""
        try:
            found = service.search(service.request(text, collection=collection, top_k=CLOSEST_SHOWN)).papers
        except UserError:
            return ""
        return f"; the closest titles are: {'; '.join(p.title for p in found)}" if found else ""

    def answered(stream: AnswerStream, ctx: Context) -> Answer:
        """The stream's answer, its stages sent as progress notifications when the client asked for them."""
        sentences = 0
        for step, event in enumerate(stream, start=1):
            if event.kind == "status":
                message = event.text
            elif event.kind == "retrieved":
                titles = "; ".join(short_name(p.title) for p in event.answer.retrieved[:3])
                message = f"Found {len(event.answer.retrieved)} papers: {titles}"
            elif event.kind == "token":
                sentences += 1
                message = f"Verified {sentences} sentence{'s' if sentences > 1 else ''} of the answer"
            elif event.kind == "cell" and event.answer.table is not None:
                table = event.answer.table
                message = f"Table: {len(table.cells)} of {len(table.aspects) * len(table.sources)} cells so far"
            else:
                continue
            anyio.from_thread.run(ctx.report_progress, step, None, message)  # a no-op unless the client asked
        answer = stream.answer
        if answer.error_kind == "no_match":  # the filter let no paper through: the caller's to widen
            raise ToolError(f"filters: {answer.error}")
        return answer

    def answer_result(answer: Answer, collection: str) -> CallToolResult:
        """The answer as the model reads it (its inert Markdown: text, evidence, sources) and as data;
        an answer the model could not write is a tool error carrying the passages found."""
        data = VerifiedAnswer(
            collection=collection,
            question=answer.question,
            answer=answer.text,
            refused=answer.refused,
            generated=answer.generated,
            error=answer.error,
            citations=[
                Citation(
                    number=source.number,
                    paper_id=source.paper.id,
                    title=source.title,
                    authors=source.paper.authors,
                    year=source.paper.year,
                    url=source.paper.link,
                    resource=paper_uri(collection, source.paper.id),
                    evidence=source.sentences,
                    supporting=[s for s, rests in zip(source.sentences, source.supporting_flags) if rests],
                    withheld=source.withheld,
                )
                for source in answer.cited
            ],
            closest_papers=[p.title for p in answer.closest],
        )
        return CallToolResult(
            content=[TextContent(type="text", text=answer.safe_markdown())],
            structured_content=data.model_dump(mode="json"),
            is_error=answer.error is not None and not answer.generated,
        )

    @server.tool(annotations=READ_ONLY)
    def search_papers(
        query: Query,
        k: HowMany = None,
        collection: Collection = None,
        years: Years = None,
        author: Author = None,
        category: Category = None,
    ) -> PaperSearch:
        """Find the papers of a collection that are about a topic or answer a question: hybrid
        search (meaning and exact words) over the abstracts, best first. Each paper comes with its
        title, authors, year, url, score, the passage of its abstract closest to the query, and
        its id (for get_paper and compare_papers). To get an answer written from the papers, with
        citations, use ask."""
        with as_tool_errors({"question": "query", "top_k": "k"}):
            name = known_collection(collection)
            request = service.request(query, collection=name, top_k=k, **filter_fields(years, author, category))
            result = service.search(request)
            papers = [found_paper(rank, found, name) for rank, found in enumerate(result.papers, start=1)]
            return PaperSearch(collection=name, query=query, papers=papers)

    @server.tool(annotations=READ_ONLY)
    def ask(
        ctx: Context,
        question: Question,
        collection: Collection = None,
        filters: Filters = None,
    ) -> Annotated[CallToolResult, VerifiedAnswer]:
        """Answer a question from the abstracts of a collection: a few short sentences, each
        checked against the abstract sentences it cites and ending with their [n]; then the
        evidence sentences and the cited papers. When the abstracts do not answer, it says so
        (refused) and names the closest papers; a "which papers ..." question gets one line per
        paper found. Takes seconds to a minute (a local model writes it); progress notifications
        follow its stages when asked for."""
        with as_tool_errors({"question": "question", "filters": "filters"}):
            name = known_collection(collection)
            fields = filter_fields(filters.years, filters.author, filters.category) if filters else {}
            stream = service.ask_stream(service.request(question, collection=name, **fields))  # busy: raises now
            return answer_result(answered(stream, ctx), name)

    @server.tool(annotations=READ_ONLY)
    def compare_papers(
        ctx: Context,
        papers: ComparedPapers,
        aspects: Aspects = None,
        collection: Collection = None,
    ) -> CallToolResult:
        """Compare 2 to 6 papers of a collection, named by title, short name or id (as
        search_papers gives them), in a table: a column per paper, a row per aspect (problem,
        approach, data / benchmarks, main result, limitation, or the given aspects). Each cell is
        a phrase from one sentence of that paper's abstract, given with that sentence, or "not
        stated in the abstract"; then up to three verified sentences on how the papers differ.
        The text is the table in Markdown; the structured content has every cell as data."""
        with as_tool_errors({"papers": "papers", "aspects": "aspects", "collection": "collection"}):
            name = known_collection(collection)
            ids = [find_paper(wanted, name).id for wanted in papers]
            stream = service.compare_stream(service.comparison_request(ids, aspects or [], name))  # busy: raises now
            answer = answered(stream, ctx)
            if answer.table is None:  # the model failed: the reason, and the passages found
                raise ToolError(answer.text)
            return CallToolResult(
                content=[TextContent(type="text", text=answer.safe_markdown())],
                structured_content={"collection": name, **answer.table.to_dict()},
            )

    @server.tool(annotations=READ_ONLY)
    def get_paper(
        paper: PaperName,
        collection: Collection = None,
    ) -> PaperRecord:
        """One paper's full record: title, authors, year, venue, categories, DOI, arXiv id, url
        and abstract."""
        with as_tool_errors({}):
            name = known_collection(collection)
            return paper_record(find_paper(paper, name), name)

    @server.tool(annotations=READ_ONLY)
    def list_collections() -> Collections:
        """The collections (named sets of papers) this server answers from, with their sizes; a
        tool whose collection is left out uses the default one."""
        with as_tool_errors({}):
            found = [CollectionSummary(**info.to_dict()) for info in describe_collections(settings)]
            return Collections(default=settings.storage.collection, collections=found)

    @server.resource(
        "paper://{collection}/{paper_id}",
        name="paper",
        description="A paper of a collection: its title, authors, year, link and abstract, as Markdown.",
        mime_type="text/markdown",
    )
    def paper_resource(collection: str, paper_id: str) -> str:
        if collection not in workspace.names():
            raise ResourceNotFoundError(f"there is no collection {collection!r}")
        try:
            paper = workspace.pipeline(collection).retriever.papers[paper_id]
        except KeyError:
            raise ResourceNotFoundError(f"no paper of collection {collection!r} has the id {paper_id!r}") from None
        return paper_markdown(paper)

    return server


def found_paper(rank: int, found: RetrievedPaper, collection: str) -> FoundPaper:
    paper = found.paper
    passage = content_only(found.passages[0].text).text if found.passages else ""
    return FoundPaper(
        rank=rank, paper_id=paper.id, title=paper.title, authors=paper.authors, year=paper.year, url=paper.link,
        score=round(found.score, 6), passage=passage, resource=paper_uri(collection, paper.id),
    )  # fmt: skip


def paper_record(paper: Paper, collection: str) -> PaperRecord:
    abstract = content_only(paper.abstract)
    citation = paper.citation()
    return PaperRecord(
        paper_id=paper.id, collection=collection, **citation,
        abstract=abstract.text, withheld=abstract.withheld, resource=paper_uri(collection, paper.id),
    )  # fmt: skip


def paper_markdown(paper: Paper) -> str:
    """The paper as a resource: heading, byline and link, abstract (content only), inert."""
    abstract = content_only(paper.abstract)
    lines = [f"# {paper.title}", "", " — ".join(part for part in (paper.byline, paper.link) if part), "", abstract.text]
    lines += [f"\n({note})" for note in abstract.withheld]
    return inert_markdown("\n".join(lines), [paper.link] if paper.link else [])
