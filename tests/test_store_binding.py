"""An index is bound to its vector store: a server's indexes and the embedded one
share a data folder without touching each other, and a catalog is never read
against another store's vectors (issue: the test command overwrote the user's index)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import main as rag_main
from rag.catalog import Catalog
from rag.check import check_index
from rag.errors import StoreError
from rag.index import PaperIndex
from rag.settings import Settings
from rag.stores import StoreIdentity
from tests.conftest import write_jsonl

pytestmark = pytest.mark.slow


def test_a_store_identity_names_the_server_or_the_embedded_folder(tmp_path):
    embedded = StoreIdentity.of(Settings(data_dir=tmp_path))
    assert embedded.kind == "embedded" and embedded.location == str((tmp_path / "chroma").resolve())
    a = StoreIdentity.of(Settings(data_dir=tmp_path, chroma_url="http://127.0.0.1:8000"))
    assert a.same_store(StoreIdentity.of(Settings(data_dir=tmp_path, chroma_url="http://127.0.0.1:8000/")))
    assert a.same_store(StoreIdentity.of(Settings(data_dir=tmp_path, chroma_url="HTTP://127.0.0.1")))
    assert not a.same_store(StoreIdentity.of(Settings(data_dir=tmp_path, chroma_url="http://127.0.0.1:8001")))
    assert not a.same_store(embedded) and not embedded.same_store(a)
    assert StoreIdentity.recorded({"store": a.to_state()}) == a
    assert StoreIdentity.recorded({}) is None


def test_each_store_has_its_own_folder_of_catalogs(tmp_path):
    embedded = Settings(data_dir=tmp_path)
    server = Settings(data_dir=tmp_path, chroma_url="http://127.0.0.1:8000")
    assert embedded.collection_dir == tmp_path
    assert server.collection_dir == tmp_path / "stores" / "http-127.0.0.1-8000"
    assert server.for_collection("mine").collection_dir == tmp_path / "stores" / "http-127.0.0.1-8000" / "collections" / "mine"


def test_a_catalog_of_another_store_is_a_clear_error_and_a_check_problem(chroma_server, tmp_path, embedder, small_corpus):
    data = tmp_path / "data"
    on_server = Settings(data_dir=data, chroma_url=chroma_server)
    PaperIndex(on_server, embedder).ingest(small_corpus[:3], progress=False)
    # the server's catalog put where the embedded index's belongs (as a shared folder once did)
    embedded = Settings(data_dir=data)
    (data / "index").mkdir(parents=True)
    shutil.copy(on_server.collection_dir / "index" / "catalog.sqlite", data / "index" / "catalog.sqlite")

    with pytest.raises(StoreError) as caught:
        PaperIndex(embedded, embedder).open_snapshot()
    message = str(caught.value)
    assert f"the Chroma server at {chroma_server}" in message and "the embedded Chroma store" in message
    assert f"--chroma-url {chroma_server}" in message and "`rag ingest` to rebuild it on this store" in message
    assert "\n" not in message

    report = check_index(embedded)
    assert not report.ok and "was built on the Chroma server" in report.problems[0]

    # the fix it names: an ingest rebuilds on this store, and the index answers from it
    ingest = PaperIndex(embedded, embedder).ingest(small_corpus[:3], progress=False)
    assert ingest.rebuilt and "built on the Chroma server" in ingest.reason
    assert check_index(embedded).ok
    assert PaperIndex(embedded, embedder).info()["index_store"].startswith("the embedded Chroma store in ")
    # the server's own index is untouched
    assert check_index(on_server).ok


def test_an_index_from_before_stores_were_recorded_gets_its_store_on_the_next_ingest(tmp_path, embedder, small_corpus):
    settings = Settings(data_dir=tmp_path / "data")
    PaperIndex(settings, embedder).ingest(small_corpus[:2], progress=False)
    catalog = Catalog(settings.collection_dir / "index" / "catalog.sqlite")
    with catalog.db:
        catalog.db.execute("DELETE FROM state WHERE key = 'store'")
    catalog.close()
    assert PaperIndex(settings, embedder).info()["index_store"] is None
    PaperIndex(settings, embedder).open_snapshot().catalog.close()  # read as the store it is opened with

    assert not PaperIndex(settings, embedder).ingest(small_corpus[:2], progress=False).changed
    assert PaperIndex(settings, embedder).info()["index_store"].startswith("the embedded Chroma store")


def _rag(args: list[str], home: Path, check: bool = True) -> subprocess.CompletedProcess:
    """The real `rag` command with a temporary HOME and nothing else pointing at data:
    the default data folder, as a user who followed the README has it."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAG_STORAGE__DATA_DIR",)}
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / ".local" / "share"), RAG_LLM__LOCAL_MODEL="smollm2-135m")
    done = subprocess.run([sys.executable, "-m", "cli", *args], env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def test_the_readmes_commands_in_any_order_keep_the_embedded_index(chroma_server, tmp_path, bundled_papers):
    """`rag ingest` (embedded), then the test-style server-mode ingest into the same
    (default) data folder, then `rag ask` in embedded mode: still the embedded index."""
    home = tmp_path / "home"
    diffcse = next(p for p in bundled_papers if p.title.startswith("DiffCSE"))
    mine = write_jsonl(tmp_path / "mine.jsonl", bundled_papers[:11] + [diffcse])
    others = write_jsonl(tmp_path / "others.jsonl", bundled_papers[150:155])

    _rag(["ingest", "--quiet", str(mine)], home)
    _rag(["ingest", "--quiet", "--chroma-url", chroma_server, str(others)], home)

    data = home / ".local" / "share" / "paper-rag"
    info = json.loads(_rag(["info", "--json"], home).stdout)
    assert info["papers"] == 12 and info["catalog"] == str(data / "index" / "catalog.sqlite")
    assert info["index_store"] == f"the embedded Chroma store in {data / 'chroma'}"
    on_server = json.loads(_rag(["info", "--json", "--chroma-url", chroma_server], home).stdout)
    assert on_server["papers"] == 5 and on_server["index_store"] == f"the Chroma server at {chroma_server}"
    assert _rag(["check"], home).returncode == 0
    assert _rag(["check", "--chroma-url", chroma_server], home).returncode == 0

    answer = json.loads(_rag(["ask", "What is DiffCSE?", "--format", "json"], home).stdout)
    assert answer["retrieved"][0]["title"] == diffcse.title
    assert not answer["error"], answer["error"]
