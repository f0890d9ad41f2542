"""The writer lock on its own: the lock file, and the lock collection a Chroma server
holds. Most tests let a real embedded Chroma client stand in for the server (the
lock collection needs nothing but collections and their metadata), with one data
folder per simulated machine; the last one takes over a stale lock on a real server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from rag.errors import StoreError
from rag.settings import Settings
from rag.vector_store import VectorStore, open_client
from rag.writer_lock import WriterLock, process_alive

SERVER = "http://127.0.0.1:8000"  # decides the mode and the folders; the client is the stand-in


@pytest.fixture
def stand_in(tmp_path):
    """One embedded Chroma client, shared by every simulated machine."""
    return open_client(Settings(data_dir=tmp_path / "server"))


def server_lock(tmp_path, stand_in, machine: str, collection: str = "default") -> WriterLock:
    settings = Settings(data_dir=tmp_path / machine, chroma_url=SERVER).for_collection(collection)
    return WriterLock(settings, VectorStore(settings, client=stand_in))


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def plant_lock(stand_in, host: str, pid: int) -> None:
    """A lock collection as a writer leaves it when it dies holding the lock."""
    stand_in.create_collection(
        "papers__writer", embedding_function=None, metadata={"host": host, "pid": pid, "since": "2026-01-01T00:00:00"}
    )


def test_a_second_writer_on_the_embedded_store_is_refused_whatever_its_collection(settings):
    first = WriterLock(settings, VectorStore(settings))
    other = settings.for_collection("other")
    with first.hold():
        for second in (WriterLock(settings, VectorStore(settings)), WriterLock(other, VectorStore(other))):
            with pytest.raises(StoreError, match="another ingest is running on .*its collections share one embedded store"):
                with second.hold():
                    pass
    with WriterLock(other, VectorStore(other)).hold():  # released with the block
        pass


def test_the_server_lock_names_its_holder_and_goes_with_the_block(tmp_path, stand_in):
    lock = server_lock(tmp_path, stand_in, "one")
    assert lock.holder() == {}
    with lock.hold():
        holder = lock.holder()
        assert (holder["host"], holder["pid"]) == (socket.gethostname(), os.getpid())
        assert "papers__writer" in [c.name for c in stand_in.list_collections()]
    assert lock.holder() == {}
    assert "papers__writer" not in [c.name for c in stand_in.list_collections()]


def test_a_writer_of_another_machine_is_refused_by_the_server_lock(tmp_path, stand_in):
    with server_lock(tmp_path, stand_in, "one").hold():
        with pytest.raises(StoreError) as refused:
            with server_lock(tmp_path, stand_in, "two").hold():
                pass
    message = str(refused.value)
    assert f"another ingest (process {os.getpid()} on {socket.gethostname()}, since " in message
    assert f"is writing to the Chroma server at {SERVER}" in message and "'papers__writer'" in message


def test_on_a_server_each_collection_has_its_own_lock(tmp_path, stand_in):
    with server_lock(tmp_path, stand_in, "one").hold():
        with pytest.raises(StoreError, match="another ingest is running on collection 'default'"):
            with server_lock(tmp_path, stand_in, "one").hold():  # the same folder: its lock file refuses
                pass
        with server_lock(tmp_path, stand_in, "one", collection="mine").hold():
            names = {c.name for c in stand_in.list_collections()}
            assert names == {"papers__writer", "papers-mine__writer"}


def test_a_lock_left_by_a_dead_process_of_this_host_is_taken_over(tmp_path, stand_in):
    plant_lock(stand_in, socket.gethostname(), dead_pid())
    lock = server_lock(tmp_path, stand_in, "one")
    with lock.hold():
        assert lock.holder()["pid"] == os.getpid()
    assert lock.holder() == {}


@pytest.mark.parametrize(
    "host, running_here",
    [(socket.gethostname(), True), ("another-machine", False)],
    ids=["a live process of this host", "a process of another host"],
)
def test_a_lock_whose_holder_may_be_running_is_not_taken(tmp_path, stand_in, host, running_here):
    # On another host a pid gone here says nothing: that process may run there.
    pid = os.getppid() if running_here else dead_pid()
    plant_lock(stand_in, host, pid)
    with pytest.raises(StoreError, match=rf"another ingest \(process {pid} on {host}, since 2026-01-01T00:00:00\)"):
        with server_lock(tmp_path, stand_in, "one").hold():
            pass
    assert server_lock(tmp_path, stand_in, "two").holder()["pid"] == pid  # still theirs


def test_process_alive_tells_running_processes_from_gone_ones():
    assert process_alive(os.getpid()) and process_alive(str(os.getppid()))
    assert not process_alive(dead_pid())
    assert not process_alive(None) and not process_alive("not a pid")


@pytest.mark.slow
def test_a_stale_lock_on_a_real_server_is_taken_over(chroma_server, tmp_path):
    settings = Settings(data_dir=tmp_path / "data", chroma_url=chroma_server)
    store = VectorStore(settings)
    plant_lock(store.client, socket.gethostname(), dead_pid())
    lock = WriterLock(settings, store)
    with lock.hold():
        assert lock.holder()["pid"] == os.getpid()
    assert "papers__writer" not in store.collection_names()
