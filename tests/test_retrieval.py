import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

from rag.paper import Paper
from rag.index import PaperIndex
from rag.lexical import LexicalIndex
from rag.retrieval import MAX_NAME_WORDS, NameMatcher, Retriever, _looks_like_a_name, topic_of
from rag.text import STOPWORDS, bm25_terms, words

TRANSLICO = "TransliCo: A Contrastive Learning Framework to Address the Script Barrier in Multilingual Pretrained Language Models"
SEMANTIC_HUB = "The Semantic Hub Hypothesis: Language Models Share Semantic Representations Across Languages and Modalities"
DIFFCSE = "DiffCSE: Difference-based Contrastive Learning for Sentence Embeddings"
BERT4REC = "BERT4Rec: Sequential Recommendation with Bidirectional Encoder Representations from Transformer"
QUESTIONS = Path(__file__).resolve().parents[1] / "eval" / "questions.jsonl"


def test_bm25_prefers_rare_matching_terms(tmp_path):
    docs = [("a", "the cat sat on the mat"), ("b", "zebrafish larvae swim"), ("c", "cats and dogs and mats")]
    bm25 = LexicalIndex.write(tmp_path / "lexical", None, set(), docs, k1=1.5, b=0.75)
    assert bm25.top("zebrafish swimming", 3)[0][0] == "b"
    assert [i for i, _ in bm25.top("cat mat", 3)][:2] == ["a", "c"]  # plural folding: cats -> cat
    assert bm25.top("unrelated words", 3) == []


def test_bm25_built_incrementally_equals_bm25_built_at_once(tmp_path):
    docs = [(str(i), text) for i, text in enumerate(["graph neural networks", "protein folding with graphs",
                                                      "neural machine translation", "zebrafish larvae"])]
    at_once = LexicalIndex.write(tmp_path / "once", None, set(), docs[1:] + [("0", "graph neural networks!")], 1.5, 0.75)
    step = LexicalIndex.write(tmp_path / "step1", None, set(), docs[:3], 1.5, 0.75)
    step = LexicalIndex.write(tmp_path / "step2", step, {"0"}, [docs[3], ("0", "graph neural networks!")], 1.5, 0.75)
    reloaded = LexicalIndex.load(tmp_path / "step2")
    for query in ("graph", "neural networks", "zebrafish protein"):
        expected = dict(at_once.top(query, 4))
        found = dict(reloaded.top(query, 4))
        assert found.keys() == expected.keys() and list(found.values()) == pytest.approx(list(expected.values()))
    assert not (tmp_path / "step2.tmp").exists()


def test_name_matcher_uses_only_identifying_phrases(settings, embedder):
    papers = [
        Paper(title="DiffCSE: Contrastive Learning for Sentences", abstract="We propose DiffCSE."),
        Paper(title="SimCLR for Images", abstract="Contrastive learning on images."),
        Paper(title="The Semantic Hub Hypothesis", abstract="Models share a semantic hub."),
    ]
    index = PaperIndex(settings, embedder)
    index.ingest(papers, progress=False)
    names = NameMatcher(index.open_snapshot())
    assert names.named_papers("how does diffcse work?") == {papers[0].id: 1}
    assert papers[2].id in names.named_papers("compare the Semantic Hub Hypothesis with DiffCSE")
    # "contrastive learning" is in two papers, "learning" is a plain word: neither names a paper
    assert names.named_papers("papers on contrastive learning") == {}
    assert names.named_papers("learning for images") == {}


def _reference_names(papers: list[Paper]) -> dict[tuple[str, ...], str]:
    """Every naming phrase, found by brute force over all titles and abstracts
    (the definition NameMatcher decides per phrase from the index)."""
    candidates: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for paper in papers:
        name_words = {w for raw in re.findall(r"\w+", paper.title) if _looks_like_a_name(raw) for w in words(raw)}
        short_name = tuple(words(paper.title.split(":")[0])) if ":" in paper.title else ()
        tokens = words(paper.title)
        for n in range(1, MAX_NAME_WORDS + 1):
            for i in range(len(tokens) - n + 1):
                gram = tuple(tokens[i : i + n])
                if gram[0] in STOPWORDS or gram[-1] in STOPWORDS:
                    continue
                if gram == short_name or name_words & set(gram) or sum(w not in STOPWORDS for w in gram) >= 3:
                    candidates[gram].add(paper.id)
    seen_in: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for paper in papers:
        tokens = words(paper.title) + ["|"] + words(paper.abstract)
        for n in range(1, MAX_NAME_WORDS + 1):
            for i in range(len(tokens) - n + 1):
                gram = tuple(tokens[i : i + n])
                if gram in candidates:
                    seen_in[gram].add(paper.id)
    return {g: next(iter(o)) for g, o in candidates.items() if len(o) == 1 and seen_in[g] == o}


