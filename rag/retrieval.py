"""Finding the papers that answer a question.

Three signals over the same chunks, fused at the paper level: each search's
best score per paper is standardised (z-score) and the two are added with
weights (measured to beat reciprocal rank fusion on the question set):
- dense: cosine similarity of the question and chunk embeddings (Chroma);
- BM25: exact word overlap, which catches rare terms and numbers;
- names: a paper the question names (its acronym, a distinctive part of its
  title) is brought in even when neither search ranks it.
The result is one entry per paper with its best passages.
"""

from __future__ import annotations

import importlib
import math
import re
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Protocol

from rag.corpus import Paper
from rag.errors import InvalidQuestionError, SettingsError
from rag.chunking import Chunk
from rag.index import PaperIndex, StoredPapers
from rag.settings import Settings

WORD = re.compile(r"[a-z0-9]+")
# Function words: ignored by BM25 and never enough on their own to name a paper.
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each
    few for from further had has have having he her here hers herself him himself his how
    i if in into is it its itself just me more most my myself no nor not now of off on
    once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with
    would you your yours yourself yourselves paper papers work study approach method
    methods propose proposed using use used via""".split()
)
# A phrase longer than this is never needed to name a paper.
MAX_NAME_WORDS = 6
BM25_K1, BM25_B = 1.5, 0.75
# Added to a named paper's fused score: far above any sum of z-scores.
NAMED_BONUS = 100.0


# "Which papers ...", "studies that ...": a question that asks for several papers. Matches
# every multi-paper question of the project's set and none of its other questions.
SEVERAL_PAPERS = re.compile(
    r"\b(?:which|what|any|are\s+there|list|find|name|show\s+me)\s+(?:[\w-]+\s+){0,3}?"
    r"(?:papers|studies|articles|publications)\b"
    r"|\b(?:papers|studies|articles|publications)\s+(?:that|which|on|about|where)\b",
    re.I,
)


def asks_for_several_papers(question: str) -> bool:
    return bool(SEVERAL_PAPERS.search(question))


def words(text: str) -> list[str]:
    return WORD.findall(text.casefold())


def _stem(word: str) -> str:
    # Plural folding is the one normalisation that measurably helps here.
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def bm25_terms(text: str) -> list[str]:
    return [_stem(w) for w in words(text) if w not in STOPWORDS]


class BM25:
    """Okapi BM25 over a fixed list of documents."""

    def __init__(self, documents: list[str]):
        self.postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self.lengths = []
        for doc_index, text in enumerate(documents):
            terms = Counter(bm25_terms(text))
            self.lengths.append(sum(terms.values()))
            for term, count in terms.items():
                self.postings[term].append((doc_index, count))
        self.average_length = (sum(self.lengths) / len(self.lengths)) if self.lengths else 0.0
        total = len(documents)
        self.idf = {
            term: math.log(1 + (total - len(p) + 0.5) / (len(p) + 0.5))
            for term, p in self.postings.items()
        }

    def top(self, query: str, n: int) -> list[tuple[int, float]]:
        scores: dict[int, float] = defaultdict(float)
        for term in set(bm25_terms(query)):
            idf = self.idf.get(term)
            if idf is None:
                continue
            for doc_index, count in self.postings[term]:
                norm = BM25_K1 * (1 - BM25_B + BM25_B * self.lengths[doc_index] / self.average_length)
                scores[doc_index] += idf * count * (BM25_K1 + 1) / (count + norm)
        return sorted(scores.items(), key=lambda item: -item[1])[:n]


def _ngrams(tokens: list[str], max_n: int) -> set[tuple[str, ...]]:
    return {
        tuple(tokens[i : i + n])
        for n in range(1, max_n + 1)
        for i in range(len(tokens) - n + 1)
    }


def _looks_like_a_name(raw_token: str) -> bool:
    """TransliCo, DiffCSE, BERT4Rec, 3D: inner capitals or digits mixed with letters."""
    inner_caps = sum(c.isupper() for c in raw_token[1:]) >= 1
    mixed_digits = any(c.isdigit() for c in raw_token) and any(c.isalpha() for c in raw_token)
    return len(raw_token) >= 3 and (inner_caps or mixed_digits)


class NameMatcher:
    """Finds papers a question names, by phrases that identify exactly one paper.

    A title phrase names its paper when it occurs in no other paper's title or
    abstract, neither starts nor ends with a function word, and is one of: the
    title's short name (before a colon), a phrase with a name-like word
    (acronym, CamelCase, letters with digits), or a run of three or more
    content words. So common words and generic pairs ("sequence models") never
    name a paper.
    """

    def __init__(self, papers: list[Paper]):
        candidates: dict[tuple[str, ...], set[str]] = defaultdict(set)
        for paper in papers:
            name_words = {
                w for raw in re.findall(r"[\w]+", paper.title) if _looks_like_a_name(raw) for w in words(raw)
            }
            short_name = tuple(words(paper.title.split(":")[0])) if ":" in paper.title else ()
            for gram in _ngrams(words(paper.title), MAX_NAME_WORDS):
                if gram[0] in STOPWORDS or gram[-1] in STOPWORDS:
                    continue
                content_words = sum(w not in STOPWORDS for w in gram)
                if gram == short_name or name_words & set(gram) or content_words >= 3:
                    candidates[gram].add(paper.id)
        seen_in: dict[tuple[str, ...], set[str]] = defaultdict(set)
        for paper in papers:
            tokens = words(f"{paper.title} {paper.abstract}")
            for gram in _ngrams(tokens, MAX_NAME_WORDS) & candidates.keys():
                seen_in[gram].add(paper.id)
        self.names: dict[tuple[str, ...], str] = {
            gram: next(iter(owners))
            for gram, owners in candidates.items()
            if len(owners) == 1 and seen_in[gram] == owners
        }

    def named_papers(self, question: str) -> dict[str, int]:
        """paper id -> words in the longest phrase of the question that names it."""
        return {paper_id: length for paper_id, (_, length) in self.mentions(question).items()}

    def mentions(self, text: str) -> dict[str, tuple[int, int]]:
        """paper id -> (word position of its first mention, words in its longest name phrase)."""
        tokens = words(text)
        found: dict[str, tuple[int, int]] = {}
        for n in range(1, MAX_NAME_WORDS + 1):
            for position in range(len(tokens) - n + 1):
                paper_id = self.names.get(tuple(tokens[position : position + n]))
                if paper_id is not None:
                    first, longest = found.get(paper_id, (position, n))
                    found[paper_id] = (min(first, position), max(longest, n))
        return found


@dataclass
class Passage:
    chunk_id: str
    text: str
    ordinal: int


@dataclass
class RetrievedPaper:
    paper: Paper
    score: float
    passages: list[Passage]
    dense_similarity: float | None = None
    bm25_score: float | None = None
    named: bool = False

    @property
    def title(self) -> str:
        return self.paper.title

    def to_dict(self, passages: bool = True) -> dict:
        shown = {
            "title": self.title,
            "paper_id": self.paper.id,
            "score": round(self.score, 6),
            "dense_similarity": self.dense_similarity,
            "bm25_score": self.bm25_score,
            "named_in_question": self.named,
        }
        if passages:
            shown["passages"] = [p.text for p in self.passages]
        return shown


@dataclass
class RetrievalResult:
    query: str
    papers: list[RetrievedPaper]
    mode: str
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The shape of `rag search --json` (and the API's search)."""
        return {
            "query": self.query,
            "mode": self.mode,
            "latency_ms": self.timings_ms,
            "papers": [{"rank": rank, **p.to_dict()} for rank, p in enumerate(self.papers, start=1)],
        }


