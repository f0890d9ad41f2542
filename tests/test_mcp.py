"""`rag mcp`, the MCP server for AI agents.

1. A real `rag mcp` subprocess over stdio, started exactly as README.md's desktop-client
   snippet says (its command, args and env, the placeholders filled with this checkout's
   paths, plus the tiny model's settings), driven by the official `mcp` client: the tools
   listed with schemas and descriptions, each tool called, the answer's citations checked
   against its [n] markers, progress notifications, the paper resources, and bad arguments,
   unknown papers and collections as tool errors a person understands.
2. A real `rag mcp --http` subprocess with keys, driven by the same client over streamable
   HTTP: every tool answers with a key; a wrong or missing key is refused; a non-loopback
   address without keys is refused at start.
3. The server in this process with fault injection: an LLM that never answers, so the
   shared answer queue is full (a busy model) or an answer times out.

The servers answer from tests/tagged_papers.py's index with the real SmolLM2 behind
llama.cpp's server.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import anyio
import httpx
import httpx2
import pytest
from anyio.from_thread import start_blocking_portal
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult

from benchmarks.reliability_injection import hostile_sentences
from rag.filters import PaperFilter
from rag.hostile import INSTRUCTIONS_NOTE
from rag.llm import OpenAIChatLLM
from rag.net import free_port
from rag.paper import short_name
from rag.pipeline import Workspace, open_pipeline
from rag.settings import PROJECT_ROOT
from serve.mcp_tools import build_mcp_server
from tests.fault_server import FaultServer
from tests.serving import RAG
from tests.tagged_papers import TRANSLICO_ID, TaggedIndex, build_tagged_index
from tests.test_api import model_servers_of
from tests.test_filters import passes
from tests.test_ui import FIRST, TRANSLICO

pytestmark = pytest.mark.slow

TOOLS = {"search_papers", "ask", "compare_papers", "get_paper", "list_collections"}
KEYS = ["k-mcp-alpha-0123456789", "k-mcp-beta-9876543210"]
SMOL = {"RAG_LLM__LOCAL_MODEL": "smollm2-135m", "RAG_LLM__MAX_TOKENS": "96", "RAG_LLM__LOCAL_THREADS": "1"}
RECURRENT_ID = "p9c943bb34575"  # "Recurrent Neural Networks Learn to Store and Generate Sequences ..."
README_PLACEHOLDER = "/path/to/paper-rag/.venv/bin/"


class Session:
    """An `mcp` Client held open in a blocking portal's event loop, for synchronous tests."""

    def __init__(self, portal, client: Client):
        self.portal, self.client = portal, client

    def call(self, tool: str, arguments: dict | None = None, progress=None) -> CallToolResult:
        return self.portal.call(functools.partial(self.client.call_tool, tool, arguments or {}, progress_callback=progress))

    def tools(self) -> list:
        return self.portal.call(self.client.list_tools).tools

    def read(self, uri: str):
        return self.portal.call(self.client.read_resource, uri)


@contextlib.contextmanager
def mcp_session(transport) -> Iterator[Session]:
    with start_blocking_portal() as portal:
        with portal.wrap_async_context_manager(Client(transport, read_timeout_seconds=300)) as client:
            yield Session(portal, client)


def readme_entry() -> dict:
    """The desktop-client entry of README.md's MCP snippet."""
    blocks = re.findall(r"```json\n(.*?)\n```", (PROJECT_ROOT / "README.md").read_text(), re.S)
    config = json.loads(next(block for block in blocks if '"mcpServers"' in block))
    return config["mcpServers"]["paper-rag"]


def as_the_readme_says(data_dir: Path) -> StdioServerParameters:
    """The snippet's command, args and env, its placeholders filled in (this venv's `rag`, the
    test's data folder), with the tiny model's settings added."""
    entry = readme_entry()
    assert entry["command"].startswith(README_PLACEHOLDER) and "RAG_STORAGE__DATA_DIR" in entry["env"]
    command = entry["command"].replace(README_PLACEHOLDER, str(Path(sys.executable).parent) + "/")
    env = {**entry["env"], "RAG_STORAGE__DATA_DIR": str(data_dir), **SMOL}
    return StdioServerParameters(command=command, args=entry["args"], env=env)


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


def markers(text: str) -> set[int]:
    return {int(n) for n in re.findall(r"\[(\d+)\]", text)}


