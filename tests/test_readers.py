"""The readers of reference-manager exports (BibTeX, RIS) and of arXiv metadata,
the selection by category and date, and what read_corpus skips instead of failing.

The sample files in tests/data are made from the bundled abstracts, so each
paper read from them must come out with the bundled title and abstract."""

from __future__ import annotations

import json
import tracemalloc
from datetime import date
from pathlib import Path

import pytest

from rag.corpus import ArxivSelection, CorpusLoad, load_corpus, read_corpus
from rag.errors import CorpusError
from rag.paper import Paper, normalise_title, stable_paper_id
from rag.settings import BUNDLED_CORPUS

DATA = Path(__file__).parent / "data"
ZOTERO = DATA / "zotero.bib"
ZOTERO_REEXPORT = DATA / "zotero-reexport.bib"
ENDNOTE = DATA / "endnote.ris"
ARXIV = DATA / "arxiv-sample.jsonl"


@pytest.fixture(scope="module")
def bundled() -> dict[str, Paper]:
    """The bundled papers by normalised title."""
    return {normalise_title(p.title): p for p in read_corpus([BUNDLED_CORPUS]).papers}


def by_title(load: CorpusLoad) -> dict[str, Paper]:
    return {p.title: p for p in load.papers}


def assert_text_as_bundled(load: CorpusLoad, bundled: dict[str, Paper]) -> None:
    for paper in load.papers:
        original = bundled[normalise_title(paper.title)]
        assert (paper.title, paper.abstract) == (original.title, original.abstract)


# --- BibTeX -------------------------------------------------------------------------


def test_zotero_export_decodes_latex_to_the_bundled_titles_and_abstracts(bundled):
    load = read_corpus([ZOTERO])
    assert len(load.papers) == 7
    # \emph{}, \textit{}, {Atari}, {mPLMs}, \% and a bare % all come out as the plain text.
    assert_text_as_bundled(load, bundled)
    for paper in load.papers:
        assert not any(char in paper.title + paper.abstract for char in "{}\\")


def test_bibtex_fields_strings_crossref_names_and_eprints():
    papers = by_title(read_corpus([ZOTERO]))
    translico = papers[
        "TransliCo: A Contrastive Learning Framework to Address the Script Barrier in Multilingual Pretrained Language Models"
    ]
    assert translico.authors == "Yihong Liu, Chunlan Ma, Haotian Ye, Hinrich Schütze"  # Sch{\"u}tze
    # booktitle = acl, an @string
    assert translico.venue == "Proceedings of the Annual Meeting of the Association for Computational Linguistics"
    assert translico.year == 2024  # "month = aug" next to it breaks nothing
    assert translico.categories == ("Computer Science - Computation and Language", "multilinguality")
    assert translico.id == stable_paper_id(translico.title, citation_key="liu2024translico")

    zhong = papers["A Frustratingly Easy Approach for Entity and Relation Extraction"]
    assert zhong.venue.startswith("Proceedings of the 2021 Conference of the North American Chapter")
    assert (zhong.doi, zhong.url) == ("10.18653/v1/2021.naacl-main.5", "https://aclanthology.org/2021.naacl-main.5")

    relative = papers["Relative representations enable zero-shot latent space communication"]
    # Both from the @proceedings volume its crossref names.
    assert (relative.venue, relative.year) == ("The Eleventh International Conference on Learning Representations", 2023)
    assert relative.authors.endswith("Francesco Locatello, Emanuele Rodolà")  # Rodol{\`a}

    cpc = papers["Representation Learning with Contrastive Predictive Coding"]
    assert cpc.authors == "Aaron van den Oord, Yazhe Li, Oriol Vinyals"
    assert (cpc.arxiv_id, cpc.year) == ("1807.03748", 2018)
    assert cpc.link == "https://arxiv.org/abs/1807.03748"

    atari = papers["Unsupervised State Representation Learning in Atari"]
    assert "Marc-Alexandre Côté" in atari.authors  # C{\^o}t{\'e}
    assert atari.venue == "Advances in Neural Information Processing Systems"

    haystack = papers["Finding Neurons in a Haystack: Case Studies with Sparse Probing"]
    assert haystack.authors.startswith("Wes Gurnee, Neel Nanda, ")  # "First Last and ..." too

    fasttext = papers["Enriching Word Vectors with Subword Information"]
    assert fasttext.doi == "10.1162/tacl_a_00051"  # the DOI's "_" is not read as LaTeX
    assert fasttext.source == f"{ZOTERO}:56"


