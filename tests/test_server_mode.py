"""Server mode against a real `chroma run` on 127.0.0.1."""

import pytest

from cli.main import main as rag_main
from rag.index import PaperIndex, StoreError
from rag.retrieval import Retriever
from rag.net import free_port
from rag.settings import Settings
from tests.conftest import write_jsonl


def test_ingest_and_search_through_a_chroma_server(chroma_server, tmp_path, embedder, small_corpus):
    settings = Settings(data_dir=tmp_path / "client", chroma_url=chroma_server)
    index = PaperIndex(settings, embedder)
    report = index.ingest(small_corpus, progress=False)
    assert report.embedded_papers == 12
    assert index.info()["mode"] == "server"
    # the client's own folder holds no store: the data lives in the server
    assert not (tmp_path / "client" / "chroma").exists()

    embedder.embedded.clear()
    assert not PaperIndex(settings, embedder).ingest(small_corpus, progress=False).changed
    assert embedder.embedded == []

    target = small_corpus[7]
    result = Retriever(PaperIndex(settings, embedder), settings).search(target.abstract[:200], k=3)
    assert result.papers[0].title == target.title


def test_cli_against_the_server(chroma_server, tmp_path, small_corpus, capsys):
    corpus = write_jsonl(tmp_path / "c.jsonl", small_corpus)
    data = str(tmp_path / "data")
    assert rag_main(["ingest", "--quiet", "--data-dir", data, "--chroma-url", chroma_server, str(corpus)]) == 0
    assert rag_main(["info", "--json", "--data-dir", data, "--chroma-url", chroma_server]) == 0
    assert '"papers": 12' in capsys.readouterr().out


def test_an_unreachable_server_is_a_clear_error(tmp_path, embedder, small_corpus):
    settings = Settings(data_dir=tmp_path, chroma_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StoreError, match="cannot reach the Chroma server"):
        PaperIndex(settings, embedder).ingest(small_corpus, progress=False)


def test_a_second_writer_to_the_same_server_gets_a_clear_message(chroma_server, tmp_path, embedder, small_corpus):
    # Two machines would have two data folders: only the server-side lock can stop the second.
    first = PaperIndex(Settings(data_dir=tmp_path / "one", chroma_url=chroma_server), embedder)
    second = PaperIndex(Settings(data_dir=tmp_path / "two", chroma_url=chroma_server), embedder)
    with first.writer_lock():
        with pytest.raises(StoreError, match=r"another ingest \(process \d+ on .*\) is writing to the Chroma server"):
            second.ingest(small_corpus, progress=False)
    assert second.ingest(small_corpus, progress=False).embedded_papers == 12  # the lock is released


def test_collections_on_a_chroma_server_are_kept_apart_and_filtered_there(chroma_server, tmp_path, embedder, small_corpus):
    import dataclasses

    from rag.collections import delete_collection
    from rag.filters import PaperFilter

    settings = Settings(data_dir=tmp_path / "client", chroma_url=chroma_server)
    dated = [dataclasses.replace(p, year=2020 + i % 3) for i, p in enumerate(small_corpus)]
    default = PaperIndex(settings, embedder)
    default.ingest(dated[:6], progress=False)
    other = PaperIndex(settings.for_collection("other"), embedder)
    other.ingest(dated[6:], progress=False)

    result = Retriever(other, other.settings).search("language models", k=10, paper_filter=PaperFilter(year_from=2021, year_to=2021))
    assert result.papers and all(p.paper.year == 2021 for p in result.papers)
    assert {p.title for p in result.papers} <= {p.title for p in dated[6:]}

    delete_collection(settings, "other", other)
    names = [c.name for c in default.client.list_collections()]
    assert not [n for n in names if n.startswith("papers-other")] and [n for n in names if n.startswith("papers__g")]
    found = Retriever(default, settings).search(dated[2].title, k=3)
    assert found.papers[0].title == dated[2].title
