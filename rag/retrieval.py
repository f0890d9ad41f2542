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
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from rag.chunking import Chunk
from rag.paper import Paper, short_name
from rag.errors import InvalidQuestionError, NothingMatchesFilterError, SettingsError
from rag.filters import PaperFilter
from rag.index import IndexSnapshot, PaperIndex
from rag.settings import Settings
from rag.text import STOPWORDS, bm25_terms, question_problem, words

# A phrase longer than this is never needed to name a paper.
MAX_NAME_WORDS = 6
# Added to a named paper's fused score: far above any sum of z-scores.
NAMED_BONUS = 100.0
# Phrases whose owner (or lack of one) is remembered between questions.
NAME_CACHE_SIZE = 100_000
# Other papers' passages read per catalog query when checking a phrase names one paper.
PASSAGE_BATCH = 32


# "Which papers ...", "studies that ...", "what research ...": a question that asks for several
# papers. "work" only in forms that ask for a body of work ("what work is there"): "which work
# trained ..." asks for one paper.
SEVERAL_PAPERS = re.compile(
    r"\b(?:which|what|any|are\s+there|list|find|name|show\s+me)\s+(?:[\w-]+\s+){0,3}?"
    r"(?:papers|studies|articles|publications)\b"
    r"|\b(?:which|what)\s+(?:[\w-]+\s+){0,2}?(?:works|research)\b"
    r"|\bwhat\s+work\s+(?:here|is\s+there|exists|has\s+been)\b"
    r"|\b(?:papers|studies|articles|publications)\s+(?:that|which|on|about|where)\b",
    re.I,
)


def asks_for_several_papers(question: str) -> bool:
    return bool(SEVERAL_PAPERS.search(question))


# "different" and "similarity" are left out: research questions use them as content
# words ("different distances", "semantic similarity"), and a false comparison reads
# every candidate paper unfiltered.
COMPARISON_CUES = re.compile(
    r"\b(compare[sd]?|comparing|comparison|vs\.?|versus|differ(?:s|ence|ences)?|both|contrast)\b", re.I
)

Kind = Literal["single", "multi", "comparison"]
# A request to compare, however many papers it names: "Compare the papers that use X", "... in a table"
# (not any table: "even a garter snake and a table" is an image pair).
ASKS_TO_COMPARE = re.compile(
    r"^\W*(?:please\s+)?(?:compare|contrast|tabulate)\b|\bside[- ]by[- ]side\b|\btabulate\b|\bcomparison table\b"
    r"|\b(?:in|as) a table\b|\ba table (?:comparing|of|that compares|in terms of|on)\b"
    r"|\b(?:want|need|give me|make|build|show me) (?:a|the) (?:comparison )?table\b"
    r"|\bwhat (?:separates|distinguishes)\b|\bcompare (?:them|these|those|both)\b",
    re.I,
)


def question_kind(question: str, named: Mapping[str, int]) -> Kind:
    """A comparison (two papers named, or a cue in a question that does not ask for a list: "which
    papers compare X with Y" is a list), a "which papers" list, or a single-paper question."""
    several = asks_for_several_papers(question)
    if len(named) >= 2 or ASKS_TO_COMPARE.search(question) or (COMPARISON_CUES.search(question) and not several):
        return "comparison"
    return "multi" if several else "single"


# "from 2018", "published in 2019-2021", "since the 2010s": a time frame, which a filter handles.
TIME_FRAME = re.compile(
    r"\b(?:from|in|since|after|before|between|published\s+in|dated)\s+(?:the\s+)?(?:19|20)\d\ds?"
    r"(?:\s*(?:-|\u2013|to|and)\s*(?:(?:19|20)?\d\d))?\b",
    re.I,
)
# Words of a list question's frame that can come between "which papers" and its topic.
FRAME_WORDS = frozenset(
    "of my our mine ours the that which do does did are is were was have has also any "
    "use uses used using apply applies applied employ employs rely relies study studies studied "
    "propose proposes proposed address addresses discuss discusses investigate investigates "
    "explore explores deal deals with focus focuses look looks at about on in mention mentions".split()
)


