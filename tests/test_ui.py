"""The chat web UI over HTTP, with gradio_client, as another program would use it.

The app is the real one (ui.app.build_app + ui.app.launch on 127.0.0.1, a
free port) on the real index of the whole bundled corpus, answering with a
REAL llama.cpp server running the tiny smollm2-135m model (started in the
background by rag.pipeline.open_pipeline, as `rag ui` does). Its answers are
poor, so the checks are about what the UI promises: real corpus titles as
citations, markers that match them, follow-ups that carry the earlier paper,
errors as messages, several sessions at once. LLM failures use tests/fault_server.py,
a real HTTP server that speaks the OpenAI wire format.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import time

import httpx
import pytest
from pydantic import SecretStr

from rag.index import PaperIndex
from rag.llm import OpenAIChatLLM
from rag.pipeline import open_pipeline
from rag.retrieval import Retriever
from rag.settings import PROJECT_ROOT
from tests.fault_server import FaultServer
from tests.test_generation import quoting

pytestmark = [
    pytest.mark.slow,
    # gradio's queue calls pandas APIs that pandas 3 deprecates; nothing to act on here
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting:Warning", "ignore:The copy keyword is deprecated:Warning"),
]

gradio_client = pytest.importorskip("gradio_client")
from ui.app import build_app, launch  # noqa: E402  (after the skip)

TRANSLICO = "TransliCo: A Contrastive Learning Framework to Address the Script Barrier in Multilingual Pretrained Language Models"
SEMANTIC_HUB = "The Semantic Hub Hypothesis: Language Models Share Semantic Representations Across Languages and Modalities"
DIFFCSE = "DiffCSE: Difference-based Contrastive Learning for Sentence Embeddings"
FIRST = "What problem does TransliCo address, and how?"
FOLLOW_UP = "Which model did they fine-tune, and on how much data?"


def client_for(url: str, **kwargs):
    return gradio_client.Client(url, verbose=False, analytics_enabled=False, **kwargs)


def text_of(message: dict) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


def corpus_titles(retriever) -> set[str]:
    return {p.title for p in retriever.papers.values()}


def assert_citations_are_real(result: dict, titles: set[str]) -> None:
    """Cited titles are corpus papers that were sent to the model, and the [n]
    markers of the answer are exactly the cited sources' numbers."""
    sources = {s["number"]: s for s in result["sources"]}
    cited_numbers = [n for n, s in sources.items() if s["cited"]]
    assert set(result["cited_titles"]) <= titles
    assert {sources[n]["title"] for n in cited_numbers} == set(result["cited_titles"])
    if result["refused"]:
        assert result["cited_titles"] == [] and not re.search(r"\[\d+\]", result["answer"])
        assert "do not answer" in result["answer"]
    else:
        markers = {int(n) for n in re.findall(r"\[(\d+)\]", result["answer"])}
        assert result["cited_titles"], result
        assert markers == set(cited_numbers)
        for title in result["cited_titles"]:
            assert title in result["markdown"]


# --- the app on the real model --------------------------------------------------------------


@pytest.fixture(scope="module")
def smol(retriever):
    """The UI as `rag ui` builds it, with the tiny embedded model, on a free port."""
    settings = retriever.settings.changed(**{
            "local_model": "smollm2-135m",
            "llm_max_tokens": 96,
            # one thread: llama.cpp slows down many times over when its threads compete with
            # other work for the cores (here: the app's own embeddings, the test clients)
            "local_threads": 1,
            "ui_host": "127.0.0.1",
            "ui_port": 0,
        }
    )
    with open_pipeline(settings, retriever=retriever, start_llm_in_background=True) as pipeline:
        assert pipeline.llm.embedded and pipeline.llm_status() in ("starting", "ready")
        app = build_app(pipeline)
        url = launch(app, settings, block=False)
        try:
            pipeline.llm.wait_until_ready()
            yield {"url": url, "app": app, "settings": settings, "pipeline": pipeline}
        finally:
            app.close()


def test_endpoints_have_explicit_names_and_the_textbox_has_a_limit(smol):
    api = client_for(smol["url"]).view_api(print_info=False, return_format="dict")
    assert {"/chat", "/ask", "/retry", "/clear"} <= set(api["named_endpoints"])
    assert api["unnamed_endpoints"] == {}
    config = httpx.get(smol["url"] + "config", timeout=10).json()
    boxes = [c for c in config["components"] if c.get("props", {}).get("elem_id") == "rag-question"]
    assert boxes and boxes[0]["props"]["max_length"] == smol["settings"].answering.max_question_chars