class RetrievalStage(Protocol):
    """A step after fusion: reorders, drops or annotates the ranked papers (a reranker,
    a filter). Configured by the `retrieval_stages` setting as "module:Class"; the
    class is constructed with (settings, retriever)."""

    def apply(self, query: str, papers: list[RetrievedPaper]) -> list[RetrievedPaper]: ...


def load_stage(spec: str, settings: Settings, retriever: Retriever) -> RetrievalStage:
    module_name, _, class_name = spec.partition(":")
    try:
        stage_class = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as err:
        raise SettingsError(f"retrieval stage {spec!r} cannot be loaded ({err}); use 'module:Class'") from None
    return stage_class(settings, retriever)


class Retriever:
    """Paper retrieval over one index, in stages: candidate generators (dense search,
    BM25, named-paper matching) -> fusion into one ranked list of papers -> the
    configured post-fusion stages, in order -> the top k."""

    def __init__(self, index: PaperIndex, settings: Settings):
        self.index = index
        self.settings = settings
        self.collection = index.require_active()
        stored: StoredPapers = index.read_all(self.collection)
        self.papers = stored.papers
        self.chunks: list[Chunk] = stored.chunks
        self.chunk_by_id = {c.id: c for c in self.chunks}
        self.chunks_of: dict[str, list[Chunk]] = defaultdict(list)
        for chunk in self.chunks:
            self.chunks_of[chunk.paper_id].append(chunk)
        self.bm25 = BM25([f"{c.title}\n{c.text}" for c in self.chunks])
        self.names = NameMatcher(list(self.papers.values()))
        self.stages = [load_stage(spec, settings, self) for spec in settings.retrieval_stages]

    @property
    def embedder(self):
        return self.index.embedder

    @property
    def generation(self) -> str:
        """Name of the index generation this retriever loaded."""
        return self.collection.name

    # --- candidate generators: (chunk id, score) best first, or named paper ids ---------
    def dense_hits(self, query: str, n: int) -> list[tuple[str, float]]:
        vector = self.index.embedder.embed([query])[0]
        return self.index.dense_search(vector, n, self.collection)

    def bm25_hits(self, query: str, n: int) -> list[tuple[str, float]]:
        return [(self.chunks[i].id, s) for i, s in self.bm25.top(query, n)]

    def search(self, query: str, k: int | None = None, mode: str | None = None) -> RetrievalResult:
        query = query.strip()
        if not query:
            raise InvalidQuestionError("the question is empty")
        k = k or self.settings.top_k
        mode = mode or self.settings.retrieval_mode
        several = asks_for_several_papers(query)
        n = self.settings.multi_candidate_chunks if several else self.settings.candidate_chunks
        started = time.perf_counter()

        dense_hits = self.dense_hits(query, n) if mode in ("hybrid", "dense") else []
        bm25_hits = self.bm25_hits(query, n) if mode in ("hybrid", "bm25") else []
        named = self.names.named_papers(query) if mode == "hybrid" else {}
        papers = self.fuse(dense_hits, bm25_hits, named)
        for stage in self.stages:
            papers = stage.apply(query, papers)

        elapsed = (time.perf_counter() - started) * 1000
        return RetrievalResult(query=query, papers=papers[:k], mode=mode, timings_ms={"retrieve": elapsed})

    def fuse(
        self,
        dense_hits: list[tuple[str, float]],
        bm25_hits: list[tuple[str, float]],
        named: dict[str, int],
    ) -> list[RetrievedPaper]:
        """Every candidate paper, best first, with its best passages."""
        weights = {"dense": self.settings.dense_weight, "bm25": self.settings.bm25_weight}
        best = {"dense": _best_per_paper(dense_hits, self.chunk_by_id), "bm25": _best_per_paper(bm25_hits, self.chunk_by_id)}
        candidates = set(best["dense"]) | set(best["bm25"]) | set(named)
        scores = dict.fromkeys(candidates, 0.0)
        for signal, per_paper in best.items():
            standard = _standardise(per_paper)
            floor = min(standard.values(), default=0.0)  # missing from a list: below all it ranked
            for paper_id in candidates:
                scores[paper_id] += weights[signal] * standard.get(paper_id, floor)
        # A paper the question names comes before anything the searches alone score.
        for paper_id, length in named.items():
            scores[paper_id] += NAMED_BONUS + length
        # Passages of a paper are ordered by the same weighted z-scores, per chunk.
        dense_z, bm25_z = _standardise(dict(dense_hits)), _standardise(dict(bm25_hits))
        chunk_scores = {
            cid: weights["dense"] * dense_z.get(cid, 0.0) + weights["bm25"] * bm25_z.get(cid, 0.0)
            for cid in dense_z.keys() | bm25_z.keys()
        }

        ranked = sorted(scores, key=lambda pid: -scores[pid])
        results = []
        for paper_id in ranked:
            own = sorted(
                self.chunks_of[paper_id], key=lambda c: (-chunk_scores.get(c.id, -1e9), c.ordinal)
            )[: self.settings.passages_per_paper]
            results.append(
                RetrievedPaper(
                    paper=self.papers[paper_id],
                    score=scores[paper_id],
                    passages=[Passage(c.id, c.text, c.ordinal) for c in own],
                    dense_similarity=best["dense"].get(paper_id),
                    bm25_score=best["bm25"].get(paper_id),
                    named=paper_id in named,
                )
            )
        return results


def _best_per_paper(hits: list[tuple[str, float]], chunk_by_id: dict[str, Chunk]) -> dict[str, float]:
    best: dict[str, float] = {}
    for chunk_id, score in hits:  # hits are best first
        best.setdefault(chunk_by_id[chunk_id].paper_id, score)
    return best


def _standardise(values: dict[str, float]) -> dict[str, float]:
    """z-scores, so cosine similarities and BM25 scores can be added."""
    if len(values) < 2:
        return dict.fromkeys(values, 1.0)
    spread = statistics.pstdev(values.values()) or 1.0
    centre = statistics.fmean(values.values())
    return {key: (value - centre) / spread for key, value in values.items()}