def check_answer(result: CallToolResult, titles: set[str]) -> dict:
    """A verified answer: its citations are exactly the papers its [n] markers cite, each with the
    evidence it rests on; the Markdown the model reads lists them as Sources."""
    assert not result.is_error, text_of(result)
    answer = result.structured_content
    cited = answer["citations"]
    assert {c["number"] for c in cited} == markers(answer["answer"])
    assert {c["title"] for c in cited} <= titles
    for citation in cited:
        assert set(citation["supporting"]) <= set(citation["evidence"]) and citation["supporting"]
        assert citation["resource"] == f"paper://{answer['collection']}/{citation['paper_id']}"
        assert f"[{citation['number']}] " in text_of(result).split("Sources:")[-1]
    if answer["refused"]:
        assert cited == [] and answer["closest_papers"]
    return answer


# --- 1. over stdio, as the README's snippet starts it -----------------------------------------------


@pytest.fixture(scope="module")
def tagged(tmp_path_factory, real_embedder, bundled_papers) -> TaggedIndex:
    return build_tagged_index(tmp_path_factory.mktemp("mcp") / "data", real_embedder, bundled_papers)


@pytest.fixture(scope="module")
def stdio(tagged, tmp_path_factory) -> Iterator[Session]:
    log = tmp_path_factory.mktemp("mcp-stdio") / "stderr.log"
    with open(log, "w") as errlog, mcp_session(stdio_client(as_the_readme_says(tagged.data_dir), errlog=errlog)) as session:
        yield session
    assert "Traceback" not in log.read_text()


def test_the_tools_are_listed_with_schemas_and_descriptions(stdio):
    tools = {tool.name: tool for tool in stdio.tools()}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert len(tool.description) > 80 and tool.input_schema["type"] == "object"
        assert tool.annotations.read_only_hint and not tool.annotations.open_world_hint
    assert tools["search_papers"].input_schema["required"] == ["query"]
    assert set(tools["search_papers"].input_schema["properties"]) == {"query", "k", "collection", "years", "author", "category"}
    assert set(tools["ask"].input_schema["properties"]) == {"question", "collection", "filters"}
    assert tools["compare_papers"].input_schema["properties"]["papers"]["minItems"] == 2
    assert "citations" in tools["ask"].output_schema["properties"]
    assert "abstract" in tools["get_paper"].output_schema["properties"]


def test_search_papers_gives_each_paper_with_its_best_passage(stdio, tagged):
    result = stdio.call("search_papers", {"query": "contrastive learning across scripts for multilingual models", "k": 3})
    assert not result.is_error
    found = result.structured_content
    assert json.loads(text_of(result)) == found  # the same data as text, for clients without structured content
    assert found["collection"] == "default" and len(found["papers"]) == 3
    first = found["papers"][0]
    paper = tagged.papers[TRANSLICO_ID]
    assert first == {
        "rank": 1, "paper_id": TRANSLICO_ID, "title": TRANSLICO, "authors": paper.authors, "year": paper.year,
        "url": paper.link, "score": first["score"], "passage": first["passage"], "resource": f"paper://default/{TRANSLICO_ID}",
    }  # fmt: skip
    assert first["passage"] and first["passage"][:80] in paper.abstract
    assert [p["rank"] for p in found["papers"]] == [1, 2, 3] and first["score"] >= found["papers"][1]["score"]


def test_search_papers_filters_and_collections(stdio, tagged):
    found = stdio.call("search_papers", {"query": "learning representations", "k": 10, "years": "2017-2021", "author": "alan"})
    wanted = PaperFilter(year_from=2017, year_to=2021, author="alan")
    papers = found.structured_content["papers"]
    assert papers and all(passes(tagged.papers[p["paper_id"]], wanted) for p in papers)

    in_year = stdio.call("search_papers", {"query": "learning representations", "years": 2016})  # a number is a year too
    assert {tagged.papers[p["paper_id"]].year for p in in_year.structured_content["papers"]} == {2016}

    second = stdio.call("search_papers", {"query": "learning representations", "collection": "second"})
    assert second.structured_content["collection"] == "second"
    assert {p["paper_id"] for p in second.structured_content["papers"]} <= set(tagged.second)


