"""The OpenAI-compatible API.

1. A real `rag serve` subprocess on 127.0.0.1 over the real index of the bundled
   corpus, answering with a REAL llama.cpp server running the tiny smollm2-135m
   model, called with the official `openai` client (whole and streamed) and raw
   with httpx: citations in `model_extra` matching the [n] markers, follow-ups
   through `messages`, the SSE wire format, keys, models, search, health.
2. The same FastAPI app in this process (uvicorn on a free port) with fault
   injection: an LLM that hangs (back-pressure: 429 with Retry-After; timeouts)
   and malformed bodies (400 naming the field).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
import uvicorn

from api.app import build_api
from rag.llm import OpenAIChatLLM
from rag.net import free_port
from rag.pipeline import Workspace, open_pipeline
from tests.fault_server import FaultServer
from tests.serving import RAG, rag_serve
from tests.test_generation import quoting_first
from tests.test_ui import FIRST, FOLLOW_UP, TRANSLICO

pytestmark = pytest.mark.slow

KEYS = ["k-test-alpha-0123456789", "k-test-beta-9876543210"]


def markers(text: str) -> set[int]:
    return {int(n) for n in re.findall(r"\[(\d+)\]", text)}


def check_citations(content: str, extra: dict, titles: set[str]) -> None:
    """The citations field lists exactly the papers the [n] markers of the answer cite."""
    cited = extra["citations"]
    answer_text = content.split("\n\nSources:\n")[0]
    assert {c["number"] for c in cited} == markers(answer_text)
    assert {c["title"] for c in cited} <= titles
    for c in cited:
        assert f"[{c['number']}] {c['title']}" in content  # the Sources list of the Markdown
        assert c["sentences"] and all(isinstance(s, str) for s in c["sentences"])
        assert len(c["supporting"]) == len(c["sentences"]) and any(c["supporting"])  # what the answer rests on
    assert extra["paper_rag"]["collection"] == "default"
    if extra["paper_rag"]["refused"]:
        assert cited == []


@pytest.fixture(scope="module")
def served(full_index, tmp_path_factory):
    """`rag serve` as a user starts it, keys set, the tiny embedded model."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {
        "RAG_STORAGE__DATA_DIR": str(full_index.settings.storage.data_dir),
        "RAG_LLM__LOCAL_MODEL": "smollm2-135m",
        "RAG_LLM__MAX_TOKENS": "96",
        "RAG_LLM__LOCAL_THREADS": "1",
        "RAG_SERVING__API_KEYS": ",".join(KEYS),
    }
    titles = {p.title for p in full_index_papers(full_index)}
    with rag_serve(env, log) as base:
        yield {"base": base, "log": log, "titles": titles, "data_dir": str(full_index.settings.storage.data_dir)}
    assert not any(key in log.read_text() for key in KEYS), "an API key was written to the log"
    # stopped with SIGTERM, rag serve stopped its embedded model's server too
    assert not model_servers_of(full_index.settings.storage.data_dir), "the embedded model outlived rag serve"


