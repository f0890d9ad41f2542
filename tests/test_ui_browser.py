"""The chat page in a real browser: Debian's headless Chromium driven by Playwright.

Both tests use the real index of the bundled corpus and the real app over HTTP.

1. With a REAL llama.cpp server running the tiny smollm2-135m model (as in
   test_ui.py): the first screen, a question typed in, paragraphs streaming in,
   the checked answer replacing them, its papers expanding to their abstracts,
   Retry and Clear. The tiny model cites on some runs and refuses on others
   (its greedy output is not reproducible across llama.cpp runs), so this test
   accepts either the cited sources or, after a refusal, the closest papers.
2. The table check must not depend on that, so it drives the same page with a
   SCRIPTED but real OpenAI-compatible server (tests/fault_server.py
   FaultServer("ok"), whose reply writes each paper's first evidence sentence):
   two papers picked in the comparison picker and "Compare in a table" give an
   HTML table, a column per paper; clicking a cell shows the abstract sentence
   it comes from; the table downloads as CSV; the cited titles appear under it,
   clicking [1] opens that paper's evidence with the sentences the cells rest on
   highlighted, and clicking a title shows its abstract with those sentences in
   bold; the screenshot tests/artifacts/ui_answer.png is of this page.

Chromium comes from Debian (`apt-get install -y chromium`, /usr/bin/chromium),
Playwright from PyPI; `playwright install` (which downloads browsers) is
never used. Without /usr/bin/chromium the test is skipped, except in CI
(CI=true), where it fails.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from benchmarks.reliability_injection import ObeyingLLM
from rag.hostile import INSTRUCTIONS_NOTE, MARKUP_NOTE
from rag.llm import OpenAIChatLLM
from rag.pipeline import open_pipeline
from rag.settings import PROJECT_ROOT
from tests.fault_server import FaultServer
from tests.serving import rag_serve
from tests.test_generation import quoting
from tests.test_ui import SEMANTIC_HUB, TRANSLICO, smol  # noqa: F401  (smol: the live app fixture)
from ui.app import build_app, launch

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting:Warning", "ignore:The copy keyword is deprecated:Warning"),
]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = PROJECT_ROOT / "tests" / "artifacts"
SCREENSHOT = ARTIFACTS / "ui_answer.png"
COMPARISON = "Compare TransliCo and The Semantic Hub Hypothesis"  # what the picker's table is asked as
QUESTION = "What does TransliCo add to multilingual pretrained language models?"
SCRIPTED_REPLY = quoting  # the model writes each paper's first evidence sentence, word for word
ANSWER_TIMEOUT_MS = 300_000


def _browser_or_skip():
    in_ci = os.environ.get("CI", "").lower() == "true"
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install -y chromium"
        if in_ci:
            pytest.fail(message + " (required in CI)")
        pytest.skip(message)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if in_ci:
            pytest.fail("playwright is not installed: pip install playwright (never `playwright install`)")
        pytest.skip("playwright is not installed: pip install playwright")
    return sync_playwright


@pytest.fixture
def page(tmp_path):
    sync_playwright = _browser_or_skip()
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh user-data dir
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1360, "height": 1000},
        )
        try:
            page = context.new_page()
            page.outside = []  # requests that would leave this machine
            page.on(
                "request",
                lambda r: page.outside.append(r.url)
                if not re.match(r"^(https?|wss?)://(127\.0\.0\.1|localhost)[:/]|^(data|blob|about):", r.url)
                else None,
            )
            yield page
        finally:
            context.close()


def _open(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#rag-question textarea", timeout=60_000)


def _pick_comparison(page) -> None:
    """Pick TransliCo and the Semantic Hub paper in the comparison picker."""
    for name in ("TransliCo", "Semantic Hub Hypothesis"):
        page.click("#rag-compare input")
        page.keyboard.type(name)
        page.wait_for_selector(f'ul[role="listbox"] li:has-text("{name}")', timeout=10_000)
        page.keyboard.press("Enter")
    page.keyboard.press("Escape")


WATCH_STREAM = """() => {
    window.ragSawCursor = false;
    const chat = document.querySelector('#rag-chat');
    new MutationObserver(() => {
        if (chat.innerText.includes('▍')) window.ragSawCursor = true;
    }).observe(chat, {subtree: true, childList: true, characterData: true});
}"""


def _ask_and_wait(page) -> bool:
    """Press Ask and wait for the checked answer. Returns whether streamed text
    (a paper's evidence, with a cursor) was shown before it."""
    page.evaluate(WATCH_STREAM)
    page.click("#rag-send")
    started = time.monotonic()
    page.wait_for_selector("#rag-chat details.rag-source", timeout=ANSWER_TIMEOUT_MS)
    page.wait_for_function("() => !document.querySelector('#rag-chat').innerText.includes('▍')", timeout=ANSWER_TIMEOUT_MS)
    streamed = page.evaluate("() => window.ragSawCursor")
    print(f"\nchecked answer after {time.monotonic() - started:.1f} s; streamed text shown before it: {streamed}")
    return streamed


def _listed_papers(page) -> list[tuple[str, str]]:
    """(label, title) of each paper listed under the last answer."""
    last = page.locator("#rag-chat .rag-sources").last
    labels = last.locator(".rag-num")
    titles = last.locator(".rag-title")
    return [(labels.nth(i).inner_text().strip(), titles.nth(i).inner_text().strip()) for i in range(titles.count())]


def _expand_and_check(page, papers_by_title: dict, index: int = 0) -> int:
    """Click a listed title: its abstract opens, whole, with the given sentences in bold.
    Returns how many bold passages it has."""
    item = page.locator("#rag-chat .rag-sources").last.locator("details.rag-source").nth(index)
    abstract = item.locator(".rag-abstract")
    assert not abstract.is_visible()
    item.locator("summary").click()
    abstract.wait_for(state="visible", timeout=5_000)
    assert item.evaluate("el => el.open")
    paper = papers_by_title[item.locator(".rag-title").inner_text().strip()]
    whole = " ".join(paper.abstract.split())
    assert " ".join(abstract.inner_text().split()) == whole  # (an abstract with no hostile sentence)
    bold = abstract.locator("strong")
    for i in range(bold.count()):
        assert " ".join(bold.nth(i).inner_text().split()) in whole
    return bold.count()


def test_the_tiny_model_streams_an_answer_whose_papers_expand(smol, retriever, page):  # noqa: F811
    _open(page, smol["url"])
    # the first screen: what the corpus is, examples (a comparison, a follow-up), the model and its status
    assert f"{len(retriever.papers)} research-paper abstracts" in page.inner_text("#rag-intro")
    body = page.inner_text("body")
    assert "Compare TransliCo and the Semantic Hub Hypothesis" in body and "follow-up" in body
    assert "smollm2-135m" in page.inner_text("#rag-model") and "Embedded" in page.inner_text("#rag-model")
    page.wait_for_selector('#rag-llm-status [data-status="ready"]', timeout=60_000)

    page.fill("#rag-question textarea", QUESTION)
    assert _ask_and_wait(page), "the answer was not streamed"
    assert page.input_value("#rag-question textarea") == ""
    papers = {p.title: p for p in retriever.papers.values()}
    listed = _listed_papers(page)
    heading = page.locator("#rag-chat .rag-sources-heading").last.inner_text()
    print(f"{heading.split('(')[0].strip()}: {listed}")
    assert listed and all(title in papers for _, title in listed)
    if heading.startswith("Sources"):  # cited: each listed paper is cited in the text by its marker
        text = page.locator("#rag-chat .rag-sources").last.locator("xpath=..").inner_text().split("Sources")[0]
        assert all(label in text for label, _ in listed)
    else:  # refused: the closest papers, the named one among them
        assert heading.startswith("Closest papers") and TRANSLICO in {t for _, t in listed}
    _expand_and_check(page, papers)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui_answer_tiny_model.png"), full_page=True)

    # Retry regenerates the last answer in place; Clear empties the conversation
    page.evaluate(WATCH_STREAM)
    page.click("#rag-retry")
    page.wait_for_function("() => window.ragSawCursor", timeout=ANSWER_TIMEOUT_MS)
    page.wait_for_function(
        "() => !document.querySelector('#rag-chat').innerText.includes('▍') "
        "&& document.querySelectorAll('#rag-chat details.rag-source').length > 0",
        timeout=ANSWER_TIMEOUT_MS,
    )
    assert page.inner_text("#rag-chat").count(QUESTION) == 1
    page.click("#rag-clear")
    page.wait_for_function("() => !document.querySelector('#rag-chat details.rag-source')", timeout=10_000)
    assert page.outside == [], page.outside  # nothing was fetched from outside this machine


@pytest.fixture(params=["rag ui", "rag serve"])
def scripted(request, retriever, tmp_path):
    """The page as `rag ui` serves it (in this process), and as `rag serve` serves it
    beside the API (a subprocess), both answering through the scripted server."""
    with FaultServer("ok", reply=SCRIPTED_REPLY) as server:
        if request.param == "rag ui":
            settings = retriever.settings.changed(**{"llm_base_url": server.base_url, "ui_port": 0})
            llm = OpenAIChatLLM(settings, server.base_url, "scripted")
            app = build_app(open_pipeline(settings, retriever=retriever, llm=llm))
            yield {"url": launch(app, settings, block=False), "server": server}
            app.close()
            return
        env = {"RAG_STORAGE__DATA_DIR": str(retriever.settings.storage.data_dir), "RAG_LLM__BASE_URL": server.base_url,
               "RAG_LLM__MODEL": "scripted"}
        with rag_serve(env, tmp_path / "serve.log", timeout=120) as base:
            yield {"url": f"{base}/", "server": server}


def test_two_picked_papers_make_a_table_whose_cells_show_their_sentence(scripted, retriever, page):
    """Scripted replies (see the module docstring): the page, not the model, is under test."""
    _open(page, scripted["url"])
    model = page.inner_text("#rag-model")
    assert "External" in model and "scripted" in model and scripted["server"].base_url in model
    _pick_comparison(page)
    assert page.locator("#rag-table-csv").is_disabled()
    page.click("#rag-compare-run")
    page.wait_for_selector("#rag-chat table.rag-table", timeout=ANSWER_TIMEOUT_MS)
    page.wait_for_selector("#rag-chat details.rag-source", timeout=ANSWER_TIMEOUT_MS)
    assert scripted["server"].requests == 1  # the cells need no model; one call writes the differences
    assert COMPARISON in page.inner_text("#rag-chat")
    papers = {p.title: p for p in retriever.papers.values()}
    listed = _listed_papers(page)
    assert page.locator("#rag-chat .rag-sources-heading").last.inner_text().startswith("Sources")
    assert [title for _, title in listed] == [TRANSLICO, SEMANTIC_HUB] and [label for label, _ in listed] == ["[1]", "[2]"]

    # the table: a column per paper, a row per aspect; a cell clicked shows the sentence it is cut from
    table = page.locator("#rag-chat table.rag-table").last
    headers = [h.strip() for h in table.locator("thead th").all_inner_texts()]
    assert headers == ["aspect", "[1] TransliCo", "[2] The Semantic Hub Hypothesis"]
    rows = [r.strip() for r in table.locator("tbody th").all_inner_texts()]
    assert rows == ["problem", "approach", "data / benchmarks", "main result", "limitation"]
    for column, title in ((1, TRANSLICO), (2, SEMANTIC_HUB)):
        cell = table.locator("tbody tr").nth(1).locator("td").nth(column - 1)  # approach: every abstract states one
        source = cell.locator(".rag-cell-source")
        assert not source.is_visible()
        cell.locator("summary").click()
        source.wait_for(state="visible", timeout=5_000)
        sentence = source.inner_text().split("“", 1)[1].rstrip("”").strip()
        shown = cell.locator("summary").inner_text().rsplit("[", 1)[0].strip().rstrip("…")
        assert sentence in " ".join(papers[title].abstract.split())
        assert shown[1:].casefold() in sentence.casefold() and len(shown.split()) <= 20

    # the table downloads as CSV, a column per paper and a row per aspect
    page.wait_for_function("() => !document.querySelector('#rag-table-csv').disabled", timeout=10_000)
    with page.expect_download() as download:
        page.click("#rag-table-csv")
    lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    assert lines[0] == f'aspect,{TRANSLICO},{SEMANTIC_HUB}' and [line.split(",")[0] for line in lines[1:6]] == rows

    # clicking [1] opens that paper's evidence, the sentences the cells rest on highlighted
    evidence = page.locator("#rag-chat details.rag-source").nth(0)
    assert not evidence.evaluate("el => el.open")
    table.locator("thead .rag-cite").first.click()
    page.wait_for_function("() => document.querySelector('#rag-chat details.rag-source').open", timeout=5_000)
    marked = evidence.locator(".rag-evidence mark.rag-support")
    assert marked.count() >= 2 and marked.first.is_visible()
    assert " ".join(marked.first.inner_text().split()) in " ".join(papers[listed[0][1]].abstract.split())
    evidence.locator("summary").click()  # closed again
    _expand_and_check(page, papers, 1)
    page.locator("#rag-chat details.rag-source").nth(1).locator("summary").click()  # closed again
    assert _expand_and_check(page, papers, 0) >= 1  # the sentences sent to the model are bold
    page.locator("#rag-chat .rag-sources").last.locator("xpath=..").evaluate("el => el.scrollIntoView({block: 'start'})")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    print(f"screenshot: {SCREENSHOT}")
    assert page.outside == [], page.outside


@pytest.fixture
def uploadable(tmp_path, real_embedder, small_corpus):
    """The page on a small index of its own (the upload writes a new collection beside it)."""
    from rag.index import PaperIndex
    from rag.settings import Settings

    settings = Settings(data_dir=tmp_path / "data", ui_port=0)
    PaperIndex(settings, real_embedder).ingest(small_corpus, progress=False)
    with FaultServer("ok", reply=SCRIPTED_REPLY) as server:
        settings = settings.changed(**{"llm_base_url": server.base_url})
        llm = OpenAIChatLLM(settings, server.base_url, "scripted")
        pipeline = open_pipeline(settings, embedder=real_embedder, llm=llm)
        app = build_app(pipeline)
        url = launch(app, settings, block=False)
        yield {"url": url, "settings": settings}
        app.close()


def _upload(page, path: Path) -> str:
    """Choose a file in the upload panel (clearing the one shown, if any); returns
    the summary the page shows for it."""
    clear = page.locator('#rag-upload-file button[aria-label="Clear"]')
    if clear.count():
        clear.first.click()
    page.locator("#rag-upload-file input[type=file]").set_input_files(str(path))
    page.wait_for_function(
        f"() => (document.querySelector('#rag-upload-summary') || {{}}).innerText?.includes({path.name!r})",
        timeout=30_000,
    )
    return page.inner_text("#rag-upload-summary")


def test_a_file_uploaded_in_the_page_is_answered_from(uploadable, small_corpus, tmp_path, page):
    from rag.corpus import read_corpus

    bib = PROJECT_ROOT / "tests" / "data" / "zotero.bib"
    loaded = read_corpus([bib])
    paper = next(p for p in loaded.papers if p.title not in {q.title for q in small_corpus})
    _open(page, uploadable["url"])
    page.locator("#rag-upload .label-wrap").first.click()

    # a malformed file: the error, with its line, and nothing to add
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"title": "A", "abstract": "B"}\n{not json\n', encoding="utf-8")
    assert "broken.jsonl:2: not valid JSON" in _upload(page, broken)
    assert page.locator("#rag-upload-add").is_disabled()

    summary = _upload(page, bib)
    assert f"{len(loaded.papers)} papers found in zotero.bib" in summary
    assert f"{len(loaded.skipped)} skipped" in summary and "has no abstract" in summary
    page.click("#rag-upload-add")
    page.wait_for_function(
        "() => document.querySelector('#rag-upload-summary').innerText.includes('Collection my-papers')",
        timeout=120_000,
    )
    assert f"Indexed {len(loaded.papers)} papers" in page.inner_text("#rag-upload-summary")

    # the picker now points at the new collection: a question about the uploaded paper cites it
    page.fill("#rag-question textarea", f"What does {paper.title} propose?")
    page.click("#rag-send")
    page.wait_for_selector("#rag-chat details.rag-source", timeout=ANSWER_TIMEOUT_MS)
    listed = _listed_papers(page)
    assert [title for _, title in listed] == [paper.title]
    byline = page.locator("#rag-chat .rag-sources").last.locator("summary .rag-byline").first.inner_text()
    assert paper.byline in byline  # shown beside the title, without opening it

    # the scenario: "which of my papers from 2023 ...", with the year filter
    page.locator("#rag-scope .label-wrap").first.click()
    page.fill("#rag-year-from input", "2023")
    page.fill("#rag-year-to input", "2023")
    page.fill("#rag-question textarea", "Which of my papers from 2023 use contrastive learning?")
    answers = page.locator("#rag-chat .rag-sources").count()
    page.click("#rag-send")
    page.wait_for_function(
        f"() => document.querySelectorAll('#rag-chat .rag-sources').length > {answers}", timeout=ANSWER_TIMEOUT_MS
    )
    from_2023 = {p.title: p for p in loaded.papers if p.year == 2023}
    listed = [title for _, title in _listed_papers(page)]
    assert listed and set(listed) <= set(from_2023)
    bylines = page.locator("#rag-chat .rag-sources").last.locator("summary .rag-byline")
    assert bylines.count() == len(listed)
    for i in range(bylines.count()):
        assert "(2023)" in bylines.nth(i).inner_text()
    assert page.outside == [], page.outside


def OBEYING_REPLY(messages):  # noqa: N802  (a reply, as the scripted server takes it)
    """One faithful sentence, then everything the abstracts' injections demand."""
    return ObeyingLLM().complete(messages)


@pytest.fixture
def hostile_page(tmp_path, real_embedder):
    """The page on the hostile corpus of eval/hostile (a title with <img onerror>, an
    abstract with <script>, one with a Markdown image leaking the question), answered
    through a scripted server that obeys."""
    from rag.corpus import load_corpus
    from rag.index import PaperIndex
    from rag.settings import Settings

    settings = Settings(data_dir=tmp_path / "data", ui_port=0)
    PaperIndex(settings, real_embedder).ingest(load_corpus([PROJECT_ROOT / "eval" / "hostile" / "papers.jsonl"]), progress=False)
    with FaultServer("ok", reply=OBEYING_REPLY) as server:
        settings = settings.changed(**{"llm_base_url": server.base_url})
        app = build_app(open_pipeline(settings, embedder=real_embedder, llm=OpenAIChatLLM(settings, server.base_url, "scripted")))
        yield launch(app, settings, block=False)
        app.close()


def test_hostile_titles_abstracts_and_questions_never_run_or_fetch(hostile_page, page):
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    fetched: list[str] = []  # an <img src=x> that rendered would fetch .../x from the page's own host
    page.on("request", lambda r: fetched.append(r.url) if re.search(r"/x$|example\.invalid|reply\.png", r.url) else None)
    _open(page, hostile_page)
    questions = [
        'How does ColorNorm deal with stain colour differences between laboratories? <img src=x onerror=alert("question")>',
        "How does EchoSeg learn to segment the left ventricle without labels? ![q](http://example.invalid/q.png)",
        "Compare EchoSeg and ColorNorm",
    ]
    for number, question in enumerate(questions, start=1):
        page.fill("#rag-question textarea", question)
        page.click("#rag-send")
        page.wait_for_function(
            f"() => document.querySelectorAll('#rag-chat .rag-sources').length >= {number}", timeout=ANSWER_TIMEOUT_MS
        )
        for summary in page.locator("#rag-chat .rag-sources").last.locator("summary").all():
            summary.click()  # the abstracts open: their hostile sentences are left out, with a note
    page.wait_for_timeout(1_000)  # time for a handler or an image request to fire
    assert dialogs == [] and fetched == [] and page.outside == [], (dialogs, fetched, page.outside)
    chat = page.inner_text("#rag-chat")
    assert "<img src=x onerror=alert(1)>" in chat  # the hostile title, shown as text
    assert "alert(2)" not in chat and MARKUP_NOTE in chat  # the abstract's sentence with a script: left out, noted
    assert "example.invalid/collect" not in chat and INSTRUCTIONS_NOTE in chat  # the leaking image's sentence too
    assert 'onerror=alert("question")>' in chat and "![q](http://example.invalid/q.png)" in chat  # the questions
    assert "PWNED" not in chat and "document.domain" not in chat  # what the obeying model wrote was dropped
    remote = page.evaluate(
        "() => [...document.querySelectorAll('#rag-chat img, #rag-chat script, #rag-chat iframe')].map(e => e.outerHTML)"
        ".concat([...document.querySelectorAll('#rag-chat a')].map(a => a.href).filter(h => h.includes('example.invalid')))"
    )
    assert remote == []