def test_ask_gives_the_verified_answer_its_citations_and_progress(stdio, tagged):
    progress: list[tuple[float, str]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, message))

    result = stdio.call("ask", {"question": FIRST}, progress=on_progress)
    answer = check_answer(result, {p.title for p in tagged.papers.values()})
    assert answer["collection"] == "default" and answer["question"] == FIRST and answer["error"] is None
    if not answer["refused"]:
        assert TRANSLICO in [c["title"] for c in answer["citations"]]
        assert "\n\nEvidence:\n" in text_of(result) and "\n\nSources:\n[1] " in text_of(result)  # what the model reads
    messages = [message for _, message in progress]
    assert messages[0] == "Searching the abstracts…" and re.match(r"Found \d+ papers: TransliCo; ", messages[1])
    assert [value for value, _ in progress] == sorted(value for value, _ in progress)


def test_ask_keeps_to_its_filters(stdio, tagged):
    result = stdio.call("ask", {"question": "Which papers learn representations?", "filters": {"years": "2019", "author": "hinton"}})
    answer = check_answer(result, {p.title for p in tagged.papers.values()})
    wanted = PaperFilter(year_from=2019, year_to=2019, author="hinton")
    by_title = {p.title: p for p in tagged.papers.values()}
    assert all(passes(by_title[title], wanted) for title in [c["title"] for c in answer["citations"]] + answer["closest_papers"])


def check_table(result: CallToolResult, titles: list[str], abstracts: dict[str, str], aspects: list[str]) -> dict:
    """A comparison table: its papers in order, a cell per paper and aspect, each stated cell cut
    from a sentence of its own paper's abstract; the Markdown the model reads is that table."""
    assert not result.is_error, text_of(result)
    table = result.structured_content
    assert table["aspects"] == aspects and [p["title"] for p in table["papers"]] == titles
    assert len(table["cells"]) == len(titles) * len(aspects)
    for cell in table["cells"]:
        if cell["stated"]:
            assert cell["sentence"] in " ".join(abstracts[titles[cell["paper"] - 1]].split()) and cell["supported"]
        else:
            assert cell["text"] == "not stated in the abstract"
    header = "| aspect | " + " | ".join(f"[{p['number']}] {short_name(p['title'])}" for p in table["papers"]) + " |"
    assert header in text_of(result)
    return table


def test_compare_papers_named_by_short_name_and_by_id(stdio, tagged):
    compared = [TRANSLICO, tagged.papers[RECURRENT_ID].title]
    abstracts = {p.title: p.abstract for p in tagged.papers.values()}
    result = stdio.call("compare_papers", {"papers": ["TransliCo", RECURRENT_ID], "aspects": ["method", "data"]})
    table = check_table(result, compared, abstracts, ["method", "data"])
    assert table["collection"] == "default"


def test_get_paper_by_id_title_or_short_name_and_as_a_resource(stdio, tagged):
    paper = tagged.papers[TRANSLICO_ID]
    by_id = stdio.call("get_paper", {"paper": TRANSLICO_ID}).structured_content
    assert by_id == {
        "paper_id": TRANSLICO_ID, "collection": "default", "title": TRANSLICO, "authors": paper.authors,
        "year": paper.year, "venue": "", "categories": list(paper.categories), "doi": "", "arxiv_id": "", "url": "",
        "abstract": paper.abstract, "withheld": [], "resource": f"paper://default/{TRANSLICO_ID}",
    }  # fmt: skip
    assert stdio.call("get_paper", {"paper": TRANSLICO.upper()}).structured_content == by_id
    assert stdio.call("get_paper", {"paper": "transliCo"}).structured_content == by_id

    resource = stdio.read(f"paper://default/{TRANSLICO_ID}").contents[0]
    assert resource.mime_type == "text/markdown" and resource.text.startswith(f"# {TRANSLICO}\n")
    assert paper.abstract[:100] in resource.text


def test_a_hostile_abstract_reaches_the_agent_without_its_hostile_sentences(stdio, tagged):
    paper = next(p for p in tagged.hostile if p.id == "hostile-ignore")
    record = stdio.call("get_paper", {"paper": paper.id}).structured_content
    resource = stdio.read(f"paper://default/{paper.id}").contents[0].text
    found = stdio.call("search_papers", {"query": paper.title, "k": 1}).structured_content["papers"][0]
    assert found["paper_id"] == paper.id and record["withheld"] == [INSTRUCTIONS_NOTE]
    for sentence in hostile_sentences([paper]):
        assert sentence not in record["abstract"] and sentence not in found["passage"]
        assert sentence[:40] not in resource.replace("\\", "")


