"""`rag check`: is an index consistent? Every paper complete, the three parts
listing the same chunks, no Chroma collection without a build record.

Problems are what would make answers wrong or that no ingest will repair: a
paper missing chunks on one side, vectors or BM25 entries no paper owns and
nothing records, a collection named for this data folder with no catalog.
What an interrupted ingest left behind and recorded (vectors listed for
deletion, a half-written BM25 folder, the collection of an unfinished
rebuild) is *pending cleanup*: readers ignore it and the next ingest deletes
it, so it is listed but does not fail the check.

The check holds the writer lock, so it never mistakes a running ingest's
work for leftovers; while an ingest runs it says so instead.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from rag.catalog import Catalog
from rag.errors import SettingsError, StoreError
from rag.index import GENERATION_SEPARATOR, PaperIndex
from rag.lexical import LexicalIndex
from rag.settings import DEFAULT_COLLECTION, Settings

# Vector ids are read from Chroma in pages of this many.
ID_PAGE = 5000
# Papers named one by one in a report; the rest are counted.
NAMED_PAPERS = 20


@dataclass
class CheckReport:
    collection: str
    generation: int | None = None
    papers: int = 0
    chunks: int = 0
    problems: list[str] = field(default_factory=list)
    incomplete_papers: list[str] = field(default_factory=list)  # ids of papers missing chunks somewhere
    pending_cleanup: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "ok": self.ok}

    def lines(self) -> list[str]:
        """The report for a person: the verdict, then each problem and pending cleanup."""
        head = (
            f"collection {self.collection!r}: generation {self.generation}, "
            f"{self.papers} papers, {self.chunks} chunks: "
        )
        lines = [head + ("consistent" if self.ok else f"{len(self.problems)} problem(s)")]
        lines += [f"  problem: {p}" for p in self.problems]
        lines += [f"  pending cleanup (the next `rag ingest` removes it): {p}" for p in self.pending_cleanup]
        return lines


def check_index(settings: Settings, client=None) -> CheckReport:
    """Check the collection ``settings.storage.collection`` and the Chroma collections named
    for this data folder. Raises StoreError when an ingest is running or the store
    cannot be reached."""
    index = PaperIndex(settings, embedder=None, client=client)
    report = CheckReport(settings.storage.collection)
    with index.writer_lock(), index.store_unreachable_is_a_store_error():
        catalog = Catalog.open_existing(index.catalog_path)
        if catalog is None:
            report.problems.append(f"no index: {index.catalog_path} does not exist (run `rag ingest`)")
        else:
            try:
                _check_collection(index, catalog, report)
            finally:
                catalog.close()
        _check_orphan_collections(index, report)
    return report


def _check_collection(index: PaperIndex, catalog: Catalog, report: CheckReport) -> None:
    state = catalog.state()
    if not state:
        report.problems.append("the catalog records no committed generation (run `rag ingest`)")
        return
    if catalog.outdated:
        report.problems.append("the catalog was written by an older paper-rag (run `rag ingest` to update it)")
        return
    report.generation = int(state["generation"])
    if problem := index.store_mismatch(state):  # its vectors are elsewhere: nothing here can be compared
        report.problems.append(problem)
        return
    titles = catalog.titles()
    rows = catalog.db.execute("SELECT id, paper_id, ordinal FROM chunks").fetchall()
    report.papers, report.chunks = len(titles), len(rows)
    chunk_paper = {chunk_id: paper_id for chunk_id, paper_id, _ in rows}
    missing: dict[str, list[str]] = {}  # paper id -> where its chunks are missing

    ordinals: dict[str, list[int]] = {pid: [] for pid in titles}
    orphan_chunks = 0
    for _, paper_id, ordinal in rows:
        if paper_id in ordinals:
            ordinals[paper_id].append(ordinal)
        else:
            orphan_chunks += 1
    if orphan_chunks:
        report.problems.append(f"the catalog holds {orphan_chunks} chunk(s) of papers it does not list")
    for paper_id, seen in ordinals.items():
        if sorted(seen) != list(range(len(seen))) or not seen:
            missing.setdefault(paper_id, []).append("the catalog")

    recorded = {chunk_id for chunk_id, collection in catalog.garbage() if collection == state["collection"]}
    vector_ids = _vector_ids(index, state["collection"], report)
    if vector_ids is not None:
        for chunk_id in set(chunk_paper) - vector_ids:
            missing.setdefault(chunk_paper[chunk_id], []).append("Chroma")
        extra = vector_ids - set(chunk_paper)
        if extra - recorded:
            report.problems.append(
                f"{len(extra - recorded)} vector(s) in Chroma collection {state['collection']!r} belong to no "
                "paper and are not recorded for deletion"
            )
        if extra & recorded:
            report.pending_cleanup.append(f"{len(extra & recorded)} vector(s) of an interrupted ingest")

    generation = report.generation
    for kind, expected in (("chunks", set(chunk_paper)), ("titles", set(titles))):
        lexical = _lexical(index, generation, kind, report)
        if lexical is None:
            continue
        listed = set(lexical.doc_ids)
        if len(listed) != len(lexical.doc_ids):
            report.problems.append(f"the BM25 {kind} index lists some documents twice")
        for doc_id in expected - listed:
            missing.setdefault(chunk_paper.get(doc_id, doc_id), []).append(f"the BM25 {kind} index")
        if listed - expected:
            report.problems.append(f"the BM25 {kind} index lists {len(listed - expected)} document(s) the catalog does not")

    leftovers = [p.name for p in index.stale_lexical_folders(state)]
    if leftovers:
        report.pending_cleanup.append(f"BM25 folders of other generations: {', '.join(leftovers)}")

    sweeps = index.cleanup_pending(catalog)  # the next ingest then deletes stale collections
    for name in index.chroma_collection_names():
        if name.startswith(index.base_name + GENERATION_SEPARATOR) and name != state["collection"]:
            if sweeps:
                report.pending_cleanup.append(f"Chroma collection {name!r} of an interrupted or replaced build")
            else:
                report.problems.append(
                    f"Chroma collection {name!r} is not this collection's current build, and nothing records it"
                )

    report.incomplete_papers = sorted(missing)
    for paper_id in report.incomplete_papers[:NAMED_PAPERS]:
        where = ", ".join(dict.fromkeys(missing[paper_id]))
        report.problems.append(f"paper {paper_id!r} ({titles.get(paper_id, '?')[:80]}) has chunks missing from {where}")
    if len(report.incomplete_papers) > NAMED_PAPERS:
        report.problems.append(f"... and {len(report.incomplete_papers) - NAMED_PAPERS} more incomplete papers")


def _vector_ids(index: PaperIndex, name: str, report: CheckReport) -> set[str] | None:
    try:
        collection = index.client.get_collection(name, embedding_function=None)
    except StoreError:
        raise
    except Exception as err:  # NotFoundError embedded, ValueError over HTTP
        report.problems.append(f"the index's Chroma collection {name!r} cannot be opened: {err}")
        return None
    ids: set[str] = set()
    while True:
        page = collection.get(include=[], limit=ID_PAGE, offset=len(ids))["ids"]
        ids.update(page)
        if len(page) < ID_PAGE:
            return ids


def _lexical(index: PaperIndex, generation: int, kind: str, report: CheckReport) -> LexicalIndex | None:
    folder = index.lexical_folder(generation, kind)
    try:
        return LexicalIndex.load(folder)
    except Exception as err:  # missing or unreadable files: whatever bm25s or numpy raise
        report.problems.append(f"the BM25 {kind} index {folder} cannot be read: {type(err).__name__}: {err}")
        return None


def _check_orphan_collections(index: PaperIndex, report: CheckReport) -> None:
    """Chroma collections named for a collection of this data folder that has no catalog."""
    settings = index.settings
    if not settings.storage.chroma_url and not settings.chroma_path.exists():
        return  # no store yet: nothing to open (and a check creates none)
    base = settings.storage.collection_name
    for name in index.chroma_collection_names():
        if GENERATION_SEPARATOR not in name:
            continue
        prefix = name.split(GENERATION_SEPARATOR, 1)[0]
        if prefix == base:
            owner = DEFAULT_COLLECTION
        elif prefix.startswith(base + "-"):
            owner = prefix[len(base) + 1 :]
        else:
            continue  # not named after this data folder's collections
        try:
            folder = settings.for_collection(owner).collection_dir
        except SettingsError:  # not a collection name this product would have made
            continue
        if not (folder / "index" / "catalog.sqlite").exists():
            where = "on the server (or another data folder's)" if settings.storage.chroma_url else "in the store"
            report.problems.append(
                f"orphan Chroma collection {name!r} {where}: collection {owner!r} has no catalog in {settings.storage.data_dir}"
            )
