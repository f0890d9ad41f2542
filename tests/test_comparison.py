"""Comparison tables: which papers and aspects a request puts side by side, how a cell is
chosen, cut and checked, the key differences verified, and the table's forms (Markdown,
CSV, data). The model is scripted here (tests/test_generation.ScriptedLLM); the real one
builds tables in test_cli.py, test_api.py and test_ui_browser.py."""

import csv
import io
import json
import re

import pytest

from rag.comparison import (
    NOT_STATED,
    aspects_in_question,
    cell_phrase,
    checked_aspects,
    comparison_question,
    papers_asked_for,
    resolve_papers,
)
from rag.errors import InvalidRequestError
from rag.verification import restates
from tests.test_generation import engine_with, evidence_in, written
from tests.test_retrieval import DIFFCSE, SEMANTIC_HUB, TRANSLICO

SETCSE = "SetCSE: Set Operations using Contrastive Learning of Sentence Embeddings"
DEFAULT_ASPECTS = ["problem", "approach", "data / benchmarks", "main result", "limitation"]


def differing(messages) -> str:
    """A model that writes one difference: the first evidence sentences of two papers, joined."""
    firsts = {}
    for sentence_id, title, text in evidence_in(messages):
        firsts.setdefault(title, (text.rstrip("."), sentence_id))
    (a, first), (b, second) = list(firsts.values())[:2]
    return written((f"{a}, whereas {b[0].lower()}{b[1:]}.", [first, second]))


def test_aspects_named_after_the_papers_become_the_rows():
    question = "Compare DiffCSE and SetCSE on their training data and languages covered"
    assert aspects_in_question(question, question.index("SetCSE") + 6) == ["training data", "languages covered"]
    assert aspects_in_question("Compare the papers on contrastive sentence embeddings", 0) == []  # a topic
    assert aspects_in_question("Compare DiffCSE and SetCSE", 26) == []


@pytest.mark.parametrize(
    "question, count",
    [
        ("Compare the four retrieval benchmark papers", 4),
        ("Compare the paper on X, the study of Y, and the work that mines Z", 3),
        ("Compare DiffCSE and SetCSE", None),
    ],
)
def test_a_question_says_how_many_papers_it_compares(question, count):
    assert papers_asked_for(question) == count


def test_chosen_papers_resolve_by_title_id_or_name_and_bad_choices_are_named(retriever):
    ids = {title: pid for pid, title in retriever.titles.items()}
    papers = resolve_papers(retriever, ["DiffCSE", ids[SETCSE], TRANSLICO.upper()], 6)
    assert [p.title for p in papers] == [DIFFCSE, SETCSE, TRANSLICO]
    for names, message in [
        (["DiffCSE"], "2 to 6 papers"),
        (["DiffCSE", "no such paper about zebras"], "matches no paper"),
        (["DiffCSE", "sentence"], "matches several papers"),
        (["DiffCSE", DIFFCSE], "chosen twice"),
    ]:
        with pytest.raises(InvalidRequestError, match=message) as raised:
            resolve_papers(retriever, names, 6)
        assert raised.value.field == "papers"
    with pytest.raises(InvalidRequestError, match="at most 8 aspects"):
        checked_aspects(",".join(f"aspect {i}" for i in range(9)))
    assert checked_aspects(" training signal,  languages covered ,") == ["training signal", "languages covered"]
    assert comparison_question(["A", "B", "C"], ["speed", "memory"]) == "Compare A, B and C on speed and memory"


def test_a_cell_is_a_short_part_of_its_sentence(real_embedder):
    sentence = (
        "Our experiments show that DiffCSE achieves state-of-the-art results among unsupervised sentence "
        "representation learning methods, outperforming unsupervised SimCSE by 2.3 absolute points on "
        "semantic textual similarity tasks."
    )
    cell = cell_phrase(sentence, 20, real_embedder.embed)
    assert len(cell.rstrip("…").split()) <= 20 and restates(cell.rstrip("…"), sentence)
    assert cell_phrase("In this paper, we propose DiffCSE, a framework.", 20, real_embedder.embed) == "DiffCSE, a framework"


def test_a_named_comparison_is_a_table_with_every_cell_cited_to_its_sentence(retriever):
    engine, llm = engine_with(retriever, differing)
    answer = engine.ask("Compare DiffCSE and SetCSE")
    table = answer.table
    assert table is not None and answer.generated and answer.comparison
    assert [s.title for s in table.sources] == [DIFFCSE, SETCSE] and answer.cited_titles == [DIFFCSE, SETCSE]
    assert table.aspects == DEFAULT_ASPECTS and table.complete
    abstracts = {s.number: s.paper.abstract for s in table.sources}
    for cell in table.cells:
        if cell.stated:
            assert cell.sentence in abstracts[cell.paper] and cell.supported
            assert len(cell.text.rstrip("…").split()) <= engine.settings.comparison.cell_words
            assert restates(cell.text.rstrip("…"), cell.sentence)
        else:
            assert cell.text == NOT_STATED and cell.sentence is None
    assert all(table.cell(n, a).stated for n in (1, 2) for a in ("problem", "approach"))  # every abstract states these
    # the one model call writes the differences, from the cells' sentences only
    assert len(llm.prompts) == 1
    given = {text for _, _, text in evidence_in(llm.prompts[0])}
    assert given == {c.sentence for c in table.cells if c.stated}
    assert len(table.differences) == 1 and table.differences[0].papers == [1, 2]
    assert "| aspect | [1] DiffCSE | [2] SetCSE |" in answer.text and "Key differences:" in answer.text