def test_list_collections(stdio):
    listed = stdio.call("list_collections").structured_content
    assert listed["default"] == "default"
    assert [(c["name"], c["papers"]) for c in listed["collections"]] == [("default", 50), ("second", 5)]


@pytest.mark.parametrize(
    "tool, arguments, message",
    [
        ("search_papers", {"query": "sentence embeddings", "k": 0}, "k: the number of papers must be between 1 and"),
        ("search_papers", {"query": "sentence embeddings", "k": "many"}, "k\n  Input should be a valid integer"),
        ("search_papers", {"query": "   "}, "query: "),
        ("search_papers", {"query": "sentence embeddings", "years": "lately"}, "filters: years 'lately': use YEAR"),
        ("search_papers", {"query": "sentence embeddings", "years": "1990"}, "no paper in this collection matches years 1990"),
        ("search_papers", {"query": "sentence embeddings", "collection": "nope"}, "there is no collection 'nope'; the collections are: default, second"),
        ("ask", {"question": "What does TransliCo do?", "filters": {"author": "nobody at all"}}, "filters: no paper in this collection matches author"),
        ("ask", {}, "question\n  Field required"),
        ("get_paper", {"paper": "A Paper That Is Not There"}, "no paper of collection 'default' has the id or title 'A Paper That Is Not There'; the closest titles are: "),
        ("get_paper", {"paper": TRANSLICO, "collection": "second"}, "no paper of collection 'second'"),
        ("compare_papers", {"papers": ["TransliCo"]}, "papers\n  List should have at least 2 items"),
        ("compare_papers", {"papers": ["TransliCo", "A Paper That Is Not There"]}, "no paper of collection 'default' has the id or title 'A Paper"),
    ],
)  # fmt: skip
def test_a_bad_argument_or_an_unknown_paper_or_collection_is_a_tool_error(stdio, tool, arguments, message):
    result = stdio.call(tool, arguments)
    assert result.is_error
    assert message in text_of(result) and "Traceback" not in text_of(result)


def test_an_unknown_paper_resource_is_a_protocol_error(stdio):
    with pytest.raises(MCPError, match="no paper of collection 'default' has the id 'p000'"):
        stdio.read("paper://default/p000")
    with pytest.raises(MCPError, match="there is no collection 'nope'"):
        stdio.read(f"paper://nope/{TRANSLICO_ID}")


# --- 2. over streamable HTTP, with keys ---------------------------------------------------------