def test_bibtex_entry_without_abstract_and_duplicate_are_skipped_with_their_lines():
    load = read_corpus([ZOTERO])
    # The crossref'd @proceedings volume is neither a paper nor a skipped entry.
    assert [str(entry) for entry in load.skipped] == [
        f"{ZOTERO}:68: heinzerling2019sequence has no abstract",
        f"{ZOTERO}:86: bojanowski2016enriching duplicate of {ZOTERO}:56",
    ]
    assert load.skipped[0].line == 68 and load.skipped[0].label == "heinzerling2019sequence"


def test_reexported_bibtex_keeps_the_ids_and_changes_only_the_edited_hash():
    first = {p.id: p for p in read_corpus([ZOTERO]).papers}
    again = {p.id: p for p in read_corpus([ZOTERO_REEXPORT]).papers}
    assert set(first) < set(again)
    [added] = [again[id_] for id_ in set(again) - set(first)]
    assert added.title == "Not All Language Model Features Are Linear"
    changed = [p.title for id_, p in first.items() if p.content_hash != again[id_].content_hash]
    assert changed == ["Finding Neurons in a Haystack: Case Studies with Sparse Probing"]
    assert not any(char in id_ for id_ in again for char in "@#")


def test_one_broken_entry_among_5000_is_skipped(tmp_path):
    entries = [
        f"@article{{key{n},\n  title = {{Paper number {n}}},\n  author = {{Doe, Jane}},\n"
        f"  year = {{2020}},\n  abstract = {{Abstract of paper {n}.}}\n}}\n"
        for n in range(5000)
    ]
    entries[2500] = "@article{key2500,\n  title = {An unclosed title,\n  abstract = {x}\n"
    path = tmp_path / "big.bib"
    path.write_text("\n".join(entries))
    load = read_corpus([path])
    assert len(load.papers) == 4999
    [skipped] = load.skipped
    assert (skipped.line, skipped.label) == (2500 * 7 + 1, "key2500")
    assert "could not be read" in skipped.reason


@pytest.mark.parametrize(
    ("content", "line", "problem"),
    [
        ("@article{broken,\n  title = {never closed\n", 1, "no entry could be read"),
        ("% only a comment\n", None, "no BibTeX entries found"),
    ],
)
def test_bibtex_file_with_nothing_readable_is_an_error(tmp_path, content, line, problem):
    path = tmp_path / "refs.bib"
    path.write_text(content)
    with pytest.raises(CorpusError, match=problem) as caught:
        read_corpus([path])
    assert caught.value.line == line


# --- RIS ----------------------------------------------------------------------------


def test_ris_fields_and_the_record_without_abstract(bundled):
    load = read_corpus([ENDNOTE])  # EndNote style: BOM, CRLF, old and new tags
    assert len(load.papers) == 4
    assert_text_as_bundled(load, bundled)
    assert [str(entry) for entry in load.skipped] == [f"{ENDNOTE}:41: Task Vectors are Cross-Modal has no abstract"]

    papers = by_title(load)
    hub = papers[
        "The Semantic Hub Hypothesis: Language Models Share Semantic Representations Across Languages and Modalities"
    ]
    assert hub.authors == "Zhaofeng Wu, Xinyan Velocity Yu, Dani Yogatama, Jiasen Lu, Yoon Kim"
    assert (hub.venue, hub.year, hub.categories) == (
        "International Conference on Learning Representations",
        2025,
        ("multilinguality", "interpretability"),
    )
    assert hub.source == f"{ENDNOTE}:1"

    # The older tags: T1, A1, N2, Y1, JF.
    sentence = papers["A Comparative Study of Sentence Embedding Models for Assessing Semantic Variation"]
    assert (sentence.authors, sentence.year, sentence.venue) == ("Deven M. Mistry, Ali A. Minai", 2023, "arXiv preprint")
    assert sentence.doi == "10.48550/arXiv.2308.04625"  # the doi.org address removed
    assert sentence.id == stable_paper_id(sentence.title, doi=sentence.doi)

    itransformer = papers["iTransformer: Inverted Transformers Are Effective for Time Series Forecasting"]
    assert itransformer.url == "https://openreview.net/forum?id=JePfAI8fah"
    assert papers["Feature Collapse"].authors == "Thomas Laurent, James H. von Brecht, Xavier Bresson"


def test_ris_record_without_end_line_is_read_and_a_file_without_records_is_an_error(tmp_path):
    path = tmp_path / "refs.ris"
    path.write_text("TY  - JOUR\nTI  - First\nAB  - One.\nTY  - JOUR\nTI  - Second\nAB  - Two.\nER  - \n")
    load = read_corpus([path])
    assert [(p.title, p.abstract, p.source) for p in load.papers] == [
        ("First", "One.", f"{path}:1"),
        ("Second", "Two.", f"{path}:4"),
    ]
    path.write_text("Not RIS at all\n")
    with pytest.raises(CorpusError, match="no RIS record found"):
        read_corpus([path])


