"""Filters by year range, author and category: applied in Chroma (a where clause)
and in BM25 alike, so the top k is taken among the papers that pass, and a
filter that nothing passes is a clear message. The metadata here is made up by
the test (the bundled abstracts carry none); the papers and vectors are real."""

from __future__ import annotations

import dataclasses

import pytest

from rag.errors import InvalidQuestionError, NothingMatchesFilterError
from rag.filters import PaperFilter
from rag.index import PaperIndex
from rag.retrieval import Retriever
from tests.test_generation import ScriptedLLM, engine_with, papers_read, quoting

AUTHORS = ["Ada Lovelace, Alan Turing", "Grace Hopper", "Geoffrey Hinton, Yann LeCun", "Alan Kay"]
CATEGORIES = [("cs.CL",), ("cs.LG", "stat.ML"), ("cs.CV",), ("cs.CLX",), ("q-bio.NC",)]


def with_metadata(papers):
    """Years 2015-2024, four author lists and four category sets, spread over the papers."""
    return [
        dataclasses.replace(
            paper, year=2015 + i % 10, authors=AUTHORS[i % 4], categories=CATEGORIES[(i // 2) % 5]
        )
        for i, paper in enumerate(papers)
    ]


@pytest.fixture(scope="module")
def filtered_index(tmp_path_factory, real_embedder, bundled_papers):
    from rag.settings import Settings

    settings = Settings(data_dir=tmp_path_factory.mktemp("filters") / "data", candidate_chunks=400)
    papers = with_metadata(bundled_papers[:60])
    index = PaperIndex(settings, real_embedder)
    index.ingest(papers, progress=False)
    return Retriever(index, settings), {p.id: p for p in papers}


def passes(paper, wanted: PaperFilter) -> bool:
    """The filter's meaning, written plainly."""
    if (wanted.year_from is not None or wanted.year_to is not None) and not paper.year:
        return False
    if wanted.year_from is not None and paper.year < wanted.year_from:
        return False
    if wanted.year_to is not None and paper.year > wanted.year_to:
        return False
    if wanted.author and wanted.author.lower() not in paper.authors.lower():
        return False
    if wanted.category:
        keys = {c.lower() for c in paper.categories} | {c.lower().split(".")[0] for c in paper.categories}
        if wanted.category.lower() not in keys:
            return False
    return True


FILTERS = [
    PaperFilter(year_from=2018, year_to=2020),
    PaperFilter(year_from=2022),
    PaperFilter(year_to=2016),
    PaperFilter(author="alan"),
    PaperFilter(author="HINTON"),
    PaperFilter(category="cs.CL"),
    PaperFilter(category="cs"),
    PaperFilter(category="stat"),
    PaperFilter(year_from=2017, author="alan", category="cs"),
]
QUESTIONS = ["contrastive learning of sentence embeddings", "multilingual language models", "recommendation"]


@pytest.mark.parametrize("wanted", FILTERS, ids=lambda f: f.describe())
def test_the_catalog_and_the_plain_meaning_agree(filtered_index, wanted):
    retriever, papers = filtered_index
    expected = {pid for pid, paper in papers.items() if passes(paper, wanted)}
    assert expected, "each filter of the test lets some papers through"
    assert retriever.snapshot.catalog.paper_ids_matching(wanted) == expected


@pytest.mark.parametrize("mode", ["dense", "bm25"])
@pytest.mark.parametrize("wanted", FILTERS, ids=lambda f: f.describe())
def test_the_top_k_is_taken_after_filtering_in_each_search(filtered_index, wanted, mode):
    """Filtered = the unfiltered ranking with the other papers taken out, and k papers
    come back whenever k pass (not fewer because the filter came after the top k)."""
    retriever, papers = filtered_index
    allowed = {pid for pid, paper in papers.items() if passes(paper, wanted)}
    for question in QUESTIONS:
        everything = retriever.search(question, k=len(papers), mode=mode)
        expected = [p.paper.id for p in everything.papers if p.paper.id in allowed]
        k = min(5, len(expected))
        result = retriever.search(question, k=5, mode=mode, paper_filter=wanted)
        assert [p.paper.id for p in result.papers] == expected[:k], (question, mode)


@pytest.mark.parametrize("wanted", FILTERS, ids=lambda f: f.describe())
def test_hybrid_search_and_named_papers_respect_the_filter(filtered_index, wanted):
    retriever, papers = filtered_index
    allowed = {pid for pid, paper in papers.items() if passes(paper, wanted)}
    outside = next(p for p in papers.values() if p.id not in allowed)
    for question in [*QUESTIONS, f"What does {outside.title} propose?"]:
        result = retriever.search(question, k=5, paper_filter=wanted)
        assert result.papers and {p.paper.id for p in result.papers} <= allowed
        assert len(result.papers) == min(5, len(allowed))


def test_a_filter_nothing_passes_is_a_clear_error_and_an_answer_says_so(filtered_index):
    retriever, _ = filtered_index
    nothing = PaperFilter(year_from=1990, year_to=1995, author="nobody")
    with pytest.raises(NothingMatchesFilterError, match=r"no paper .* matches years 1990-1995, author 'nobody'"):
        retriever.search("contrastive learning", paper_filter=nothing)
    engine, llm = engine_with(retriever, ScriptedLLM("never used [1]."))
    answer = engine.ask("What is contrastive learning used for?", paper_filter=nothing)
    assert answer.error and "no paper in this collection matches" in answer.text
    assert llm.prompts == [] and answer.cited == []


def test_a_refusal_under_a_filter_says_only_the_filtered_papers_were_searched(filtered_index):
    retriever, _ = filtered_index
    engine, llm = engine_with(retriever, ScriptedLLM("never used [1]."))
    question = "What is the boiling point of liquid nitrogen at sea level?"
    unfiltered = engine.ask(question)
    assert unfiltered.refused and unfiltered.notice.startswith("The abstracts in this collection do not answer")
    filtered = engine.ask(question, paper_filter=PaperFilter(year_from=2016, year_to=2017))
    assert filtered.refused and filtered.notice.startswith("The abstracts searched (years 2016-2017) do not answer")
    assert llm.prompts == []


def test_an_upside_down_year_range_is_rejected():
    with pytest.raises(InvalidQuestionError, match="2021-2019 is empty"):
        PaperFilter(year_from=2021, year_to=2019)


def test_answers_cite_only_papers_that_pass(filtered_index):
    retriever, papers = filtered_index
    wanted = PaperFilter(category="cs.CL")
    reply = "They study it [1]."
    engine, llm = engine_with(retriever, ScriptedLLM(reply))
    answer = engine.ask("Which papers study multilingual language models?", paper_filter=wanted)
    given = [p.paper for p in answer.retrieved]
    assert given and all(passes(paper, wanted) for paper in given)
    assert all(passes(source.paper, wanted) for source in answer.sources)


@pytest.fixture(scope="module")
def zotero_library(tmp_path_factory, real_embedder):
    """The Zotero-style sample export (tests/data/zotero.bib) as its own index."""
    from pathlib import Path

    from rag.corpus import read_corpus
    from rag.settings import Settings

    settings = Settings(data_dir=tmp_path_factory.mktemp("zotero") / "data")
    papers = read_corpus([Path(__file__).parent / "data" / "zotero.bib"]).papers
    index = PaperIndex(settings, real_embedder)
    index.ingest(papers, progress=False)
    return Retriever(index, settings)


def test_a_which_of_my_papers_question_is_gated_on_its_topic_not_its_frame(zotero_library):
    """The issue's scenario: its words "which of my papers from 2018 use" pull the question's
    vector away from the one 2018 paper (Contrastive Predictive Coding) below the relevance
    gate; the topic alone is well above it, so the paper reaches the model."""
    in_2018 = PaperFilter(year_from=2018, year_to=2018)
    question = "Which of my papers from 2018 use contrastive learning?"
    result = zotero_library.search(question, paper_filter=in_2018)
    framed = max(p.dense_similarity for p in result.papers if p.dense_similarity is not None)
    assert framed < zotero_library.settings.answering.min_relevance <= result.topic_similarity

    engine, llm = engine_with(zotero_library, ScriptedLLM(quoting))
    answer = engine.ask(question, paper_filter=in_2018)
    assert papers_read(llm) == ["Representation Learning with Contrastive Predictive Coding"]
    assert not answer.refused and answer.cited_titles == papers_read(llm)

    for off_topic in ["Which of my papers from 2018 use stock market prediction?", "Which of my papers study weather forecasting?"]:
        engine, llm = engine_with(zotero_library, ScriptedLLM(quoting))
        answer = engine.ask(off_topic, paper_filter=in_2018)
        assert answer.refused and llm.prompts == []


def test_every_front_end_builds_its_filter_through_one_parser():
    from rag.errors import InvalidQuestionError
    from rag.filters import PaperFilter

    assert PaperFilter.of("2019", 2021.0, " Hinton ", "cs.CL") == PaperFilter(2019, 2021, "Hinton", "cs.CL")  # the page's fields
    assert PaperFilter.of(None, "", "", None) is None
    assert PaperFilter.with_year_range("2019-2021") == PaperFilter(2019, 2021)  # the CLI's --years
    assert PaperFilter.with_year_range("2019") == PaperFilter(2019, 2019)
    assert PaperFilter.with_year_range("-2021") == PaperFilter(None, 2021)
    assert PaperFilter.with_year_range("2019-") == PaperFilter(2019, None)
    with pytest.raises(InvalidQuestionError, match="the first year filter 'soon' is not a year"):
        PaperFilter.of("soon")
    with pytest.raises(InvalidQuestionError, match="use YEAR, FROM-TO"):
        PaperFilter.with_year_range("19x9")
    with pytest.raises(InvalidQuestionError, match="is empty"):
        PaperFilter.with_year_range("2021-2019")
