"""A small real index for the tests of the MCP server and the LlamaIndex components, which
need what the bundled corpus lacks: years, authors and categories (made up, as in
tests/test_filters.py), abstracts with hostile sentences (eval/hostile), and a second
collection. The default collection holds 40 bundled papers and the hostile corpus's 10
papers that carry instructions or markup; "second" holds 5 other bundled papers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmarks.reliability_injection import PAPERS, hostile_sentences
from rag.corpus import load_corpus
from rag.index import PaperIndex
from rag.paper import Paper
from rag.settings import Settings
from tests.test_filters import with_metadata

TRANSLICO_ID = "p49ff1ab0d9bc"  # the 10th bundled paper: "TransliCo: A Contrastive Learning Framework ..."


@dataclass(frozen=True)
class TaggedIndex:
    settings: Settings
    papers: dict[str, Paper]  # the default collection's, by id
    second: dict[str, Paper]  # collection "second"'s
    hostile: list[Paper]  # those of the default collection with hostile sentences

    @property
    def data_dir(self) -> Path:
        return self.settings.storage.data_dir


def build_tagged_index(data_dir: Path, embedder, bundled: list[Paper]) -> TaggedIndex:
    settings = Settings(data_dir=data_dir)
    hostile = [paper for paper in load_corpus([PAPERS]) if hostile_sentences([paper])]
    papers = with_metadata(bundled[:40]) + hostile
    second = bundled[40:45]
    index = PaperIndex(settings, embedder)
    index.ingest(papers, progress=False)
    PaperIndex(settings.for_collection("second"), embedder, client=index.client).ingest(second, progress=False)
    return TaggedIndex(settings, {p.id: p for p in papers}, {p.id: p for p in second}, hostile)
