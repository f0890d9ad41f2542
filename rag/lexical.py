"""The lexical side of the index: BM25 with bm25s, saved next to the vectors.

A lexical index lives in one folder of an index generation and holds:
- bm25s's own files: the BM25 score matrix (CSC, memory-mapped on load, so a
  start reads no corpus and tokenises nothing), its vocabulary and parameters;
- ``terms.npy`` and ``offsets.npy``: every document's term ids in order, so the
  next generation is built from the stored terms of unchanged documents plus
  the tokens of new ones (bm25s cannot add documents to an index, and BM25's
  idf and average length are corpus-wide, so any change rescores everything);
- ``doc_ids.json``: row -> document id.

The score matrix is computed here with vectorised numpy (bm25s's builder loops
over documents in Python, several times slower at 100k papers) in exactly
bm25s's "lucene" formula and format, and bm25s saves, loads and scores it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from rag.text import bm25_terms

DOC_IDS = "doc_ids.json"
TERMS = "terms.npy"
OFFSETS = "offsets.npy"


class LexicalIndex:
    """BM25 over documents (id, text), loaded from or written to one folder."""

    def __init__(self, bm25, doc_ids: list[str], terms: np.ndarray, offsets: np.ndarray):
        self.bm25 = bm25
        self.doc_ids = doc_ids
        self.terms = terms
        self.offsets = offsets
        self.row_of = {doc_id: row for row, doc_id in enumerate(doc_ids)}

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        import bm25s

        bm25 = bm25s.BM25.load(str(folder), mmap=True, load_corpus=False)
        doc_ids = json.loads((folder / DOC_IDS).read_text(encoding="utf-8"))
        terms = np.load(folder / TERMS, mmap_mode="r")
        offsets = np.load(folder / OFFSETS, mmap_mode="r")
        return cls(bm25, doc_ids, terms, offsets)

    @classmethod
    def write(
        cls,
        folder: Path,
        previous: LexicalIndex | None,
        drop: set[str],
        add: Sequence[tuple[str, str]],
        k1: float,
        b: float,
    ) -> LexicalIndex:
        """A new index in ``folder``: ``previous`` without the documents in ``drop``,
        plus ``add`` as (id, text). Written to a temporary folder and renamed, so a
        crash never leaves a half-written index under the final name."""
        import bm25s

        vocab: dict[str, int] = dict(previous.bm25.vocab_dict) if previous else {}
        kept_ids, kept_terms, kept_lengths = _kept(previous, drop)
        new_terms: list[int] = []
        new_lengths = []
        for _, text in add:
            ids = [vocab.setdefault(term, len(vocab)) for term in bm25_terms(text)]
            new_terms.extend(ids)
            new_lengths.append(len(ids))
        doc_ids = kept_ids + [doc_id for doc_id, _ in add]
        terms = np.concatenate([kept_terms, np.asarray(new_terms, dtype=np.int32)])
        lengths = np.concatenate([kept_lengths, np.asarray(new_lengths, dtype=np.int64)])
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)

        bm25 = bm25s.BM25(k1=k1, b=b, method="lucene")
        bm25.scores = _score_matrix(terms, lengths, len(vocab), k1, b)
        bm25.vocab_dict = vocab
        bm25.nonoccurrence_array = None  # "lucene" scores absent terms as 0
        temporary = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(temporary, ignore_errors=True)
        bm25.save(str(temporary), show_progress=False)
        (temporary / DOC_IDS).write_text(json.dumps(doc_ids), encoding="utf-8")
        np.save(temporary / TERMS, terms)
        np.save(temporary / OFFSETS, offsets)
        temporary.rename(folder)
        return cls.load(folder)

    def __len__(self) -> int:
        return len(self.doc_ids)

    def top(self, query: str, n: int, rows: np.ndarray | None = None) -> list[tuple[str, float]]:
        """(document id, BM25 score) of the n best documents with any query term,
        among ``rows`` only when given (a filter: the top n is taken after it)."""
        return self.top_weighted(dict.fromkeys(bm25_terms(query), 1.0), n, rows)

    def top_weighted(
        self, weighted_terms: dict[str, float], n: int, rows: np.ndarray | None = None
    ) -> list[tuple[str, float]]:
        """The same for (already stemmed) terms of unequal weight: a document's score is the
        sum of each term's BM25 score times its weight (an expanded query's added words)."""
        vocab = self.bm25.vocab_dict
        known = {vocab[t]: w for t, w in weighted_terms.items() if t in vocab}
        if not known or not self.doc_ids:
            return []
        if len(set(known.values())) == 1:
            scores = self.bm25.get_scores_from_ids(list(known)) * next(iter(known.values()))
        else:
            scores = np.zeros(len(self.doc_ids), dtype=np.float32)
            matrix = self.bm25.scores
            for term_id, weight in known.items():
                start, end = matrix["indptr"][term_id], matrix["indptr"][term_id + 1]
                np.add.at(scores, matrix["indices"][start:end], weight * matrix["data"][start:end])
        if rows is not None:
            kept = np.zeros(len(scores), dtype=scores.dtype)
            kept[rows] = scores[rows]
            scores = kept
        n = min(n, len(scores))
        best = np.argpartition(-scores, n - 1)[:n]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(self.doc_ids[row], float(scores[row])) for row in best if scores[row] > 0]

    def document_frequency(self, term: str) -> int:
        """How many documents hold the (already stemmed) term."""
        term_id = self.bm25.vocab_dict.get(term)
        return 0 if term_id is None else self._document_frequency(term_id)

    def rows_of(self, doc_ids: Iterable[str]) -> np.ndarray:
        """Row numbers of the given document ids (those in the index)."""
        return np.fromiter((self.row_of[d] for d in doc_ids if d in self.row_of), dtype=np.int64)

    def rows_with_all(self, terms: Iterable[str]) -> np.ndarray:
        """Rows of the documents that contain every one of the (already stemmed) terms."""
        rows = None
        for term_id in sorted(self._term_ids(set(terms), require_all=True) or [], key=self._document_frequency):
            found = self._postings(term_id)
            rows = found if rows is None else np.intersect1d(rows, found, assume_unique=True)
            if not len(rows):
                break
        return rows if rows is not None else np.empty(0, dtype=np.int32)

    def absent_terms(self, terms: Iterable[str]) -> set[str]:
        """The (already stemmed) terms that no indexed document contains."""
        vocab = self.bm25.vocab_dict
        return {t for t in terms if t not in vocab or not self._document_frequency(vocab[t])}

    def _term_ids(self, terms: set[str], require_all: bool = False) -> list[int] | None:
        vocab = self.bm25.vocab_dict
        known = [vocab[t] for t in terms if t in vocab]
        if require_all and len(known) < len(terms):
            return None
        return known

    def _postings(self, term_id: int) -> np.ndarray:
        indptr = self.bm25.scores["indptr"]
        return np.asarray(self.bm25.scores["indices"][indptr[term_id] : indptr[term_id + 1]])

    def _document_frequency(self, term_id: int) -> int:
        indptr = self.bm25.scores["indptr"]
        return int(indptr[term_id + 1] - indptr[term_id])


def _kept(previous: LexicalIndex | None, drop: set[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The previous index's documents not in ``drop``: ids, concatenated terms, lengths."""
    if previous is None or not len(previous):
        return [], np.empty(0, dtype=np.int32), np.empty(0, dtype=np.int64)
    keep = np.fromiter((doc_id not in drop for doc_id in previous.doc_ids), dtype=bool, count=len(previous))
    lengths = np.diff(previous.offsets)
    terms = np.asarray(previous.terms)[np.repeat(keep, lengths)]
    kept_ids = [doc_id for doc_id, k in zip(previous.doc_ids, keep) if k]
    return kept_ids, terms, lengths[keep]