# --- arXiv metadata -----------------------------------------------------------------


def test_arxiv_records_are_mapped_and_the_empty_abstract_skipped(bundled):
    load = read_corpus([ARXIV])
    assert len(load.papers) == 11
    assert_text_as_bundled(load, bundled)  # titles and abstracts unwrapped
    assert [str(entry) for entry in load.skipped] == [f"{ARXIV}:2: 1906.01569 has no abstract"]

    papers = by_title(load)
    itransformer = papers["iTransformer: Inverted Transformers Are Effective for Time Series Forecasting"]
    assert (itransformer.id, itransformer.arxiv_id) == ("arxiv-2310.06625", "2310.06625")
    assert (itransformer.year, itransformer.venue, itransformer.categories) == (2023, "ICLR 2024", ("cs.LG",))
    assert itransformer.authors == "Yong Liu, Tengge Hu, Haoran Zhang, Haixu Wu, Shiyu Wang, Lintao Ma, Mingsheng Long"
    hub = papers[
        "The Semantic Hub Hypothesis: Language Models Share Semantic Representations Across Languages and Modalities"
    ]
    assert hub.year == 2024  # the first version's, not the update's (2025)
    zhong = papers["A Frustratingly Easy Approach for Entity and Relation Extraction"]
    assert (zhong.doi, zhong.id) == ("10.18653/v1/2021.naacl-main.5", "arxiv-2010.12812")


def test_arxiv_and_our_records_mix_in_one_file(tmp_path):
    path = tmp_path / "mixed.jsonl"
    old_style = {"id": "math/0309136", "title": "Old", "abstract": "Style.", "update_date": "2008-02-03"}
    ours = {"title": "Ours", "abstract": "Mine.", "categories": ["cs.CL"], "venue": "ACL"}
    path.write_text(json.dumps(old_style) + "\n" + json.dumps(ours) + "\n")
    old, mine = read_corpus([path]).papers
    assert (old.id, old.arxiv_id, old.year) == ("arxiv-math_0309136", "math/0309136", 2008)
    assert (mine.categories, mine.venue, mine.arxiv_id) == (("cs.CL",), "ACL", "")


def selected_ids(selection: ArxivSelection) -> set[str]:
    return {p.arxiv_id for p in read_corpus([ARXIV], selection).papers}


def test_arxiv_selection_by_category():
    assert selected_ids(ArxivSelection(categories=("cs.CV",))) == {"2104.11280", "2310.02557", "2404.16510"}
    assert selected_ids(ArxivSelection(categories=("stat",))) == {"1906.08226", "2310.02557"}  # "stat" takes stat.ML
    assert len(selected_ids(ArxivSelection(categories=("cs",)))) == 11
    assert selected_ids(ArxivSelection(categories=("cs.C",))) == set()  # a prefix of a name is not an archive
    load = read_corpus([ARXIV], ArxivSelection(categories=("cs.CV", "stat.ML")))
    assert (len(load.papers), load.not_selected, load.skipped) == (4, 8, [])  # 1906.01569 is not selected, not skipped


def test_arxiv_selection_by_first_version_date_includes_both_bounds():
    window = ArxivSelection(since=date(2023, 10, 10), until=date(2024, 4, 25))
    assert selected_ids(window) == {"2310.06625", "2401.06620", "2404.16510"}
    assert selected_ids(ArxivSelection(since=date(2024, 5, 1))) == {"2405.14860", "2411.04986"}
    early = read_corpus([ARXIV], ArxivSelection(until=date(2019, 12, 31)))
    assert [p.arxiv_id for p in early.papers] == ["1906.08226"]
    assert [entry.label for entry in early.skipped] == ["1906.01569"]  # selected, then skipped
    both = ArxivSelection(categories=("cs.CL",), since=date(2024, 1, 1), until=date(2024, 12, 31))
    assert selected_ids(both) == {"2401.06620", "2405.14860", "2411.04986"}


def test_selection_applies_to_other_formats_by_year_and_keywords(tmp_path):
    recent = read_corpus([ZOTERO], ArxivSelection(since=date(2023, 6, 1)))
    assert sorted(p.year for p in recent.papers) == [2023, 2023, 2024]  # years within the bounds' years
    tagged = read_corpus([ZOTERO], ArxivSelection(categories=("multilinguality",)))
    assert [p.title.split(":")[0] for p in tagged.papers] == ["TransliCo"]
    assert tagged.not_selected == 8  # entries without the keyword, also the one with no abstract

    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"title": "Undated", "abstract": "x", "categories": "cs.CL"}) + "\n")
    undated = read_corpus([path], ArxivSelection(since=date(2000, 1, 1)))
    assert (undated.papers, undated.not_selected) == ([], 1)


