"""Faults and `rag check`: what an interrupted ingest leaves is found by the
check and removed by the next ingest; a damaged index fails the check, naming
the damage."""

from __future__ import annotations

import json
import shutil

import pytest

from benchmarks.reliability_faults import chroma_stop_case, concurrent_ingest_case, llm_kill_case
from cli.main import main as rag_main
from rag.catalog import Catalog
from rag.check import check_index
from rag.index import PaperIndex
from tests.conftest import CountingEmbedder


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt  # what a kill at this point leaves, without killing the test


def test_a_fresh_index_is_consistent_and_the_cli_says_so(settings, embedder, small_corpus, capsys):
    PaperIndex(settings, embedder).ingest(small_corpus, progress=False)
    report = check_index(settings)
    assert report.ok and report.papers == 12 and report.chunks > 12
    assert report.pending_cleanup == [] and report.incomplete_papers == []
    assert rag_main(["check", "--data-dir", str(settings.storage.data_dir)]) == 0
    assert "12 papers" in capsys.readouterr().out
    assert rag_main(["check", "--json", "--data-dir", str(settings.storage.data_dir)]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_no_index_fails_the_check(settings, capsys):
    assert rag_main(["check", "--data-dir", str(settings.storage.data_dir)]) == 1
    assert "no index" in capsys.readouterr().out


def test_missing_vectors_and_bm25_entries_name_the_papers(settings, embedder, small_corpus, capsys):
    index = PaperIndex(settings, embedder)
    index.ingest(small_corpus, progress=False)
    snapshot = index.open_snapshot()
    damaged = small_corpus[4]
    snapshot.collection.delete(ids=snapshot.catalog.chunk_ids_of([damaged.id])[:1])
    report = check_index(settings, client=index.client)
    assert not report.ok and report.incomplete_papers == [damaged.id]
    assert any(damaged.title[:40] in p and "Chroma" in p for p in report.problems), report.problems

    shutil.rmtree(index.lexical_folder(snapshot.generation, "titles"))
    report = check_index(settings, client=index.client)
    assert any("BM25 titles index" in p and "cannot be read" in p for p in report.problems), report.problems


def test_an_orphan_collection_fails_the_check(settings, embedder, small_corpus):
    index = PaperIndex(settings, embedder)
    index.ingest(small_corpus, progress=False)
    index.client.create_collection("papers-gone__gdeadbeef0000", embedding_function=None)
    index.client.create_collection("someone-else", embedding_function=None)  # not named for this data folder
    report = check_index(settings, client=index.client)
    assert [p for p in report.problems if "orphan" in p] == [
        f"orphan Chroma collection 'papers-gone__gdeadbeef0000' in the store: collection 'gone' has no catalog in {settings.storage.data_dir}"
    ]


def test_a_named_collection_is_checked_and_its_removed_folder_leaves_an_orphan(settings, embedder, small_corpus, capsys):
    other = PaperIndex(settings.for_collection("other"), embedder)
    other.ingest(small_corpus[:4], progress=False)
    assert rag_main(["check", "--collection", "other", "--data-dir", str(settings.storage.data_dir)]) == 0
    assert "collection 'other': generation 1, 4 papers" in capsys.readouterr().out
    shutil.rmtree(settings.for_collection("other").collection_dir)  # its Chroma collection stays behind
    assert rag_main(["check", "--data-dir", str(settings.storage.data_dir)]) == 1
    assert "orphan Chroma collection 'papers-other__g" in capsys.readouterr().out


def test_a_rebuild_killed_before_its_collection_exists_does_not_block_the_next_ingest(
    settings, real_embedder, small_corpus, bundled_papers, monkeypatch
):
    # The new build's vector ids are recorded first, then its collection is created:
    # a kill in between left garbage rows naming a collection that does not exist
    # (the next ingest failed on it: "Collection ... does not exist").
    PaperIndex(settings, CountingEmbedder(real_embedder, name="model-a")).ingest(small_corpus, progress=False)
    rebuilding = PaperIndex(settings, CountingEmbedder(real_embedder, name="model-b"))
    monkeypatch.setattr(type(rebuilding.client), "get_or_create_collection", _interrupt)
    with pytest.raises(KeyboardInterrupt):
        rebuilding.ingest(bundled_papers[20:26], progress=False)
    monkeypatch.undo()
    assert check_index(settings).ok

    report = PaperIndex(settings, CountingEmbedder(real_embedder, name="model-b")).ingest(small_corpus, progress=False)
    assert report.rebuilt
    after = check_index(settings)
    assert after.ok and after.pending_cleanup == [], after.lines()


def test_a_rebuild_killed_after_its_commit_is_cleaned_by_an_unchanged_ingest(
    settings, real_embedder, small_corpus, monkeypatch
):
    PaperIndex(settings, CountingEmbedder(real_embedder, name="model-a")).ingest(small_corpus, progress=False)
    rebuilding = PaperIndex(settings, CountingEmbedder(real_embedder, name="model-b"))
    original = PaperIndex._collect_garbage

    def killed_after_commit(self, catalog, after_commit):
        if after_commit:
            raise KeyboardInterrupt
        original(self, catalog, after_commit)

    monkeypatch.setattr(PaperIndex, "_collect_garbage", killed_after_commit)
    with pytest.raises(KeyboardInterrupt):
        rebuilding.ingest(small_corpus, progress=False)
    monkeypatch.undo()
    left = check_index(settings)
    assert left.ok, left.lines()
    assert any("of an interrupted or replaced build" in p for p in left.pending_cleanup), left.lines()

    # nothing changed, so nothing is embedded; but the old build's collection goes
    assert not PaperIndex(settings, CountingEmbedder(real_embedder, name="model-b")).ingest(small_corpus, progress=False).changed
    after = check_index(settings)
    assert after.ok and after.pending_cleanup == [], after.lines()


def test_vectors_nothing_records_fail_the_check(settings, embedder, small_corpus):
    index = PaperIndex(settings, embedder)
    index.ingest(small_corpus, progress=False)
    snapshot = index.open_snapshot()
    snapshot.collection.add(ids=["stray@0#0"], embeddings=[[0.1] * 384])
    report = check_index(settings, client=index.client)
    assert report.problems == [
        f"1 vector(s) in Chroma collection {index.info()['chroma_collection']!r} belong to no paper "
        "and are not recorded for deletion"
    ]
    catalog = Catalog(index.catalog_path)
    catalog.expect_vectors(["stray@0#0"], index.info()["chroma_collection"])  # what an ingest records first
    catalog.close()
    report = check_index(settings, client=index.client)
    assert report.ok and report.pending_cleanup == ["1 vector(s) of an interrupted ingest"]


def test_the_check_waits_for_no_running_ingest(settings, embedder, small_corpus, capsys):
    index = PaperIndex(settings, embedder)
    index.ingest(small_corpus, progress=False)
    with index.writer_lock():
        assert rag_main(["check", "--data-dir", str(settings.storage.data_dir)]) == 1
    assert "another ingest is running" in capsys.readouterr().err


# --- processes killed or stopped (benchmarks/reliability_faults.py's cases) ------------


@pytest.mark.slow
def test_the_llm_server_killed_during_an_answer_gives_the_passages_and_restarts(tmp_path):
    case = llm_kill_case(tmp_path)
    assert case["failures"] == [], case
    assert case["error_kind"] == "unreachable"
    assert "stopped: server exited with code -9" in case["reason_shown"], case


@pytest.mark.slow
def test_the_chroma_server_stopped_during_queries_is_a_message_and_queries_resume(tmp_path):
    case = chroma_stop_case(tmp_path)
    assert case["failures"] == [], case
    assert case["store_errors"] > 0  # queries met the stopped server: each got the message, none a traceback
    assert case["message"].startswith("error: ") and "Chroma server at http://127.0.0.1:" in case["message"]


@pytest.mark.slow
def test_a_second_ingest_is_refused_while_one_runs_and_nothing_interleaves(tmp_path):
    case = concurrent_ingest_case(tmp_path)
    assert case["failures"] == [], case
    assert case["data_lost"] == 0


@pytest.mark.slow
def test_the_llm_server_restarts_once_per_death_and_never_after_a_failed_start(tmp_path, monkeypatch):
    from rag import local_llm
    from rag.errors import LocalModelError
    from rag.local_llm import LocalLLMServer
    from tests.test_local_llm import smol_settings

    with LocalLLMServer(smol_settings(tmp_path)) as server:
        server.wait_ready(120)
        assert not server.restart_if_crashed()  # alive: nothing to do
        first = server.process
        first.kill()
        first.wait()
        assert server.status.startswith("failed: server exited with code -9")
        assert server.restart_if_crashed()
        assert server.wait_ready(120) == server.base_url and server.process.pid != first.pid
        assert not server.restart_if_crashed()

        # A death whose restart fails is not retried: the next request gets the reason at once.
        def unavailable(settings):
            raise LocalModelError("model 'smollm2-135m' is not available")

        monkeypatch.setattr(local_llm, "model_file", unavailable)
        server.process.kill()
        server.process.wait()
        with pytest.raises(LocalModelError, match="not available"):
            server.restart_if_crashed()
        assert not server.restart_if_crashed()
        assert server.status == "failed: model 'smollm2-135m' is not available"