def topic_of(question: str) -> str | None:
    """What a "which papers ..." question is about, without its frame: "Which of my papers
    from 2018 use contrastive learning?" -> "contrastive learning". None for other questions."""
    match = SEVERAL_PAPERS.search(question)
    if not match:
        return None
    rest = TIME_FRAME.sub(" ", question[: match.start()] + " " + question[match.end() :])
    words = rest.split()
    while words and words[0].lower().strip(",") in FRAME_WORDS:
        words.pop(0)
    topic = " ".join(words).strip(" ?.!,;:")
    return topic or None


def _looks_like_a_name(raw_token: str) -> bool:
    """TransliCo, DiffCSE, BERT4Rec, 3D: inner capitals or digits mixed with letters."""
    inner_caps = sum(c.isupper() for c in raw_token[1:]) >= 1
    mixed_digits = any(c.isdigit() for c in raw_token) and any(c.isalpha() for c in raw_token)
    return len(raw_token) >= 3 and (inner_caps or mixed_digits)


def _contains(tokens: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    n = len(phrase)
    return any(tokens[i : i + n] == phrase for i in range(len(tokens) - n + 1))


def _can_name(phrase: tuple[str, ...], title: str) -> bool:
    """The title's short name (before a colon), a phrase with a name-like word of the
    title (acronym, CamelCase, letters with digits), or three or more content words."""
    name_words = {w for raw in re.findall(r"\w+", title) if _looks_like_a_name(raw) for w in words(raw)}
    name = short_name(title)
    content_words = sum(w not in STOPWORDS for w in phrase)
    return (name != title and phrase == tuple(words(name))) or bool(name_words & set(phrase)) or content_words >= 3


class NameMatcher:
    """Finds papers a question names, by phrases that identify exactly one paper.

    A title phrase names its paper when it occurs in no other paper's title or
    abstract, neither starts nor ends with a function word, and can name (see
    _can_name), so common words and generic pairs ("sequence models") never name
    a paper. Decided per phrase of the question, exactly, with the index's BM25
    postings: the titles that hold all its words, then the passages of other
    papers that do. Nothing is precomputed over the corpus, so a start costs
    nothing and an ingest never has to update a table of names.
    """

    def __init__(self, snapshot: IndexSnapshot):
        self.snapshot = snapshot
        self._owner: dict[tuple[str, ...], str | None] = {}
        self._title_words: dict[str, tuple[str, ...]] = {}

    def named_papers(self, question: str) -> dict[str, int]:
        """paper id -> words in the longest phrase of the question that names it."""
        return {paper_id: length for paper_id, (_, length) in self.mentions(question).items()}

    def mentions(self, text: str) -> dict[str, tuple[int, int]]:
        """paper id -> (word position of its first mention, words in its longest name phrase)."""
        tokens = words(text)
        found: dict[str, tuple[int, int]] = {}
        for n in range(1, MAX_NAME_WORDS + 1):
            for position in range(len(tokens) - n + 1):
                paper_id = self.owner(tuple(tokens[position : position + n]))
                if paper_id is not None:
                    first, longest = found.get(paper_id, (position, n))
                    found[paper_id] = (min(first, position), max(longest, n))
        return found

    def owner(self, phrase: tuple[str, ...]) -> str | None:
        """The one paper this phrase names, if any."""
        if phrase not in self._owner:
            if len(self._owner) >= NAME_CACHE_SIZE:
                self._owner.clear()
            self._owner[phrase] = self._find_owner(phrase)
        return self._owner[phrase]

    def _find_owner(self, phrase: tuple[str, ...]) -> str | None:
        if phrase[0] in STOPWORDS or phrase[-1] in STOPWORDS:
            return None
        terms = bm25_terms(" ".join(phrase))
        titles = self.snapshot.title_lexical
        owners = []
        for row in titles.rows_with_all(terms):
            paper_id = titles.doc_ids[row]
            if _contains(self.title_words(paper_id), phrase):
                owners.append(paper_id)
                if len(owners) > 1:
                    return None
        if not owners or not _can_name(phrase, self.snapshot.titles[owners[0]]):
            return None
        owner = owners[0]
        passages = self.snapshot.chunk_lexical
        elsewhere = [
            chunk_id for chunk_id in (passages.doc_ids[row] for row in passages.rows_with_all(terms))
            if not chunk_id.startswith(owner + "@")
        ]
        # Read in small batches: a common phrase usually shows up in the first
        # few passages, so most phrases stop long before reading them all.
        for start in range(0, len(elsewhere), PASSAGE_BATCH):
            batch = self.snapshot.catalog.chunks(elsewhere[start:start + PASSAGE_BATCH])
            if any(_contains(tuple(words(chunk.text)), phrase) for chunk in batch.values()):
                return None  # other titles were checked above
        return owner

    def title_words(self, paper_id: str) -> tuple[str, ...]:
        if paper_id not in self._title_words:
            self._title_words[paper_id] = tuple(words(self.snapshot.titles[paper_id]))
        return self._title_words[paper_id]


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
            **{key: value for key, value in self.paper.citation().items() if key != "title"},
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
    # For a "which papers ..." question: the best cosine similarity of its topic alone (see
    # topic_of) to a passage the filter lets through. The frame's words dilute the question's
    # own vector, so the relevance gate looks at this too.
    topic_similarity: float | None = None
    # Words of that topic that no abstract in the collection contains and that carry its
    # meaning ("weather" in "weather forecasting"): no paper can be about that topic.
    absent_topic_words: list[str] = field(default_factory=list)

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


@dataclass(frozen=True)
class FilteredPapers:
    """A filter and the ids of the papers it lets through (from the catalog)."""

    paper_filter: PaperFilter
    paper_ids: set[str]

    def chroma_where(self) -> dict | None:
        author_ids = sorted(self.paper_ids) if self.paper_filter.author else None
        return self.paper_filter.chroma_where(author_ids)


class PaperLookup(Mapping[str, Paper]):
    """The indexed papers by id, read from the catalog on demand."""

    def __init__(self, snapshot: IndexSnapshot):
        self.snapshot = snapshot

    def __getitem__(self, paper_id: str) -> Paper:
        found = self.snapshot.catalog.papers([paper_id])
        if paper_id not in found:
            raise KeyError(paper_id)
        return found[paper_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self.snapshot.titles)

    def __len__(self) -> int:
        return len(self.snapshot.titles)

    def values(self) -> list[Paper]:  # one query instead of one per paper
        return list(self.snapshot.catalog.papers().values())


class Retriever:
    """Paper retrieval over one index, in stages: candidate generators (dense search,
    BM25, named-paper matching) -> fusion into one ranked list of papers -> the
    configured post-fusion stages, in order -> the top k."""

    def __init__(self, index: PaperIndex, settings: Settings):
        self.index = index
        self.settings = settings
        self.snapshot = index.open_snapshot()
        self.names = NameMatcher(self.snapshot)
        self.stages = [load_stage(spec, settings, self) for spec in settings.retrieval.stages]

    @property
    def embedder(self):
        return self.index.embedder

    @property
    def generation(self) -> int:
        """The index generation this retriever loaded."""
        return self.snapshot.generation

    @property
    def titles(self) -> dict[str, str]:
        """paper id -> title, for every indexed paper."""
        return self.snapshot.titles

    @property
    def papers(self) -> Mapping[str, Paper]:
        """paper id -> Paper, read from the catalog when asked (iterating reads every abstract)."""
        return PaperLookup(self.snapshot)

    # --- candidate generators: (chunk id, score) best first, or named paper ids ---------
    def dense_hits(
        self, query: str, n: int, allowed: FilteredPapers | None = None, vector=None
    ) -> list[tuple[str, float]]:
        """``vector``: the query's embedding, when the caller has it already."""
        vector = self.index.embedder.embed([query])[0] if vector is None else list(vector)
        where = allowed.chroma_where() if allowed else None
        return self.index.dense_search(vector, n, self.snapshot.collection, where=where)

    def bm25_hits(self, query: str, n: int, allowed: FilteredPapers | None = None) -> list[tuple[str, float]]:
        return self.snapshot.chunk_lexical.top(query, n, rows=self._rows(allowed))

    def _rows(self, allowed: FilteredPapers | None):
        """The BM25 rows of the passages a filter lets through (None: every passage)."""
        if not allowed:
            return None
        return self.snapshot.chunk_lexical.rows_of(self.snapshot.catalog.chunk_ids_of(allowed.paper_ids))

    def fusion_weights(self, kind: str) -> dict[str, float]:
        """How much each search counts for this kind of question (comparisons trust BM25 more)."""
        if kind == "comparison":
            return {"dense": self.settings.retrieval.comparison_dense_weight, "bm25": self.settings.retrieval.comparison_bm25_weight}
        return {"dense": self.settings.retrieval.dense_weight, "bm25": self.settings.retrieval.bm25_weight}

    def expanded_terms(self, query: str, feedback: list[Paper]) -> dict[str, float]:
        """The query's terms (weight 1) and the feedback papers' most distinctive other terms
        (RM3-style: summed term share x idf, scaled so the best counts feedback_weight). A term
        only one passage holds brings no other paper, so it is left out."""
        lexical = self.snapshot.chunk_lexical
        own = set(bm25_terms(query))
        found: dict[str, float] = {}
        for paper in feedback:
            counts = Counter(bm25_terms(f"{paper.title} {paper.abstract}"))
            total = sum(counts.values()) or 1
            for term, count in counts.items():
                frequency = lexical.document_frequency(term)
                if term not in own and frequency >= 2:
                    found[term] = found.get(term, 0.0) + count / total * math.log(len(lexical) / frequency)
        added = sorted(found, key=lambda t: -found[t])[: self.settings.retrieval.feedback_terms]
        scale = max((found[t] for t in added), default=1.0)
        weight = self.settings.retrieval.feedback_weight
        return dict.fromkeys(own, 1.0) | {t: weight * found[t] / scale for t in added}

    def _stored_vectors(self, paper_ids: list[str], known: dict[str, list[np.ndarray]]) -> dict[str, list[np.ndarray]]:
        """paper id -> its passages' stored embeddings, read from the store once per paper
        (``known``: those read already, kept and extended)."""
        missing = [pid for pid in paper_ids if pid not in known]
        chunks_of = self.snapshot.catalog.chunks_of(missing)
        stored = self.index.chunk_vectors([c.id for chunks in chunks_of.values() for c in chunks], self.snapshot.collection)
        for pid in missing:
            known[pid] = [stored[c.id] for c in chunks_of.get(pid, []) if c.id in stored]
        return known

    def vector_toward(self, vector: np.ndarray, feedback: list[Paper], known: dict | None = None) -> np.ndarray:
        """The query embedding moved toward the feedback papers' passages (Rocchio), unit length."""
        by_paper = self._stored_vectors([p.id for p in feedback], {} if known is None else known)
        stored = [v for p in feedback for v in by_paper[p.id]]
        if not stored:
            return vector
        moved = vector + self.settings.retrieval.feedback_weight * np.mean(stored, axis=0)
        return moved / (np.linalg.norm(moved) or 1.0)

    def _question_similarities(self, vector: np.ndarray, papers: list[RetrievedPaper], known: dict) -> None:
        """Each paper's dense_similarity to the question itself (the relevance gate reads it),
        not to the query the feedback moved."""
        by_paper = self._stored_vectors([p.paper.id for p in papers], known)
        for paper in papers:
            own = by_paper[paper.paper.id]
            paper.dense_similarity = float(max(np.asarray(own) @ vector)) if own else None

    def filtered(self, paper_filter: PaperFilter) -> FilteredPapers:
        """The papers a filter lets through; a clear error when there are none."""
        paper_ids = self.snapshot.catalog.paper_ids_matching(paper_filter)
        if not paper_ids:
            raise NothingMatchesFilterError(
                f"no paper in this collection matches {paper_filter.describe()}: widen or clear the filter"
            )
        return FilteredPapers(paper_filter, paper_ids)

    def search(
        self,
        query: str,
        k: int | None = None,
        mode: str | None = None,
        paper_filter: PaperFilter | None = None,
        understood=None,
    ) -> RetrievalResult:
        """The k best papers for the query, among those the filter lets through. ``understood``
        (a rag.understanding.Query of this query) brings what was decided about it already:
        its embedding, the papers it names, whether it asks for several papers."""
        query = query.strip()
        problem = question_problem(query, None)  # the standalone query may be longer than what was typed
        if problem:  # the tokenizer refuses a broken character (argv's undecodable bytes, JSON's "\ud800")
            raise InvalidQuestionError(problem)
        k = k or self.settings.retrieval.top_k
        mode = mode or self.settings.retrieval.mode
        started = time.perf_counter()
        named = {}
        if mode == "hybrid":
            named = dict(understood.named) if understood else self.names.named_papers(query)
        kind = understood.kind if understood else question_kind(query, named)
        n = self.settings.retrieval.multi_candidate_chunks if kind == "multi" else self.settings.retrieval.candidate_chunks
        allowed = self.filtered(paper_filter) if paper_filter else None
        if allowed:
            named = {pid: length for pid, length in named.items() if pid in allowed.paper_ids}
        weights = self.fusion_weights(kind)

        vector = None
        if mode in ("hybrid", "dense"):
            vector = np.asarray(understood.vector if understood is not None else self.index.embedder.embed([query])[0])
        dense_hits = self.dense_hits(query, n, allowed, vector) if vector is not None else []
        bm25_hits = self.bm25_hits(query, n, allowed) if mode in ("hybrid", "bm25") else []
        papers = self.fuse(dense_hits, bm25_hits, named, weights)
        if kind == "multi" and mode == "hybrid" and self.settings.retrieval.feedback_papers and papers:
            # Pseudo-relevance feedback: the first ranking's best papers widen both queries.
            first = [p.paper for p in papers[: self.settings.retrieval.feedback_papers]]
            vectors: dict[str, list[np.ndarray]] = {}  # stored passage embeddings, read once per paper
            dense_hits = self.dense_hits(query, n, allowed, self.vector_toward(vector, first, vectors))
            bm25_hits = self.snapshot.chunk_lexical.top_weighted(
                self.expanded_terms(query, first), n, rows=self._rows(allowed)
            )
            papers = self.fuse(dense_hits, bm25_hits, named, weights)
            self._question_similarities(vector, papers, vectors)
        for stage in self.stages:
            papers = stage.apply(query, papers)

        several = kind == "multi"
        topic = (understood.topic if understood else topic_of(query)) if several and mode in ("hybrid", "dense") else None
        result = RetrievalResult(query=query, papers=papers[:k], mode=mode)
        if topic:
            result.topic_similarity, result.absent_topic_words = self._topic_signals(topic, allowed)
        result.timings_ms["retrieve"] = (time.perf_counter() - started) * 1000
        return result

    def _topic_signals(self, topic: str, allowed: FilteredPapers | None) -> tuple[float | None, list[str]]:
        """The topic's best passage similarity, and its words absent from every abstract
        when leaving them out changes what the topic means."""
        lexical = self.snapshot.chunk_lexical
        topic_terms = bm25_terms(topic)
        checked = len(topic_terms) <= self.settings.answering.max_topic_words_checked
        absent = lexical.absent_terms(topic_terms) if checked else set()
        absent_words = [w for w in topic.split() if (terms := bm25_terms(w)) and set(terms) <= absent]
        rest = " ".join(w for w in topic.split() if w not in absent_words)
        vectors = np.asarray(self.index.embedder.embed([topic, rest] if absent_words and rest else [topic]))
        where = allowed.chroma_where() if allowed else None
        hits = self.index.dense_search(vectors[0].tolist(), 1, self.snapshot.collection, where=where)
        meaning_kept = float(vectors[0] @ vectors[1]) if len(vectors) > 1 else 0.0
        if meaning_kept >= self.settings.answering.min_topic_meaning_kept:
            absent_words = []  # incidental words ("stitched", "personalize") the topic does without
        return (hits[0][1] if hits else None), [w.strip(",.;:?!\"'()") for w in absent_words]

    def fuse(
        self,
        dense_hits: list[tuple[str, float]],
        bm25_hits: list[tuple[str, float]],
        named: dict[str, int],
        weights: dict[str, float] | None = None,
    ) -> list[RetrievedPaper]:
        """Every candidate paper, best first, with its best passages. ``weights``: of each
        search ("dense", "bm25"); the single-paper ones when not given."""
        catalog = self.snapshot.catalog
        # Vectors the catalog does not list (an ingest in progress or killed) are skipped.
        hit_chunks = catalog.chunks([cid for cid, _ in dense_hits + bm25_hits])
        dense_hits = [(cid, s) for cid, s in dense_hits if cid in hit_chunks]
        bm25_hits = [(cid, s) for cid, s in bm25_hits if cid in hit_chunks]
        weights = weights or self.fusion_weights("single")
        best = {"dense": _best_per_paper(dense_hits, hit_chunks), "bm25": _best_per_paper(bm25_hits, hit_chunks)}
        candidates = set(best["dense"]) | set(best["bm25"]) | set(named)
        scores = dict.fromkeys(candidates, 0.0)
        for signal, per_paper in best.items():
            standard = standardise(per_paper)
            floor = min(standard.values(), default=0.0)  # missing from a list: below all it ranked
            for paper_id in candidates:
                scores[paper_id] += weights[signal] * standard.get(paper_id, floor)
        # A paper the question names comes before anything the searches alone score.
        for paper_id, length in named.items():
            scores[paper_id] += NAMED_BONUS + length
        # Passages of a paper are ordered by the same weighted z-scores, per chunk.
        dense_z, bm25_z = standardise(dict(dense_hits)), standardise(dict(bm25_hits))
        chunk_scores = {
            cid: weights["dense"] * dense_z.get(cid, 0.0) + weights["bm25"] * bm25_z.get(cid, 0.0)
            for cid in dense_z.keys() | bm25_z.keys()
        }

        papers = catalog.papers(candidates)
        chunks_of = catalog.chunks_of(candidates)
        ranked = sorted((pid for pid in scores if pid in papers), key=lambda pid: (-scores[pid], pid))  # ties by id, not set order
        results = []
        for paper_id in ranked:
            own = sorted(
                chunks_of.get(paper_id, []), key=lambda c: (-chunk_scores.get(c.id, -1e9), c.ordinal)
            )[: self.settings.retrieval.passages_per_paper]
            results.append(
                RetrievedPaper(
                    paper=papers[paper_id],
                    score=scores[paper_id],
                    passages=[Passage(c.id, c.text, c.ordinal) for c in own],
                    dense_similarity=best["dense"].get(paper_id),
                    bm25_score=best["bm25"].get(paper_id),
                    named=paper_id in named,
                )
            )
        return results


def _best_per_paper(hits: list[tuple[str, float]], chunks: dict[str, Chunk]) -> dict[str, float]:
    best: dict[str, float] = {}
    for chunk_id, score in hits:  # hits are best first
        best.setdefault(chunks[chunk_id].paper_id, score)
    return best


def standardise(values: dict[str, float]) -> dict[str, float]:
    """z-scores, so cosine similarities and BM25 scores can be added."""
    if len(values) < 2:
        return dict.fromkeys(values, 1.0)
    spread = statistics.pstdev(values.values()) or 1.0
    centre = statistics.fmean(values.values())
    return {key: (value - centre) / spread for key, value in values.items()}
