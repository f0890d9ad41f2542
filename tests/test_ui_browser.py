"""The chat page in a real browser: Debian's headless Chromium driven by Playwright.

The app is the same as in test_ui.py: the real index of the bundled corpus
and a REAL llama.cpp server with the tiny smollm2-135m model (no scripted
replies). The question is filled in by the page's comparison picker
(TransliCo and the Semantic Hub Hypothesis), which the tiny model answers
with citations of both papers. The test waits for the streamed words, then
for the checked answer, checks that the cited titles are listed under it and
that clicking one opens its abstract (sentences given to the model in bold),
and saves a screenshot to tests/artifacts/ui_answer.png.

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

from rag.settings import PROJECT_ROOT
from tests.test_ui import SEMANTIC_HUB, TRANSLICO, smol  # noqa: F401  (smol: the live app fixture)

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
SCREENSHOT = PROJECT_ROOT / "tests" / "artifacts" / "ui_answer.png"
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


def test_a_streamed_answer_shows_its_cited_papers_and_their_abstracts(smol, retriever, page):  # noqa: F811
    page.goto(smol["url"])
    page.wait_for_selector("#rag-question textarea", timeout=60_000)

    # the first screen: what the corpus is, examples, the model and its status
    intro = page.inner_text("#rag-intro")
    assert f"{len(retriever.papers)} research-paper abstracts" in intro
    assert "Compare TransliCo and the Semantic Hub Hypothesis" in page.inner_text("body")
    assert "follow-up" in page.inner_text("body")
    assert "smollm2-135m" in page.inner_text("#rag-model")
    page.wait_for_selector('#rag-llm-status [data-status="ready"]', timeout=60_000)

    # the comparison picker writes the question
    for name in ("TransliCo", "Semantic Hub Hypothesis"):
        page.click("#rag-compare input")
        page.keyboard.type(name)
        page.wait_for_selector(f'ul[role="listbox"] li:has-text("{name}")', timeout=10_000)
        page.keyboard.press("Enter")
    page.wait_for_function(
        "() => document.querySelector('#rag-question textarea').value.startsWith('Compare TransliCo and')",
        timeout=10_000,
    )
    question = page.input_value("#rag-question textarea")
    assert question == "Compare TransliCo and The Semantic Hub Hypothesis"

    page.click("#rag-send")
    started = time.monotonic()
    # streamed: the raw words appear (with a cursor) before the checked answer replaces them
    page.wait_for_function(
        "() => document.querySelector('#rag-chat').innerText.includes('▍')", timeout=ANSWER_TIMEOUT_MS, polling=50
    )
    streamed_after = time.monotonic() - started
    page.wait_for_selector("#rag-chat details.rag-source", timeout=ANSWER_TIMEOUT_MS)
    print(f"\nfirst streamed words after {streamed_after:.1f} s, checked answer after {time.monotonic() - started:.1f} s")
    assert "▍" not in page.inner_text("#rag-chat")

    heading = page.inner_text("#rag-chat .rag-sources-heading")
    assert heading.startswith("Sources"), f"the tiny model did not cite: {page.inner_text('#rag-chat')[:800]}"
    summaries = page.locator("#rag-chat details.rag-source summary")
    cited = [
        (page.locator("#rag-chat details.rag-source .rag-num").nth(i).inner_text(), summaries.nth(i).locator(".rag-title").inner_text())
        for i in range(summaries.count())
    ]
    print("cited:", cited)
    titles = {p.title: p for p in retriever.papers.values()}
    assert cited and all(title in titles for _, title in cited)
    assert {TRANSLICO, SEMANTIC_HUB} & {title for _, title in cited}
    chat_text = page.inner_text("#rag-chat")
    for number, _ in cited:  # every listed source is cited in the text by its marker
        assert number in chat_text.split("Sources")[0]

    # a title expands to its abstract; the sentences given to the model are bold
    first = page.locator("#rag-chat details.rag-source").first
    abstract = first.locator(".rag-abstract")
    assert not abstract.is_visible()
    first.locator("summary").click()
    page.wait_for_function(
        "() => document.querySelector('#rag-chat details.rag-source').open", timeout=5_000
    )
    assert abstract.is_visible()
    paper = titles[cited[0][1]]
    assert " ".join(abstract.inner_text().split()) == " ".join(paper.abstract.split())
    bold = abstract.locator("strong")
    assert bold.count() >= 1
    for i in range(bold.count()):
        assert " ".join(bold.nth(i).inner_text().split()) in " ".join(paper.abstract.split())

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    print(f"screenshot: {SCREENSHOT}")

    # Clear empties the conversation; nothing was fetched from outside this machine
    page.click("#rag-clear")
    page.wait_for_function("() => !document.querySelector('#rag-chat details.rag-source')", timeout=10_000)
    assert page.outside == [], page.outside