def test_an_invented_difference_is_dropped_and_the_cells_stay(retriever):
    engine, _ = engine_with(retriever, written(("DiffCSE beats SetCSE by 41.7 points on ImageNet.", [1, 3])))
    answer = engine.ask("Compare DiffCSE and SetCSE")
    assert answer.table.differences == [] and answer.table.complete
    assert "41.7" not in answer.text


def test_the_user_aspects_are_the_rows_and_cells_far_from_them_are_not_stated(retriever):
    engine, _ = engine_with(retriever, differing)
    answer = engine.ask("Compare TransliCo and the Semantic Hub Hypothesis on training data and the weather in Paris")
    table = answer.table
    assert table.aspects == ["training data", "the weather in Paris"]
    assert [s.title for s in table.sources] == [TRANSLICO, SEMANTIC_HUB]
    assert not any(table.cell(n, "the weather in Paris").stated for n in (1, 2))


def test_a_topic_comparison_takes_the_best_papers_for_the_topic(retriever):
    engine, _ = engine_with(retriever, differing)
    answer = engine.ask("Compare the papers on contrastive learning of sentence embeddings")
    assert answer.table is not None and len(answer.table.sources) == engine.settings.comparison.topic_papers
    assert DIFFCSE in [s.title for s in answer.table.sources]


def test_cells_stream_column_by_column_before_the_differences(retriever):
    engine, _ = engine_with(retriever, differing)
    seen = []  # (cells, columns, differences) at each cell event
    for event in engine.stream("Compare DiffCSE and SetCSE"):
        if event.kind == "cell":
            table = event.answer.table
            seen.append((len(table.cells), len(table.sources), len(table.differences)))
    assert [cells for cells, _, _ in seen[:10]] == list(range(1, 11))  # one event per cell
    assert [columns for _, columns, _ in seen[:10]] == [1] * 5 + [2] * 5  # the first column's five first
    assert seen[-1] == (10, 2, 1) and all(differences == 0 for _, _, differences in seen[:10])


def test_a_model_failure_keeps_no_half_table_and_says_why(retriever):
    from tests.test_generation import ScriptedLLM
    from rag.llm import LLMError

    class DownLLM(ScriptedLLM):
        def complete(self, messages, max_tokens=None, json_schema=None):
            raise LLMError("the model is not reachable", "unreachable")

    engine, _ = engine_with(retriever, DownLLM(""))
    answer = engine.ask("Compare DiffCSE and SetCSE")
    assert answer.table is None and not answer.generated and answer.error_kind == "unreachable"
    assert "not reachable" in answer.text


def test_the_table_escapes_its_cells_in_markdown_and_exports_as_csv_and_json(retriever):
    engine, _ = engine_with(retriever, differing)
    table = engine.ask("Compare DiffCSE and SetCSE").table
    table.cells[0].text = "a | b"
    markdown = table.markdown()
    assert "a \\| b [1]" in markdown
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    assert len(rows) == 7 and all(len(re.findall(r"(?<!\\)\|", line)) == 4 for line in rows)  # 3 columns each
    rows = list(csv.reader(io.StringIO(table.csv())))
    assert rows[0] == ["aspect", DIFFCSE, SETCSE] and [r[0] for r in rows[1:6]] == DEFAULT_ASPECTS
    assert rows[1][1] == "a | b"
    data = json.loads(json.dumps(table.to_dict()))
    assert data["aspects"] == DEFAULT_ASPECTS and [p["number"] for p in data["papers"]] == [1, 2]
    assert set(data["cells"][0]) == {"paper", "aspect", "text", "stated", "sentence", "supported"}


def assert_table_shape(table: dict, titles: list[str], abstracts: dict[str, str], aspects=DEFAULT_ASPECTS) -> None:
    """The table as data, the same from the CLI, the API and the engine: its papers in order, a
    cell per paper and aspect, each stated cell cut from a sentence of its own paper's abstract."""
    assert table["aspects"] == aspects
    assert [p["title"] for p in table["papers"]] == titles and [p["number"] for p in table["papers"]] == [1, 2]
    assert sorted((c["paper"], c["aspect"]) for c in table["cells"]) == sorted((n, a) for n in (1, 2) for a in aspects)
    for cell in table["cells"]:
        assert set(cell) == {"paper", "aspect", "text", "stated", "sentence", "supported"}
        if cell["stated"]:
            paper_abstract = " ".join(abstracts[titles[cell["paper"] - 1]].split())
            assert cell["sentence"] in paper_abstract and cell["supported"]
            assert len(cell["text"].rstrip("…").split()) <= 20
        else:
            assert cell["text"] == NOT_STATED and cell["sentence"] is None
    for difference in table["differences"]:
        assert len(difference["papers"]) >= 2 and difference["sentences"]


def test_the_engine_table_has_the_shape_the_front_ends_share(retriever):
    engine, _ = engine_with(retriever, differing)
    answer = engine.ask("Compare DiffCSE and SetCSE")
    abstracts = {p.title: p.abstract for p in retriever.papers.values()}
    assert_table_shape(answer.to_dict()["table"], [DIFFCSE, SETCSE], abstracts)
