"""The writer lock: one ingest (or `rag check`) at a time.

Two locks, taken in this order. A lock file: in the data folder with embedded
Chroma, which every collection shares and which is not multi-process safe; in
the collection's folder (where its catalog lives) with a Chroma server. And, on
a server, a lock collection ``<base name>__writer`` that writers on other
machines see too; its metadata names the holder, so a lock left by a writer of
this host whose process is gone is taken over, and any other holder is named
in the refusal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from pathlib import Path
from typing import Iterator

import filelock

from rag.errors import StoreError
from rag.settings import Settings
from rag.vector_store import VectorStore, describe_collection

log = logging.getLogger(__name__)

WRITER_LOCK_SUFFIX = "__writer"


class WriterLock:
    """The writer lock of the settings' collection on ``store``."""

    def __init__(self, settings: Settings, store: VectorStore):
        self.settings = settings
        self.store = store
        self.lock_collection = settings.chroma_base_name + WRITER_LOCK_SUFFIX

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the lock for the block; raises StoreError, naming who writes, when another holds it."""
        on_server = bool(self.settings.storage.chroma_url)
        folder = self.settings.collection_dir if on_server else self.settings.storage.data_dir
        where = (
            describe_collection(self.settings)
            if on_server
            else f"{self.settings.storage.data_dir} (its collections share one embedded store)"
        )
        path = Path(folder) / "ingest.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            lock = filelock.FileLock(path).acquire(blocking=False)
        except filelock.Timeout:
            raise StoreError(f"another ingest is running on {where}: wait for it to finish, then run this again") from None
        with lock:
            if on_server:
                with self._hold_server_lock():
                    yield
            else:
                yield

    @contextlib.contextmanager
    def _hold_server_lock(self) -> Iterator[None]:
        name = self.lock_collection
        me = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        client = self.store.client  # an unreachable server fails here, saying so
        for attempt in range(2):
            try:
                client.create_collection(name, embedding_function=None, metadata=me)
                break
            except Exception as err:  # it exists: another writer holds the lock, or one died holding it
                holder = self.holder()
                if not holder:
                    raise StoreError(
                        f"cannot take the writer lock on the Chroma server at {self.settings.storage.chroma_url}: {err}"
                    ) from None
                if attempt == 0 and holder.get("host") == me["host"] and not process_alive(holder.get("pid")):
                    log.warning("removing the writer lock of ingest %s, which is no longer running", holder.get("pid"))
                    with contextlib.suppress(Exception):
                        self.store.delete_collection(name)
                    continue
                raise StoreError(
                    f"another ingest (process {holder.get('pid')} on {holder.get('host')}, since "
                    f"{holder.get('since')}) is writing to the Chroma server at {self.settings.storage.chroma_url}: "
                    f"wait for it to finish (if that process is gone, delete the collection {name!r})"
                ) from None
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                self.store.delete_collection(name)

    def holder(self) -> dict:
        """Who holds the server lock: host, pid and since ({} when no lock collection can be read)."""
        try:
            return dict(self.store.collection(self.lock_collection).metadata or {})
        except Exception:
            return {}


def process_alive(pid) -> bool:
    """Whether process ``pid`` of this host runs (one we may not signal does)."""
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True
