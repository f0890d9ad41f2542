"""Collections: named corpora side by side, each with its own index and build
record; adding papers to one keeps its others; deleting one never touches
another; the CLI's --collection and `rag collections`; the workspace switches
to a collection's new index after an ingest, without a restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main
from rag.collections import delete_collection, describe_collections
from rag.corpus import read_corpus
from rag.errors import SettingsError, StoreError
from rag.index import PaperIndex
from rag.pipeline import Workspace, open_pipeline
from rag.retrieval import Retriever
from tests.conftest import write_jsonl
from tests.test_generation import ScriptedLLM, quoting


@pytest.fixture
def two_collections(settings, embedder, bundled_papers):
    """'default' holds papers 0-7, 'mine' papers 8-13 (real vectors, one embedded store)."""
    default = PaperIndex(settings, embedder)
    default.ingest(bundled_papers[:8], progress=False)
    mine = PaperIndex(settings.for_collection("mine"), embedder)
    mine.ingest(bundled_papers[8:14], progress=False)
    return default, mine


def titles_found(index: PaperIndex, question: str) -> set[str]:
    return {p.title for p in Retriever(index, index.settings).search(question, k=20).papers}


def test_each_collection_searches_only_its_own_papers(two_collections, bundled_papers):
    default, mine = two_collections
    for paper in bundled_papers[:14]:
        in_default = paper.title in titles_found(default, paper.title)
        in_mine = paper.title in titles_found(mine, paper.title)
        assert (in_default, in_mine) == ((True, False) if paper in bundled_papers[:8] else (False, True))


def test_collections_are_listed_with_counts_and_deleting_one_leaves_the_other(two_collections, settings, bundled_papers):
    default, mine = two_collections
    listed = {c.name: c for c in describe_collections(settings)}
    assert (listed["default"].papers, listed["mine"].papers) == (8, 6)
    assert listed["mine"].embedding_model == default.embedder.name

    before = titles_found(default, bundled_papers[0].title)
    delete_collection(settings, "mine", mine)
    assert [c.name for c in describe_collections(settings)] == ["default"]
    assert not (settings.storage.data_dir / "collections" / "mine").exists()
    assert not [c for c in default.client.list_collections() if c.name.startswith("papers-mine")]
    assert titles_found(default, bundled_papers[0].title) == before
    with pytest.raises(StoreError, match="there is no collection 'mine'"):
        delete_collection(settings, "mine", mine)


def test_a_collection_name_must_be_simple(settings):
    with pytest.raises(SettingsError, match="collection"):
        settings.for_collection("../escape")
    with pytest.raises(SettingsError, match="collection"):
        settings.for_collection("Upper Case")


def test_adding_papers_keeps_the_others_and_embeds_only_what_is_new(settings, embedder, bundled_papers):
    index = PaperIndex(settings.for_collection("reading-list"), embedder)
    index.ingest(bundled_papers[:5], progress=False)
    embedder.embedded.clear()
    report = index.ingest(bundled_papers[4:7], progress=False, keep_others=True)
    assert (report.papers, report.reused_papers, report.removed_papers, report.embedded_papers) == (7, 5, 0, 2)
    assert all(t.startswith((bundled_papers[5].title, bundled_papers[6].title)) for t in embedder.embedded)
    # without keep_others the files replace the collection, as `rag ingest` always did
    report = index.ingest(bundled_papers[4:7], progress=False)
    assert (report.papers, report.removed_papers) == (3, 4)


def test_the_workspace_answers_from_a_collection_after_it_is_ingested(settings, embedder, bundled_papers):
    PaperIndex(settings, embedder).ingest(bundled_papers[:5], progress=False)
    pipeline = open_pipeline(settings, embedder=embedder, llm=ScriptedLLM(quoting))
    workspace = Workspace(pipeline)
    with pytest.raises(StoreError, match="no index yet for collection 'uploads'"):
        workspace.pipeline("uploads")
    new = bundled_papers[20]
    workspace.ingest("uploads", [new])
    answer = workspace.pipeline("uploads").engine.ask(f"What does {new.title} propose?")
    assert answer.cited_titles == [new.title]
    assert workspace.names() == ["default", "uploads"]
    # the default collection did not change
    assert set(workspace.pipeline().titles) == {p.title for p in bundled_papers[:5]}
    # adding more switches the open pipeline to the new generation
    newer = bundled_papers[21]
    workspace.ingest("uploads", [newer])
    assert set(workspace.pipeline("uploads").titles) == {new.title, newer.title}


def test_the_cli_takes_a_collection_on_every_command(tmp_path, bundled_papers, capsys):
    data = tmp_path / "data"
    corpus = write_jsonl(tmp_path / "mine.jsonl", bundled_papers[30:33])
    assert main(["ingest", "--quiet", "--data-dir", str(data), "--collection", "mine", str(corpus)]) == 0
    assert main(["ingest", "--quiet", "--data-dir", str(data), "--collection", "mine"]) == 1
    assert "name the files to ingest into collection 'mine'" in capsys.readouterr().err

    assert main(["search", "--data-dir", str(data), "--collection", "mine", "--json", bundled_papers[31].title]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["papers"][0]["title"] == bundled_papers[31].title
    assert {p["title"] for p in found["papers"]} <= {p.title for p in bundled_papers[30:33]}

    assert main(["collections", "--data-dir", str(data), "--json"]) == 0
    listed = {c["name"]: c["papers"] for c in json.loads(capsys.readouterr().out)}
    assert listed == {"default": 0, "mine": 3}

    assert main(["search", "--data-dir", str(data), "anything"]) == 1  # the default one was never ingested
    assert "no index yet for collection 'default'" in capsys.readouterr().err
    assert main(["collections", "--data-dir", str(data), "--delete", "mine"]) == 0
    assert main(["search", "--data-dir", str(data), "--collection", "mine", "anything"]) == 1


DATA = Path(__file__).parent / "data"


def test_a_reexported_bib_embeds_only_the_entries_that_changed(settings, embedder):
    index = PaperIndex(settings.for_collection("zotero"), embedder)
    first = read_corpus([DATA / "zotero.bib"]).papers
    index.ingest(first, progress=False)
    again = read_corpus([DATA / "zotero-reexport.bib"]).papers
    before = {p.id: p.content_hash for p in first}
    changed = [p for p in again if before.get(p.id) != p.content_hash]
    assert len(changed) == 2  # the sample's edited abstract and its added entry
    embedder.embedded.clear()
    report = index.ingest(again, progress=False)
    assert (report.embedded_papers, report.reused_papers) == (2, len(again) - 2)
    assert {text.split("\n")[0] for text in embedder.embedded} <= {p.title for p in changed}


def test_an_arxiv_listing_is_selected_at_ingest_and_filtered_at_search(tmp_path, capsys):
    data = tmp_path / "data"
    listing = DATA / "arxiv-sample.jsonl"
    base = ["--data-dir", str(data), "--collection", "arxiv"]
    assert main(["ingest", "--quiet", *base, str(listing), "--category", "cs.CL", "--category", "cs.LG", "--since", "2020-01-01"]) == 0
    printed = capsys.readouterr()
    assert "not selected" in printed.err
    assert main(["search", *base, "--json", "--k", "20", "language models"]) == 0
    found = json.loads(capsys.readouterr().out)["papers"]
    assert found
    for paper in found:
        assert paper["year"] >= 2020 and {"cs.CL", "cs.LG"} & set(paper["categories"])
        assert paper["url"].startswith(("https://arxiv.org/abs/", "https://doi.org/")) and paper["authors"]

    assert main(["search", *base, "--json", "--k", "20", "--years", "2023-2023", "--category", "cs.cl", "language models"]) == 0
    found = json.loads(capsys.readouterr().out)["papers"]
    assert found and all(p["year"] == 2023 and "cs.CL" in p["categories"] for p in found)

    assert main(["search", *base, "--author", "Nobody Atall", "language models"]) == 1
    assert "no paper in this collection matches author 'Nobody Atall'" in capsys.readouterr().err