def test_name_matching_from_the_index_is_exact_on_the_whole_corpus(retriever, bundled_papers):
    reference = _reference_names(bundled_papers)
    texts = [json.loads(line)["question"] for line in QUESTIONS.read_text().splitlines() if line.strip()]
    texts += [p.title for p in bundled_papers]
    for text in texts:
        tokens = words(text)
        expected = {
            reference[tuple(tokens[i : i + n])]
            for n in range(1, MAX_NAME_WORDS + 1)
            for i in range(len(tokens) - n + 1)
            if tuple(tokens[i : i + n]) in reference
        }
        assert set(retriever.names.named_papers(text)) == expected, text


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Compare TransliCo and the Semantic Hub Hypothesis", {TRANSLICO, SEMANTIC_HUB}),
        ("How do DiffCSE and BERT4Rec differ in what they learn?", {DIFFCSE, BERT4REC}),
        ("What is BERT4Rec trained to predict?", {BERT4REC}),
        ("difference-based contrastive learning for sentence embeddings", {DIFFCSE}),
    ],
)
def test_named_papers_come_first(retriever, question, expected):
    result = retriever.search(question, k=5)
    top = {p.title for p in result.papers[: len(expected)]}
    assert top == expected
    assert all(p.named for p in result.papers[: len(expected)])


def test_a_named_paper_is_found_even_when_the_searches_miss_it(retriever):
    question = "Compare TransliCo and the Semantic Hub Hypothesis"
    starved = retriever.settings.changed(**{"candidate_chunks": 1})
    original, retriever.settings = retriever.settings, starved
    try:
        hybrid = [p.title for p in retriever.search(question, k=5).papers]
        dense = [p.title for p in retriever.search(question, k=5, mode="dense").papers]
    finally:
        retriever.settings = original
    assert TRANSLICO not in dense
    assert set(hybrid[:2]) == {TRANSLICO, SEMANTIC_HUB}


def test_results_are_papers_with_passages_and_scores(retriever):
    result = retriever.search("a speech corpus recorded with many devices at different distances", k=5)
    assert result.papers[0].title.startswith("3D-Speaker")
    ids = [p.paper.id for p in result.papers]
    assert len(ids) == len(set(ids)) == 5
    scores = [p.score for p in result.papers]
    assert scores == sorted(scores, reverse=True)
    best = result.papers[0]
    assert best.passages and all(s.text in best.paper.abstract for s in best.passages)
    assert best.dense_similarity is not None and 0 < best.dense_similarity <= 1
    assert result.timings_ms["retrieve"] > 0


def test_paraphrased_questions_find_their_paper(retriever):
    cases = {
        "memory models with distinct representations for storing and for retrieving": "Key-value memory in the brain",
        "detecting AI-generated images using features from reversing the denoising process": "Diffusion Noise Feature: Accurate and Fast Generated Image Detection",
    }
    for question, title in cases.items():
        assert title in [p.title for p in retriever.search(question, k=3).papers]


def test_empty_question_is_refused(retriever):
    with pytest.raises(ValueError, match="Please type a question"):
        retriever.search("   ")