def test_ask_answers_with_citations_of_real_corpus_papers(smol, retriever):
    started = time.perf_counter()
    result = client_for(smol["url"]).predict(FIRST, api_name="/ask")
    print(f"/ask answered in {time.perf_counter() - started:.1f} s: {result['answer'][:200]!r} {result['cited_titles']}")
    json.dumps(result)  # JSON-able
    assert result["error"] is None and result["generated"]
    assert result["retrieved"][0]["title"] == TRANSLICO  # the question names it
    assert_citations_are_real(result, corpus_titles(retriever))
    assert result["history"][-2:] == [
        {"role": "user", "content": FIRST},
        {"role": "assistant", "content": result["markdown"], "cited_titles": result["cited_titles"]},
    ]


def test_a_followup_in_the_same_session_searches_the_earlier_paper(smol, retriever):
    session = client_for(smol["url"])
    messages, _, first = session.predict(FIRST, api_name="/chat")
    assert first["retrieved"][0]["title"] == TRANSLICO
    assert_citations_are_real(first, corpus_titles(retriever))
    messages, _, follow = session.predict(FOLLOW_UP, api_name="/chat")
    print(f"follow-up query: {follow['query']!r}; answer {follow['answer'][:160]!r}")
    assert len(messages) == 4 and text_of(messages[2]) == FOLLOW_UP
    # The earlier turn's papers are carried into the search: those its answer cited (the tiny
    # model may cite a wrong one: it is still the paper the conversation is about), or, after
    # a refusal, the closest papers it listed.
    earlier = first["cited_titles"] or [p["title"] for p in first["retrieved"][:3]]
    assert follow["query"].startswith(FOLLOW_UP) and earlier[0] in follow["query"]
    assert follow["retrieved"][0]["title"] in earlier
    assert_citations_are_real(follow, corpus_titles(retriever))

    # the same follow-up in a new session has no history: nothing is carried
    _, _, fresh = client_for(smol["url"]).predict(FOLLOW_UP, api_name="/chat")
    assert fresh["query"] == FOLLOW_UP


def test_the_ask_endpoint_takes_history_for_followups(smol):
    history = [
        {"role": "user", "content": "What does DiffCSE learn?"},
        {"role": "assistant", "content": "DiffCSE learns sentence embeddings [1].", "cited_titles": [DIFFCSE]},
    ]
    result = client_for(smol["url"]).predict("What model do they edit sentences with?", history, 3, api_name="/ask")
    assert DIFFCSE in result["query"]
    assert result["retrieved"][0]["title"] == DIFFCSE
    assert len(result["retrieved"]) == 3  # the per-request top_k


def test_retry_regenerates_the_last_answer_and_clear_forgets(smol):
    session = client_for(smol["url"])
    messages, _, first = session.predict(FIRST, api_name="/chat")
    again, _, retried = session.predict(api_name="/retry")
    assert len(again) == len(messages) == 2
    assert text_of(again[0]) == FIRST and retried["question"] == FIRST
    assert retried["error"] is None and (retried["generated"] or retried["refused"])
    cleared, _ = session.predict(api_name="/clear")
    assert cleared == []
    messages, _, after = session.predict(FOLLOW_UP, api_name="/chat")
    assert len(messages) == 2 and after["query"] == FOLLOW_UP  # the history is gone


def test_clear_stops_an_answer_being_made_and_the_model_is_free_again(smol):
    session = client_for(smol["url"])
    job = session.submit("Compare TransliCo and the Semantic Hub Hypothesis", api_name="/chat")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any("Reading" in text_of(o[0][-1]) for o in job.outputs() if o and o[0]):
        time.sleep(0.05)
    assert not job.done(), "the answer finished before it could be stopped"  # the model is reading the papers
    assert session.predict(api_name="/clear")[0] == []
    started = time.monotonic()
    messages, _, next_answer = session.predict(FIRST, api_name="/chat")
    assert next_answer["error"] is None and len(messages) == 2  # the stopped turn was not kept
    assert time.monotonic() - started < smol["settings"].llm.timeout  # the model was not left locked


def test_the_papers_found_show_before_the_model_writes(smol):
    session = client_for(smol["url"])
    job = session.submit("What is the Platonic Representation Hypothesis?", api_name="/chat")
    shown = [text_of(update[0][-1]) for update in job if update and update[0]]
    found = next(i for i, text in enumerate(shown) if "rag-found" in text)
    written = next(i for i, text in enumerate(shown) if "▍" in text or 'class="rag-sources"' in text)
    assert found < written  # the papers were on the page before any of the answer
    assert "Platonic Representation Hypothesis" in shown[found]


