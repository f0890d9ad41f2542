"""Collections: named corpora side by side, each with its own index.

A collection is a folder (``store_dir`` for the default one, else
``store_dir/collections/<name>``; store_dir is the data folder for the embedded
store) holding its catalog, lexical indexes and
ingest lock, plus the Chroma collections named after it (see
``Settings.chroma_base_name``). Its catalog records how it was built (the
embedding model, chunking, BM25 parameters), so each keeps its own settings
record. Deleting one removes only its own folder and Chroma collections.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass

from rag.catalog import Catalog
from rag.errors import StoreError
from rag.index import GENERATION_SEPARATOR, PaperIndex
from rag.settings import DEFAULT_COLLECTION, Settings


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    papers: int
    chunks: int
    built_at: str | None
    embedding_model: str | None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def collection_names(settings: Settings) -> list[str]:
    """The default collection first, then every other collection with an index, by name."""
    folder = settings.store_dir / "collections"
    others = sorted(
        path.name
        for path in (folder.iterdir() if folder.is_dir() else [])
        if (path / "index" / "catalog.sqlite").exists()
    )
    return [DEFAULT_COLLECTION] + [name for name in others if name != DEFAULT_COLLECTION]


def describe_collections(settings: Settings) -> list[CollectionInfo]:
    """Every collection with its counts (the default one even before its first ingest)."""
    found = []
    for name in collection_names(settings):
        catalog = Catalog.open_existing(settings.for_collection(name).collection_dir / "index" / "catalog.sqlite")
        if catalog is None:
            found.append(CollectionInfo(name, 0, 0, None, None))
            continue
        try:
            state = catalog.state()
            found.append(
                CollectionInfo(
                    name,
                    catalog.count("papers") if state else 0,
                    catalog.count("chunks") if state else 0,
                    state.get("built_at"),
                    state.get("embedding_model"),
                )
            )
        finally:
            catalog.close()
    return found


def delete_collection(settings: Settings, name: str, index: PaperIndex) -> None:
    """Remove one collection's folder and Chroma collections, holding its writer lock.
    ``index`` is the PaperIndex of ``settings.for_collection(name)`` (it owns the client)."""
    target = settings.for_collection(name)
    if name not in collection_names(settings):
        raise StoreError(f"there is no collection {name!r}: `rag collections` lists them")
    prefix = target.chroma_base_name + GENERATION_SEPARATOR
    with index.writer_lock():
        for collection in index.client.list_collections():
            chroma_name = collection if isinstance(collection, str) else collection.name
            if chroma_name.startswith(prefix):
                index.client.delete_collection(chroma_name)
        shutil.rmtree(target.collection_dir / "index", ignore_errors=True)
    if name != DEFAULT_COLLECTION:  # the folder, with the lock file, once the lock is released
        shutil.rmtree(target.collection_dir, ignore_errors=True)