def test_a_retrieval_stage_named_in_the_settings_runs_after_fusion(retriever, tmp_path, monkeypatch):
    """Adding a stage (a reranker, a filter) is one module and one setting."""
    from rag.retrieval import Retriever

    (tmp_path / "reversing_stage.py").write_text(
        "class Reverse:\n"
        "    def __init__(self, settings, retriever):\n"
        "        self.retriever = retriever\n"
        "    def apply(self, query, papers):\n"
        "        return list(reversed(papers))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    question = "contrastive learning of sentence embeddings"
    every_candidate = [p.title for p in retriever.search(question, k=1000).papers]
    settings = retriever.settings.changed(**{"retrieval_stages": ["reversing_stage:Reverse"]})
    staged = Retriever(retriever.index, settings)
    assert [p.title for p in staged.search(question, k=3).papers] == every_candidate[::-1][:3]


def test_a_stage_that_cannot_be_loaded_is_a_settings_error(retriever):
    from rag.errors import SettingsError
    from rag.retrieval import Retriever

    settings = retriever.settings.changed(**{"retrieval_stages": ["no_such_module:Stage"]})
    with pytest.raises(SettingsError, match="no_such_module:Stage"):
        Retriever(retriever.index, settings)


@pytest.mark.parametrize(
    ("question", "topic"),
    [
        ("Which of my papers from 2018 use contrastive learning?", "contrastive learning"),
        ("Are there any papers on sparse autoencoders?", "sparse autoencoders"),
        ("Find studies that apply diffusion models.", "diffusion models"),
        ("Which papers published in 2019-2021 discuss word vectors?", "word vectors"),
        ("Which of my papers are about protein folding?", "protein folding"),
        ("What does DiffCSE propose?", None),  # not a list question: no topic
        ("Which papers?", None),
    ],
)
def test_topic_of_a_list_question_drops_its_frame(question, topic):
    assert topic_of(question) == topic


def test_weighted_bm25_terms_count_by_their_weight(tmp_path):
    docs = [("a", "graph neural networks for molecules"), ("b", "protein folding"), ("c", "graph drawing")]
    bm25 = LexicalIndex.write(tmp_path / "lexical", None, set(), docs, k1=1.5, b=0.75)
    assert bm25.top_weighted({"graph": 1.0}, 3) == bm25.top("graph", 3)
    # An added term at a small weight brings its document in, below the question's own word.
    found = dict(bm25.top_weighted({"graph": 1.0, "protein": 0.1}, 3))
    assert set(found) == {"a", "b", "c"} and found["b"] < min(found["a"], found["c"])
    assert bm25.document_frequency("graph") == 2 and bm25.document_frequency("zebra") == 0


@pytest.mark.parametrize(
    "question, kind",
    [
        ("Which papers learn sentence embeddings with contrastive learning?", "multi"),
        ("Compare TransliCo and the Semantic Hub Hypothesis", "comparison"),
        ("What does DiffCSE learn?", "single"),
    ],
)
def test_the_kind_of_question_picks_its_fusion_weights(retriever, question, kind):
    from rag.retrieval import question_kind

    assert question_kind(question, retriever.names.named_papers(question)) == kind
    weights = retriever.fusion_weights(kind)
    settings = retriever.settings
    expected = (
        (settings.retrieval.comparison_dense_weight, settings.retrieval.comparison_bm25_weight) if kind == "comparison"
        else (settings.retrieval.dense_weight, settings.retrieval.bm25_weight)
    )  # fmt: skip
    assert (weights["dense"], weights["bm25"]) == expected


def test_feedback_widens_a_which_papers_query_with_its_top_papers_words(retriever):
    question = "Which papers learn sentence embeddings with contrastive learning?"
    top = [p.paper for p in retriever.search(question, k=3).papers]
    expanded = retriever.expanded_terms(question, top)
    own = {t for t, w in expanded.items() if w == 1.0}
    added = {t: w for t, w in expanded.items() if t not in own}
    assert own == set(bm25_terms(question))
    assert 0 < len(added) <= retriever.settings.retrieval.feedback_terms
    assert max(added.values()) == pytest.approx(retriever.settings.retrieval.feedback_weight)
    # Each added word comes from the feedback papers and at least one other passage.
    top_words = set(bm25_terms(" ".join(f"{p.title} {p.abstract}" for p in top)))
    assert all(t in top_words and retriever.snapshot.chunk_lexical.document_frequency(t) >= 2 for t in added)


def test_feedback_changes_the_ranking_but_not_the_similarity_the_relevance_gate_reads(retriever):
    """dense_similarity stays the paper's cosine to the question itself, not to the query the
    feedback moved toward the top papers (which would let an off-topic list pass the gate)."""
    question = "Which papers learn sentence embeddings with contrastive learning?"
    with_feedback = retriever.search(question, k=15).papers
    plain = Retriever(retriever.index, retriever.settings.changed(**{"feedback_papers": 0}))
    without = {p.title: p for p in plain.search(question, k=40).papers}
    shared = [p for p in with_feedback if p.title in without and without[p.title].dense_similarity is not None]
    assert len(shared) >= 5
    for paper in shared:
        assert paper.dense_similarity == pytest.approx(without[paper.title].dense_similarity, abs=1e-4)
    assert [p.title for p in with_feedback] != list(without)[:15]


@pytest.mark.parametrize(
    "question, kind",
    [
        ("Which papers build or compare word vectors made of pieces of words?", "multi"),  # a list, not a comparison
        ("What work is there on positional encodings for long inputs?", "multi"),
        ("What research links memory in psychology to machine learning?", "multi"),
        ("Which work trained linear classifiers on a few neurons?", "single"),  # one paper
        ("Compare TransliCo and the Semantic Hub Hypothesis", "comparison"),
    ],
)
def test_list_questions_in_outsider_wording_are_lists(retriever, question, kind):
    from rag.retrieval import question_kind

    assert question_kind(question, retriever.names.named_papers(question)) == kind


def test_a_long_described_topic_is_not_refused_for_a_word_no_abstract_uses(retriever):
    """'weather forecasting' without 'weather' means nothing; a newcomer's 18-word description
    without 'favourite' still means what it did."""
    short = retriever.search("Which papers study weather forecasting?")
    assert short.absent_topic_words == ["weather"]
    described = retriever.search(
        "Which papers teach an image generator about one particular thing I own, say my dog or a favourite toy, "
        "by training on just a handful of example photos of it?"
    )
    assert described.absent_topic_words == []