def model_servers_of(data_dir: Path) -> list[str]:
    """Command lines of the llama.cpp servers running a model from this data folder."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if "llama_cpp.server" in args and str(data_dir) in args:
                found.append(args)
    return found


def full_index_papers(index):
    from rag.retrieval import Retriever

    return Retriever(index, index.settings).papers.values()


def client(served, key: str = KEYS[1]) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{served['base']}/v1", api_key=key, max_retries=0, timeout=300)


def test_the_openai_client_gets_the_answer_and_its_citations(served):
    completion = client(served).chat.completions.create(
        model="default", messages=[{"role": "user", "content": FIRST}]
    )
    content = completion.choices[0].message.content
    assert completion.model == "default" and completion.choices[0].finish_reason == "stop"
    extra = completion.model_extra
    check_citations(content, extra, served["titles"])
    assert extra["paper_rag"]["query"] == FIRST


def test_a_comparison_comes_back_as_a_table_whole_and_cell_by_cell(served, full_index):
    from tests.test_comparison import DIFFCSE, SETCSE, assert_table_shape

    abstracts = {p.title: p.abstract for p in full_index_papers(full_index)}
    question = [{"role": "user", "content": "Compare DiffCSE and SetCSE"}]
    completion = client(served).chat.completions.create(model="default", messages=question)
    table = completion.model_extra["comparison"]
    assert_table_shape(table, [DIFFCSE, SETCSE], abstracts)
    content = completion.choices[0].message.content
    assert "| aspect | [1] DiffCSE | [2] SetCSE |" in content  # the Markdown table
    assert [c["title"] for c in completion.model_extra["citations"]] == [DIFFCSE, SETCSE]

    chunks = list(client(served).chat.completions.create(model="default", messages=question, stream=True))
    cells = [c.model_extra["comparison_cell"] for c in chunks if "comparison_cell" in (c.model_extra or {})]
    assert len(cells) == 10 and [c["paper"] for c in cells] == [1] * 5 + [2] * 5  # column by column
    assert_table_shape(chunks[-1].model_extra["comparison"], [DIFFCSE, SETCSE], abstracts)
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "| aspect | [1] DiffCSE | [2] SetCSE |" in streamed

    # the table reaches the exported conversation
    export = httpx.post(
        f"{served['base']}/v1/export",
        headers={"Authorization": f"Bearer {KEYS[1]}"},
        json={"messages": [*question, {"role": "assistant", "content": content, "citations": completion.model_extra["citations"]}]},
        timeout=60,
    )
    assert export.status_code == 200 and "| aspect | [1] DiffCSE | [2] SetCSE |" in export.text


def test_a_streamed_answer_keeps_its_citations_in_the_last_chunk(served):
    stream = client(served).chat.completions.create(
        model="default", messages=[{"role": "user", "content": FIRST}], stream=True
    )
    chunks = list(stream)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert all("citations" not in (c.model_extra or {}) for c in chunks[:-1])
    check_citations(content, last.model_extra, served["titles"])


def test_a_followup_through_messages_searches_the_earlier_paper(served):
    api = client(served)
    first = api.chat.completions.create(model="default", messages=[{"role": "user", "content": FIRST}])
    earlier = [c["title"] for c in first.model_extra["citations"]] or [TRANSLICO]
    messages = [
        {"role": "user", "content": FIRST},
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": FOLLOW_UP},
    ]
    follow = api.chat.completions.create(model="default", messages=messages)
    query = follow.model_extra["paper_rag"]["query"]
    assert query.startswith(FOLLOW_UP) and earlier[0] in query
    # with no history, nothing is carried
    fresh = api.chat.completions.create(model="default", messages=[{"role": "user", "content": FOLLOW_UP}])
    assert fresh.model_extra["paper_rag"]["query"] == FOLLOW_UP


def test_the_raw_stream_is_openai_server_sent_events(served):
    body = {"model": "default", "stream": True, "messages": [{"role": "user", "content": FIRST}]}
    headers = {"Authorization": f"Bearer {KEYS[0]}"}
    with httpx.stream("POST", f"{served['base']}/v1/chat/completions", json=body, headers=headers, timeout=300) as reply:
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream")
        raw = "".join(reply.iter_text())
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    payloads = [json.loads(e[len("data: "):]) for e in events[:-2]]
    assert all(e.startswith("data: ") for e in events[:-1])
    assert payloads[0]["choices"][0]["delta"]["role"] == "assistant"
    assert {p["object"] for p in payloads} == {"chat.completion.chunk"} and len({p["id"] for p in payloads}) == 1
    assert payloads[-1]["choices"][0]["finish_reason"] == "stop" and "citations" in payloads[-1]


def test_keys_are_required_and_checked(served):
    url = f"{served['base']}/v1/models"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEYS[0]}"}):
        reply = httpx.get(url, headers=headers)
        assert reply.status_code == 401
        assert reply.json()["error"]["code"] == "invalid_api_key" and KEYS[0] not in reply.text
    with pytest.raises(openai.AuthenticationError):
        client(served, key="k-test-alpha-0123456788").models.list()
    models = client(served, key=KEYS[0]).models.list()
    assert [m.id for m in models.data] == ["default"] and models.data[0].model_extra["papers"] == 248


def test_search_has_the_shape_of_rag_search_json(served):
    question = "contrastive sentence embeddings"
    reply = httpx.post(
        f"{served['base']}/v1/search", json={"query": question, "k": 3}, headers={"Authorization": f"Bearer {KEYS[0]}"}
    )
    found = reply.json()
    assert reply.status_code == 200 and found.pop("collection") == "default"
    cli = subprocess.run(
        [RAG, "search", "--json", "--k", "3", "--data-dir", served["data_dir"], question], capture_output=True, text=True
    )
    expected = json.loads(cli.stdout)
    assert set(found) == set(expected) and [p["title"] for p in found["papers"]] == [p["title"] for p in expected["papers"]]
    assert set(found["papers"][0]) == set(expected["papers"][0])


def test_the_one_file_openai_script_streams_and_prints_the_cited_titles(served):
    script = Path(__file__).parent.parent / "scripts" / "openai_stream_example.py"
    env = {**os.environ, "OPENAI_BASE_URL": f"{served['base']}/v1", "OPENAI_API_KEY": KEYS[0]}
    done = subprocess.run([sys.executable, str(script), "Compare DiffCSE and SimCSE"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    answer, _, cited = done.stdout.partition("\n\nCited papers:\n")
    numbers = {int(n) for n in re.findall(r"^\[(\d+)\] ", cited, re.M)}
    assert numbers == markers(answer.split("\n\nSources:\n")[0])
    assert all(line.split("] ", 1)[1] in served["titles"] for line in cited.splitlines() if line)


def test_the_page_is_served_beside_the_api(served):
    page = httpx.get(f"{served['base']}/")
    assert page.status_code == 200 and "paper-rag" in page.text


def test_health_says_what_is_ready(served):
    health = httpx.get(f"{served['base']}/healthz").json()
    assert health == {"status": "ok", "index": "present", "llm": "ready", "collections": ["default"]}


def test_serve_refuses_a_public_address_without_keys(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_API")}
    done = subprocess.run(
        [RAG, "serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "refusing to listen on 0.0.0.0 without API keys" in done.stderr


# --- the app in process, with fault injection ------------------------------------------------------


@contextlib.contextmanager
def running(app):
    """The FastAPI app on uvicorn on a free port of 127.0.0.1, in a thread."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def hanging(retriever):
    """The API over the real index with an LLM that never answers; one answer at a time, one waiting."""
    with FaultServer("hang") as llm_server:
        settings = retriever.settings.changed(**{"answer_concurrency": 1, "answer_max_queue": 1, "answer_timeout": 3.0, "llm_timeout": 60.0,
                    "llm_max_retries": 0}
        )
        llm = OpenAIChatLLM(settings, llm_server.base_url, "scripted")
        workspace = Workspace(open_pipeline(settings, retriever=retriever, llm=llm))
        with running(build_api(workspace, keys=[])) as base:
            yield base


