"""The page's upload panel, through its handlers (the real browser test is in
test_ui_browser.py): what a file holds is shown before anything is written; a
file is added to a new or existing collection, and questions on it use the new
index with no restart; the chat answers while an upload ingests; size limits,
bad names and malformed files are messages; the panel can be turned off."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from rag.corpus import read_corpus
from rag.index import PaperIndex
from rag.pipeline import EmbedderWrapper, Workspace, open_pipeline
from tests.test_generation import ScriptedLLM, quoting
from ui.app import build_app
from ui.handlers import ChatHandlers

pytestmark = pytest.mark.filterwarnings("ignore:.*no_silent_downcasting:Warning")

DATA = Path(__file__).parent / "data"
REPLY = quoting  # the model writes each paper's first evidence sentence


class SlowEmbedder(EmbedderWrapper):
    """Fault injection: the real embedder, slower by `delay` seconds per batch of
    passages, so an upload's ingest is still running while the chat is used."""

    def __init__(self, inner, delay: float):
        super().__init__(inner)
        self.delay = delay
        self.batches = 0

    def embed(self, texts):
        if len(texts) > 1:  # a batch of passages, not a question
            self.batches += 1
            time.sleep(self.delay)
        return self.inner.embed(texts)


@pytest.fixture
def handlers(settings, embedder, small_corpus):
    PaperIndex(settings, embedder).ingest(small_corpus, progress=False)
    pipeline = open_pipeline(settings, embedder=embedder, llm=ScriptedLLM(REPLY))
    return ChatHandlers(Workspace(pipeline))


def copy_to(tmp_path: Path, name: str, text: str | None = None, source: str | None = None) -> str:
    """A file as Gradio hands an upload over: in a folder of its own, under its own name."""
    folder = tmp_path / "gradio" / "a1b2c3"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if source:
        shutil.copy(DATA / source, path)
    else:
        path.write_text(text or "", encoding="utf-8")
    return str(path)


def test_a_file_is_summarised_before_anything_is_written(handlers, tmp_path, settings):
    path = copy_to(tmp_path, "zotero.bib", source="zotero.bib")
    loaded = read_corpus([path])
    summary, button = handlers.preview_upload(path)
    assert f"<b>{len(loaded.papers)}</b> papers found in zotero.bib" in summary
    assert f"{len(loaded.skipped)} skipped" in summary
    for entry in loaded.skipped:  # each named with its line and reason, without the server's folder
        reason = entry.reason.replace(str(Path(path).parent) + "/", "")
        assert f"zotero.bib:{entry.line}: {entry.label} {reason}" in summary
    assert str(tmp_path) not in summary
    assert button["interactive"] is True
    assert not (settings.storage.data_dir / "collections").exists()


def test_a_malformed_file_is_an_error_naming_the_line_and_nothing_can_be_added(handlers, tmp_path):
    good = '{"title": "A", "abstract": "B"}\n'
    path = copy_to(tmp_path, "broken.jsonl", good + "{not json\n")
    summary, button = handlers.preview_upload(path)
    assert "broken.jsonl:2: not valid JSON" in summary and "rag-error" in summary
    assert str(tmp_path) not in summary and button["interactive"] is False
    result, collection = handlers.add_upload(path, "mine")
    assert "broken.jsonl:2" in result and not (handlers.settings.storage.data_dir / "collections" / "mine").exists()


def test_a_file_over_the_size_limit_is_refused(settings, embedder, small_corpus, tmp_path):
    settings = settings.changed(**{"max_upload_mb": 0.001})
    PaperIndex(settings, embedder).ingest(small_corpus[:2], progress=False)
    handlers = ChatHandlers(Workspace(open_pipeline(settings, embedder=embedder, llm=ScriptedLLM(REPLY))))
    path = copy_to(tmp_path, "zotero.bib", source="zotero.bib")
    summary, button = handlers.preview_upload(path)
    assert "the limit is 0.001 MB (setting max_upload_mb)" in summary and button["interactive"] is False


def test_a_collection_name_that_cannot_be_one_is_a_message(handlers, tmp_path):
    path = copy_to(tmp_path, "zotero.bib", source="zotero.bib")
    result, collection = handlers.add_upload(path, "../../etc")
    assert "cannot name a collection" in result and "rag-error" in result