@pytest.fixture(scope="module")
def http(tagged, tmp_path_factory) -> Iterator[dict]:
    """`rag mcp --http` as a user starts it, keys set."""
    log = tmp_path_factory.mktemp("mcp-http") / "server.log"
    port = free_port()
    env = {**os.environ, "RAG_STORAGE__DATA_DIR": str(tagged.data_dir), **SMOL, "RAG_SERVING__API_KEYS": ",".join(KEYS)}
    with open(log, "w") as out:
        process = subprocess.Popen([RAG, "mcp", "--http", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.post(url, json={}, timeout=2).status_code == 401:  # up, and asking for a key
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"rag mcp --http did not start: {log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield {"url": url, "log": log}
    finally:
        process.terminate()
        process.wait(timeout=30)
    shown = log.read_text()
    assert not any(key in shown for key in KEYS), "an API key was written to the log"
    assert "Traceback" not in shown
    assert not [c for c in model_servers_of(tagged.data_dir) if f"rag.llm_child {process.pid} " in c], "the embedded model outlived rag mcp"


def http_transport(url: str, key: str):
    return streamable_http_client(url, http_client=httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=300))


def test_over_http_with_a_key_every_tool_answers(http, tagged):
    progress: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(message)

    with mcp_session(http_transport(http["url"], KEYS[1])) as session:
        assert {tool.name for tool in session.tools()} == TOOLS
        found = session.call("search_papers", {"query": FIRST, "k": 3})
        assert found.structured_content["papers"][0]["title"] == TRANSLICO
        check_answer(session.call("ask", {"question": FIRST}, progress=on_progress), {p.title for p in tagged.papers.values()})
        assert progress[0] == "Searching the abstracts…"  # notifications reach an HTTP client too
        compared = session.call("compare_papers", {"papers": [TRANSLICO_ID, RECURRENT_ID]})
        aspects = ["problem", "approach", "data / benchmarks", "main result", "limitation"]
        abstracts = {p.title: p.abstract for p in tagged.papers.values()}
        check_table(compared, [TRANSLICO, tagged.papers[RECURRENT_ID].title], abstracts, aspects)
        assert session.call("get_paper", {"paper": TRANSLICO_ID}).structured_content["title"] == TRANSLICO
        assert session.call("list_collections").structured_content["default"] == "default"
        assert session.read(f"paper://second/{next(iter(tagged.second))}").contents[0].text.startswith("# ")
        bad = session.call("search_papers", {"query": FIRST, "k": 1000})
        assert bad.is_error and "k: the number of papers must be between 1 and" in text_of(bad)


def test_over_http_a_wrong_or_missing_key_is_refused(http):
    for headers in ({}, {"Authorization": "Bearer not-a-key"}, {"Authorization": f"Basic {KEYS[0]}"}):
        reply = httpx.post(http["url"], json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=headers)
        assert reply.status_code == 401 and reply.json()["error"]["code"] == "invalid_api_key"
    with pytest.RaisesGroup(MCPError, flatten_subgroups=True):  # the client cannot even connect
        with mcp_session(http_transport(http["url"], "not-a-key")):
            pass


def test_a_non_loopback_address_needs_keys(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_SERVING__API_KEYS")}
    done = subprocess.run([RAG, "mcp", "--http", "--host", "0.0.0.0", "--data-dir", str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1
    assert "refusing to listen on 0.0.0.0 without API keys" in done.stderr
    assert "login for the page" not in done.stderr  # there is no page to log in to


# --- 3. in process, with an LLM that never answers ---------------------------------------------


def test_a_busy_model_and_a_slow_answer_are_tool_errors(tagged, real_embedder):
    with FaultServer("hang") as llm_server:
        settings = tagged.settings.changed(**{"answer_concurrency": 1, "answer_max_queue": 0, "answer_timeout": 3.0,
                                              "llm_timeout": 60.0, "llm_max_retries": 0})  # fmt: skip
        llm = OpenAIChatLLM(settings, llm_server.base_url, "scripted")
        server = build_mcp_server(Workspace(open_pipeline(settings, embedder=real_embedder, llm=llm)))

        async def two_at_once() -> dict[str, CallToolResult]:
            results = {}
            async with Client(server) as client:

                async def first() -> None:
                    results["slow"] = await client.call_tool("ask", {"question": FIRST})

                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(first)
                    await anyio.sleep(1.0)  # the first answer holds the only place at the model
                    started = time.monotonic()
                    results["busy"] = await client.call_tool("ask", {"question": FIRST})
                    results["busy_s"] = time.monotonic() - started
            return results

        results = anyio.run(two_at_once)
    assert results["busy_s"] < 1.0 and results["busy"].is_error
    assert "the model is busy (1 answers being made or waiting for it); please ask again in 10 s" in text_of(results["busy"])
    assert results["slow"].is_error and "the answer took more than 3 s (answer_timeout)" in text_of(results["slow"])


def test_an_answer_the_model_could_not_write_is_a_tool_error_with_the_passages(tagged, real_embedder):
    with FaultServer("error500") as llm_server:
        settings = tagged.settings.changed(**{"llm_max_retries": 0})
        llm = OpenAIChatLLM(settings, llm_server.base_url, "scripted")
        server = build_mcp_server(Workspace(open_pipeline(settings, embedder=real_embedder, llm=llm)))

        async def ask() -> CallToolResult:
            async with Client(server) as client:
                return await client.call_tool("ask", {"question": FIRST})

        result = anyio.run(ask)
    answer = result.structured_content
    assert result.is_error and answer["error"] and not answer["generated"] and answer["citations"] == []
    assert answer["closest_papers"][0] == TRANSLICO and TRANSLICO in text_of(result)  # what was found, to read


def test_host_and_port_are_for_http(capsys):
    from cli.main import main

    assert main(["mcp", "--port", "8123"]) == 1
    assert "--host and --port are for --http" in capsys.readouterr().err