def test_a_full_queue_says_busy_at_once_and_slow_answers_time_out(hanging):
    body = {"messages": [{"role": "user", "content": FIRST}]}
    replies: dict = {}

    def ask(name: str, stream: bool = False) -> None:
        replies[name] = httpx.post(f"{hanging}/v1/chat/completions", json={**body, "stream": stream}, timeout=30)

    first = threading.Thread(target=ask, args=("answering",))
    second = threading.Thread(target=ask, args=("queued", True))
    first.start()
    time.sleep(0.5)
    second.start()
    time.sleep(0.5)  # one answer waits for the model, one waits for its turn
    started = time.monotonic()
    busy = httpx.post(f"{hanging}/v1/chat/completions", json=body, timeout=30)
    assert time.monotonic() - started < 1.0
    assert busy.status_code == 429 and busy.headers["Retry-After"] == "10"
    assert busy.json()["error"]["code"] == "server_busy" and busy.json()["error"]["type"] == "rate_limit_error"
    first.join()
    second.join()
    assert replies["answering"].status_code == 504 and replies["answering"].json()["error"]["code"] == "timeout"
    streamed = replies["queued"].text  # a stream has begun (200): its last chunk says why it ended
    assert replies["queued"].status_code == 200 and streamed.endswith("data: [DONE]\n\n")
    last = json.loads(streamed.split("\n\n")[-3][len("data: "):])
    assert last["paper_rag"]["error"] == "timeout" and last["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "system", "content": "hi"}]}, "messages"),
        ({"messages": [{"role": "user", "content": 42}]}, "messages.0.content"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": "x" * 2001}]}, "messages.0.content"),
        ({"messages": [{"role": "user", "content": "   "}]}, "messages.0.content"),
        ({"messages": [{"role": "user", "content": "q"}], "stream": "yes please"}, "stream"),
        ({"messages": [{"role": "user", "content": "q"}], "filters": {"year_from": 2022, "year_to": 2020}}, "filters"),
    ],
)
def test_bad_bodies_get_400_naming_the_field(hanging, body, field):
    reply = httpx.post(f"{hanging}/v1/chat/completions", json=body)
    error = reply.json()["error"]
    assert reply.status_code == 400 and error["param"].startswith(field), error
    assert error["message"].startswith(field)


def test_a_huge_body_is_refused_unread(hanging):
    reply = httpx.post(f"{hanging}/v1/chat/completions", content=b"{" + b" " * 10_000_000 + b"}",
                       headers={"Content-Type": "application/json"})
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "body_too_large"


@pytest.fixture
def scripted(retriever):
    """The API over the real index with a scripted (but real HTTP) LLM that writes the first
    evidence sentence of the best-ranked paper, word for word."""
    with FaultServer("ok", reply=quoting_first) as llm_server:
        settings = retriever.settings.changed(**{"llm_max_retries": 0})
        llm = OpenAIChatLLM(settings, llm_server.base_url, "scripted")
        workspace = Workspace(open_pipeline(settings, retriever=retriever, llm=llm))
        with running(build_api(workspace, keys=[])) as base:
            yield base