def test_an_upload_goes_into_a_new_collection_that_answers_at_once(handlers, tmp_path, small_corpus):
    path = copy_to(tmp_path, "zotero.bib", source="zotero.bib")
    uploaded = read_corpus([path]).papers
    result, collection = handlers.add_upload(path, "mine")
    assert "✓ Collection <b>mine</b>" in result and f"Indexed {len(uploaded)} papers" in result
    assert collection["value"] == "mine" and ("mine · 7 papers", "mine") in collection["choices"]
    picker, intro = handlers.switch_collection("mine")  # the page now says what "mine" holds
    assert len(picker["choices"]) == len(uploaded) and "7 research-paper abstracts** (collection *mine*)" in intro

    paper = next(p for p in uploaded if p.title not in {q.title for q in small_corpus})
    answer = handlers.ask(f"What does {paper.title} propose?", collection="mine")
    assert answer["cited_titles"] == [paper.title]
    assert answer["sources"][0]["authors"] == paper.authors and answer["sources"][0]["year"] == paper.year
    # the default collection is untouched
    answer = handlers.ask(f"What does {paper.title} propose?")
    assert paper.title not in answer["cited_titles"]


def test_the_chat_answers_while_an_upload_ingests(settings, real_embedder, small_corpus, tmp_path):
    slow = SlowEmbedder(real_embedder, delay=1.0)
    PaperIndex(settings.changed(**{"embedding_batch_size": 2}), slow).ingest(small_corpus[:4], progress=False)
    settings = settings.changed(**{"embedding_batch_size": 2})
    handlers = ChatHandlers(Workspace(open_pipeline(settings, embedder=slow, llm=ScriptedLLM(REPLY))))
    path = copy_to(tmp_path, "zotero.bib", source="zotero.bib")
    done = {}
    upload = threading.Thread(target=lambda: done.setdefault("result", handlers.add_upload(path, "mine")))
    slow.batches = 0
    upload.start()
    while slow.batches == 0:  # the ingest is embedding
        time.sleep(0.05)
    answer = handlers.ask(f"What does {small_corpus[0].title} propose?")
    assert upload.is_alive(), "the answer came while the upload was still ingesting"
    assert answer["cited_titles"] == [small_corpus[0].title]
    upload.join(timeout=120)
    assert "✓ Collection <b>mine</b>" in done["result"][0]


def test_the_upload_panel_can_be_turned_off(settings, embedder, small_corpus):
    PaperIndex(settings, embedder).ingest(small_corpus[:2], progress=False)
    for enabled in (True, False):
        changed = settings.changed(**{"uploads_enabled": enabled})
        app = build_app(open_pipeline(changed, embedder=embedder, llm=ScriptedLLM(REPLY)))
        ids = {getattr(block, "elem_id", None) for block in app.blocks.values()}
        assert ("rag-upload-file" in ids) is enabled
        assert "rag-collection" in ids


class FailingEmbedder(SlowEmbedder):
    """Fault injection: the real embedder, failing on the second batch of passages."""

    def embed(self, texts):
        if len(texts) > 1:
            self.batches += 1
            if self.batches == 2:
                raise RuntimeError("the embedder died")
        return self.inner.embed(texts)


def test_a_failed_upload_loses_nothing(settings, real_embedder, small_corpus, tmp_path):
    settings = settings.changed(**{"embedding_batch_size": 2})
    failing = FailingEmbedder(real_embedder, delay=0)
    PaperIndex(settings.for_collection("mine"), real_embedder).ingest(small_corpus[:3], progress=False)
    PaperIndex(settings, real_embedder).ingest(small_corpus[3:5], progress=False)
    handlers = ChatHandlers(Workspace(open_pipeline(settings, embedder=failing, llm=ScriptedLLM(REPLY))))
    path = copy_to(tmp_path, "zotero.bib", source="zotero.bib")
    result, collection = handlers.add_upload(path, "mine")
    assert "unexpected internal error (RuntimeError: the embedder died)" in result and "rag-error" in result
    assert set(handlers.workspace.pipeline("mine").titles) == {p.title for p in small_corpus[:3]}
    answer = handlers.ask(f"What does {small_corpus[1].title} propose?", collection="mine")
    assert answer["cited_titles"] == [small_corpus[1].title]