def test_empty_and_overlong_questions_are_messages_and_the_next_question_works(smol):
    session = client_for(smol["url"])
    messages, _, empty = session.predict("   ", api_name="/chat")
    assert "Please type a question." in text_of(messages[-1]) and empty["error"]
    too_long = "why? " * 1000
    messages, _, long = session.predict(too_long, api_name="/chat")
    assert "the limit is 2,000" in text_of(messages[-1]) and long["error"]
    assert client_for(smol["url"]).predict("", api_name="/ask")["error"] == "Please type a question."
    bad = client_for(smol["url"]).predict(FIRST, "not a list", api_name="/ask")
    assert "history must be a list" in bad["error"]
    messages, _, works = session.predict(FIRST, api_name="/chat")
    assert works["error"] is None and (works["generated"] or works["refused"])
    assert len(messages) == 5  # two error turns (no user bubble for the blank one), then a real one


def test_eight_sessions_at_once_each_get_a_complete_answer(smol, tmp_path):
    """The load check (benchmarks/ui_load.py): answers queue and complete; the
    page stays responsive. Timing is printed and recorded (in tmp_path: the committed
    benchmarks/results/ui_load.json is written only by the benchmark), not asserted."""
    spec = importlib.util.spec_from_file_location("ui_load", PROJECT_ROOT / "benchmarks" / "ui_load.py")
    ui_load = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ui_load)
    summary = ui_load.run_load(smol["url"], sessions=8)
    path = ui_load.write_results(summary, ui_load.describe(smol["settings"]), tmp_path / "ui_load.json")
    print(
        f"\n8 sessions: {summary['complete']}/8 complete in {summary['total_s']} s; per answer "
        f"p50 {summary['per_answer_s']['p50']} s, max {summary['per_answer_s']['max']} s; first token p50 "
        f"{summary['first_token_s']['p50']} s; /clear during load "
        f"{summary['light_request_during_load'].get('seconds')} s -> {path}"
    )
    failed = [a for a in summary["answers"] if not a.get("complete")]
    assert summary["complete"] == 8, failed
    assert all(a["error"] is None for a in summary["answers"])
    probe = summary["light_request_during_load"]
    assert "error" not in probe and probe["while_answers_running"], probe


# --- failures -----------------------------------------------------------------------------------


@pytest.fixture
def fault_app(retriever):
    """The UI answering through a real HTTP endpoint whose faults the test controls."""
    with FaultServer("error500", reply="DiffCSE learns sentence embeddings [1].") as server:
        settings = retriever.settings.changed(**{"llm_base_url": server.base_url, "llm_max_retries": 0, "llm_timeout": 5.0, "ui_port": 0}
        )
        pipeline = open_pipeline(settings, retriever=retriever, llm=OpenAIChatLLM(settings, server.base_url, "local"))
        app = build_app(pipeline)
        url = launch(app, settings, block=False)
        yield {"url": url, "server": server}
        app.close()


def test_a_failing_llm_is_a_message_and_the_next_question_works(fault_app):
    session = client_for(fault_app["url"])
    messages, _, failed = session.predict("What does DiffCSE learn?", api_name="/chat")
    shown = text_of(messages[-1])
    assert "No generated answer" in shown and "returned HTTP 500" in shown
    assert DIFFCSE in shown  # the passages found are shown instead
    assert not failed["generated"] and "HTTP 500" in failed["error"]
    api = client_for(fault_app["url"]).predict("What does DiffCSE learn?", api_name="/ask")
    assert "HTTP 500" in api["error"] and api["cited_titles"] == [] and api["history"] == []

    fault_app["server"].mode = "ok"
    messages, _, recovered = session.predict("What does DiffCSE learn?", api_name="/chat")
    assert recovered["generated"] and recovered["cited_titles"] == [DIFFCSE]
    assert "<details" in text_of(messages[-1]) and DIFFCSE in text_of(messages[-1])


def test_an_index_removed_under_the_running_app_is_a_message(tmp_path, real_embedder, small_corpus):
    settings_dir = tmp_path / "data"
    from rag.settings import Settings

    settings = Settings(data_dir=settings_dir, ui_port=0)
    index = PaperIndex(settings, real_embedder)
    index.ingest(small_corpus, progress=False)
    retriever = Retriever(index, settings)
    with FaultServer("ok", reply=quoting) as server:
        pipeline = open_pipeline(settings, retriever=retriever, llm=OpenAIChatLLM(settings, server.base_url, "local"))
        app = build_app(pipeline)
        url = launch(app, settings, block=False)
        try:
            session = client_for(url)
            _, _, ok = session.predict(f"What is {small_corpus[0].title} about?", api_name="/chat")
            assert ok["generated"]
            for collection in index.client.list_collections():  # the store is wiped while the app runs
                index.client.delete_collection(collection.name if hasattr(collection, "name") else collection)
            messages, _, gone = session.predict("What is it about?", api_name="/chat")
            assert "index is not available" in text_of(messages[-1]) and "rag ingest" in text_of(messages[-1])
            assert "rag ingest" in gone["error"]
            assert client_for(url).predict(api_name="/clear")[0] == []  # the app still serves
        finally:
            app.close()