def test_a_conversation_from_the_api_exports_as_markdown_and_bibtex(scripted):
    import bibtexparser

    api = openai.OpenAI(base_url=f"{scripted}/v1", api_key="unused", max_retries=0)
    first = api.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": FIRST}])
    assert first.model == "default" and "no collection 'no-such-model'" in first.model_extra["paper_rag"]["note"]
    cited = first.model_extra["citations"]
    assert [c["title"] for c in cited] == [TRANSLICO]
    messages = [
        {"role": "user", "content": FIRST},
        {"role": "assistant", "content": first.choices[0].message.content, "citations": cited},
    ]
    markdown = httpx.post(f"{scripted}/v1/export", json={"messages": messages}).text
    assert f"## Q1: {FIRST}" in markdown and first.choices[0].message.content in markdown
    assert "```bibtex" in markdown and TRANSLICO.split(":")[0] in markdown
    bibtex = httpx.post(f"{scripted}/v1/export", json={"messages": messages, "format": "bibtex"}).text
    entries = bibtexparser.parse_string(bibtex).entries
    assert len(entries) == 1 and "TransliCo" in entries[0].fields_dict["title"].value
    nothing = httpx.post(f"{scripted}/v1/export", json={"messages": [{"role": "user", "content": "hi"}]})
    assert nothing.status_code == 400 and nothing.json()["error"]["param"] == "messages"


def test_an_llm_failure_is_a_normal_completion_that_says_so(retriever):
    with FaultServer("error500") as llm_server:
        settings = retriever.settings.changed(**{"llm_max_retries": 0})
        llm = OpenAIChatLLM(settings, llm_server.base_url, "scripted")
        workspace = Workspace(open_pipeline(settings, retriever=retriever, llm=llm))
        with running(build_api(workspace, keys=[])) as base:
            api = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
            reply = api.chat.completions.create(model="default", messages=[{"role": "user", "content": FIRST}])
    content = reply.choices[0].message.content
    assert reply.model_extra["paper_rag"]["error"] == "http" and reply.model_extra["citations"] == []
    assert "500" in content and TRANSLICO in content  # the reason, and the passages found


def test_a_public_address_needs_keys_and_a_page_login():
    from pydantic import SecretStr

    from rag.errors import SettingsError
    from rag.settings import Settings
    from serve.startup import check_listen_address

    def check_bind(settings, host, keys):
        check_listen_address(settings, host, api_keys=keys)

    settings = Settings()
    with_login = settings.changed(**{"ui_username": "me", "ui_password": SecretStr("pw")})
    check_bind(settings, "127.0.0.1", [])  # loopback: open is fine
    check_bind(settings, "::1", [])
    with pytest.raises(SettingsError, match="without API keys .* or a login for the page"):
        check_bind(settings, "0.0.0.0", [])
    with pytest.raises(SettingsError, match="without a login for the page"):
        check_bind(settings, "0.0.0.0", KEYS)
    with pytest.raises(SettingsError, match="without API keys"):
        check_bind(with_login, "192.168.1.5", [])
    check_bind(with_login, "0.0.0.0", KEYS)
    check_bind(settings.changed(**{"api_allow_unauthenticated": True}), "0.0.0.0", [])


def test_every_front_end_has_the_same_limit_on_papers_per_request(retriever):
    """The page's slider, `rag search --k`, the API's search k and chat top_k: 1 to max_top_k."""
    from rag.errors import InvalidQuestionError
    from rag.pipeline import Workspace, open_pipeline
    from rag.service import checked_request
    from tests.test_generation import ScriptedLLM

    settings = retriever.settings.changed(**{"max_top_k": 7})
    assert checked_request(settings, "q", top_k=7).top_k == 7 and checked_request(settings, "q").top_k is None
    for bad in (0, 8):
        with pytest.raises(InvalidQuestionError, match="between 1 and 7"):
            checked_request(settings, "q", top_k=bad)
    workspace = Workspace(open_pipeline(settings, retriever=retriever, llm=ScriptedLLM("It does [1].")))
    assert workspace.engine(top_k=3).settings.retrieval.top_k == 3 and workspace.engine(top_k=3) is workspace.engine(top_k=3)
    with running(build_api(workspace, keys=[])) as base:
        search = httpx.post(f"{base}/v1/search", json={"query": "DiffCSE", "k": 8}, timeout=60)
        assert search.status_code == 400 and search.json()["error"]["param"] == "k"
        chat = {"messages": [{"role": "user", "content": "What does DiffCSE learn?"}], "top_k": 8}
        told = httpx.post(f"{base}/v1/chat/completions", json=chat, timeout=60)
        assert told.status_code == 400 and told.json()["error"]["param"] == "top_k"
        chat["top_k"] = 2
        answered = httpx.post(f"{base}/v1/chat/completions", json=chat, timeout=60)
        assert answered.status_code == 200
        assert len(answered.json()["paper_rag"]) and answered.json()["choices"][0]["message"]["content"]