def test_arxiv_file_is_streamed_not_read_whole(tmp_path):
    """A 20,000-record file read with a selection that keeps one paper: memory stays far below its size."""
    path = tmp_path / "arxiv-big.jsonl"
    filler = "Words of an abstract that takes room. " * 16
    with path.open("w") as file:
        for n in range(20_000):
            record = {
                "id": f"2401.{n:05d}",
                "title": f"Paper {n}",
                "abstract": filler,
                "authors": "A. Smith and B. Jones",
                "categories": "q-bio.NC" if n == 12_345 else "cs.LG",
                "versions": [{"version": "v1", "created": "Mon, 8 Jan 2024 10:00:00 GMT"}],
                "update_date": "2024-01-08",
            }
            file.write(json.dumps(record) + "\n")
    size = path.stat().st_size
    read_corpus([ARXIV])  # the readers' modules imported before measuring
    tracemalloc.start()
    try:
        load = read_corpus([path], ArxivSelection(categories=("q-bio",)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [p.arxiv_id for p in load.papers] == ["2401.12345"] and load.not_selected == 19_999
    assert size > 12_000_000
    assert peak < size / 20, f"peak {peak} bytes while reading {size} bytes"


# --- errors and reports -------------------------------------------------------------


def test_a_malformed_json_line_among_arxiv_records_names_the_line(tmp_path):
    lines = ARXIV.read_text().splitlines()
    lines[2] = lines[2][:-1]  # the closing brace cut off
    path = tmp_path / "arxiv.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CorpusError, match=r"arxiv.jsonl:3: not valid JSON"):
        read_corpus([path])


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("a.jsonl", b'{"title": "A", "abstract": "x"}\n{"title": "Caf\xe9", "abstract": "y"}\n'),
        ("a.bib", b"@article{a,\n  title = {Caf\xe9},\n  abstract = {x}\n}\n"),
        ("a.ris", b"TY  - JOUR\nTI  - A\nAB  - Caf\xe9\nER  - \n"),
        ("a.csv", b"title,abstract\nA,x\nB,Caf\xe9\n"),
    ],
)
def test_non_utf8_names_the_line_in_every_format(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    expected_line = content.split(b"\xe9")[0].count(b"\n") + 1
    with pytest.raises(CorpusError, match=rf"{name}:{expected_line}: not valid UTF-8"):
        read_corpus([path])


def test_unknown_suffix_lists_every_format(tmp_path):
    path = tmp_path / "refs.xml"
    path.write_text("<xml/>")
    every = r"\(use \.txt, \.jsonl, \.ndjson, \.json, \.csv, \.bib, \.ris\)"
    with pytest.raises(CorpusError, match=r"unknown corpus format '\.xml' " + every):
        read_corpus([path])


def test_duplicates_across_files_keep_the_first_and_name_it(caplog):
    load = read_corpus([ZOTERO, ARXIV])
    assert len(load.papers) == 7 + 6  # five of the eleven arXiv papers are in the .bib export
    from_arxiv = [(entry.label, entry.reason) for entry in load.skipped if entry.path == ARXIV]
    assert from_arxiv == [
        ("1906.08226", f"duplicate of {ZOTERO}:46"),
        ("1906.01569", "has no abstract"),
        ("2010.12812", f"duplicate of {ZOTERO}:4"),
        ("2209.15430", f"duplicate of {ZOTERO}:27"),
        ("2305.01610", f"duplicate of {ZOTERO}:77"),
        ("2401.06620", f"duplicate of {ZOTERO}:17"),
    ]

    papers = load_corpus([ZOTERO, ARXIV])  # the old interface: skipped entries are logged
    assert len(papers) == 13
    assert f"skipped {ZOTERO}:68: heinzerling2019sequence has no abstract" in caplog.text


def test_report_lines_list_skipped_entries_then_counts():
    load = read_corpus([ARXIV], ArxivSelection(categories=("cs.CL",)))
    assert load.report_lines() == [
        f"skipped {ARXIV}:2: 1906.01569 has no abstract",
        "5 papers loaded, 1 skipped, 6 not selected",
    ]


def test_ids_never_hold_chunk_id_separators():
    for id_ in (
        stable_paper_id("t", citation_key="odd@key#1"),
        stable_paper_id("t", doi="10.1000/a#b@c"),
        stable_paper_id("t", arxiv_id="hep-th/9901001"),
    ):
        assert "@" not in id_ and "#" not in id_ and "/" not in id_