def test_an_index_rebuilt_under_the_running_app_asks_for_a_restart(tmp_path, real_embedder, small_corpus):
    from rag.settings import Settings

    settings = Settings(data_dir=tmp_path / "data", ui_port=0)
    index = PaperIndex(settings, real_embedder)
    index.ingest(small_corpus[:6], progress=False)
    retriever = Retriever(index, settings)
    with FaultServer("ok", reply=quoting) as server:
        pipeline = open_pipeline(settings, retriever=retriever, llm=OpenAIChatLLM(settings, server.base_url, "local"))
        app = build_app(pipeline)
        url = launch(app, settings, block=False)
        try:
            index.ingest(small_corpus[:7], progress=False)  # incremental: the loaded papers stay readable
            _, _, still = client_for(url).predict(f"What is {small_corpus[0].title} about?", api_name="/chat")
            assert still["generated"]
            rechunked = settings.changed(**{"chunk_max_tokens": 64})
            PaperIndex(rechunked, real_embedder).ingest(small_corpus[:7], progress=False)  # the old vectors are dropped
            messages, _, stale = client_for(url).predict(f"What is {small_corpus[0].title} about?", api_name="/chat")
            assert "rebuilt" in text_of(messages[-1]) and "Restart `rag ui`" in stale["error"]
        finally:
            app.close()


def test_serve_without_an_index_prints_one_line_and_exits_nonzero(tmp_path):
    script = (
        "from pathlib import Path\nfrom rag.settings import Settings\nfrom serve.app import serve_page\n"
        f"serve_page(Settings(data_dir=Path({str(tmp_path / 'empty')!r}), ui_port=0))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "rag ingest" in lines[0], done.stderr


def test_a_login_is_required_when_username_and_password_are_set(retriever):
    with FaultServer("ok", reply="DiffCSE learns sentence embeddings [1].") as server:
        settings = retriever.settings.changed(**{"llm_base_url": server.base_url, "ui_port": 0, "ui_username": "reader", "ui_password": SecretStr("s3cret")}
        )
        pipeline = open_pipeline(settings, retriever=retriever, llm=OpenAIChatLLM(settings, server.base_url, "local"))
        app = build_app(pipeline)
        url = launch(app, settings, block=False)
        try:
            assert httpx.get(url + "config", timeout=10).status_code in (401, 403)
            with pytest.raises(gradio_client.exceptions.AuthenticationError):
                client_for(url)
            result = client_for(url, auth=("reader", "s3cret")).predict("What does DiffCSE learn?", api_name="/ask")
            assert result["cited_titles"] == [DIFFCSE]
        finally:
            app.close()


def test_an_embedded_model_that_fails_to_start_shows_in_the_status_and_the_chat(retriever, tmp_path):
    not_a_model = tmp_path / "broken.gguf"
    not_a_model.write_bytes(b"this is not a GGUF file")
    settings = retriever.settings.changed(**{"local_model_file": not_a_model, "local_startup_timeout": 60.0, "ui_port": 0}
    )
    pipeline = open_pipeline(settings, retriever=retriever, start_llm_in_background=True)
    llm_status = pipeline.llm_status
    app = build_app(pipeline)
    url = launch(app, settings, block=False)
    try:
        deadline = time.monotonic() + 90
        while llm_status() == "starting" and time.monotonic() < deadline:
            badge, _ = app.handlers.poll_status()  # what the page's timer shows meanwhile
            assert 'data-status="starting"' in badge
            time.sleep(0.5)
        assert llm_status().startswith("failed:")
        badge, timer = app.handlers.poll_status()
        assert 'data-status="failed"' in badge and "Failed" in badge
        messages, _, failed = client_for(url).predict("What does DiffCSE learn?", api_name="/chat")
        shown = text_of(messages[-1])
        assert "No generated answer" in shown and "embedded model is not available" in shown
        assert DIFFCSE in shown and not failed["generated"]
    finally:
        app.close()
        pipeline.close()


def test_a_which_papers_answer_shows_the_candidates_it_left_out_collapsed(retriever):
    from tests.test_generation import engine_with, quoting_first
    from ui.render import answer_message

    engine, _ = engine_with(retriever, quoting_first)
    answer = engine.ask("Which papers learn sentence embeddings with contrastive learning?")
    shown = answer_message(answer)
    block = shown[shown.index('<details class="rag-near-misses">'):]
    assert block.startswith(
        f'<details class="rag-near-misses"><summary>Read 15 candidate papers; {len(answer.near_misses)} judged off-topic'
    )  # collapsed: a <details> without "open"
    assert all(f"<li>{p.title}</li>" in block.replace("&#x27;", "'") for p in answer.near_misses)