def _score_matrix(terms: np.ndarray, lengths: np.ndarray, vocabulary: int, k1: float, b: float) -> dict:
    """bm25s's "lucene" BM25 score matrix (documents x terms, CSC) from term ids."""
    documents = len(lengths)
    if not documents:
        return {
            "data": np.empty(0, np.float32),
            "indices": np.empty(0, np.int32),
            "indptr": np.zeros(vocabulary + 1, np.int64),
            "num_docs": 0,
        }
    document_of = np.repeat(np.arange(documents, dtype=np.int64), lengths)
    # One sort by (term, document) gives term frequencies in CSC order.
    pairs, frequency = np.unique(terms.astype(np.int64) * documents + document_of, return_counts=True)
    term, document = pairs // documents, pairs % documents
    document_frequency = np.bincount(term, minlength=vocabulary)
    idf = np.log(1 + (documents - document_frequency + 0.5) / (document_frequency + 0.5))
    norm = k1 * (1 - b + b * lengths[document] / max(lengths.mean(), 1e-9))
    scores = idf[term] * frequency / (frequency + norm)
    indptr = np.concatenate([[0], np.cumsum(document_frequency)])
    return {
        "data": scores.astype(np.float32),
        "indices": document.astype(np.int32),
        "indptr": indptr.astype(np.int64),
        "num_docs": documents,
    }
