"""The table metrics (eval/table_metrics.py) on hand-made tables: a faithful table scores
high, and the degenerate ones score low: an abstract pasted into every cell, an invented
phrase under a real sentence, a sentence of another paper, "not stated" everywhere, and
a cell for every aspect (the no-model baseline never says "not stated")."""

from eval.table_metrics import cell_correct, cell_supported, matching_aspect, table_scores

ABSTRACT = (
    "Sentence embeddings are hard to learn without labels. "
    "We propose DiffCSE, which learns embeddings sensitive to edits of a sentence. "
    "DiffCSE outperforms SimCSE by 2.3 points on semantic textual similarity tasks."
)
OTHER = "We study crashes in widget compilers. Most crashes come from memory errors."
TITLE, OTHER_TITLE = "DiffCSE", "Widget crashes"
QUESTION = {
    "id": "q1",
    "aspects": None,
    "gold": {
        TITLE: {"approach": ["sensitive to edits"], "main result": ["2.3 points"], "limitation": "not stated"},
        OTHER_TITLE: {"approach": ["crashes"], "main result": ["memory errors"], "limitation": "not stated"},
    },
}
ABSTRACTS = {TITLE: ABSTRACT, OTHER_TITLE: OTHER}


def cell(paper, aspect, text, sentence=None):
    return {"paper": paper, "aspect": aspect, "text": text, "stated": sentence is not None, "sentence": sentence}


def row(cells, total_ms=1000.0):
    return {
        "id": "q1", "columns": [TITLE, OTHER_TITLE], "aspects": ["approach", "main result", "limitation"],
        "cells": cells, "differences": [], "latency_ms": {"total": total_ms}, "error": None,
    }


FAITHFUL = row([
    cell(TITLE, "approach", "DiffCSE, which learns embeddings sensitive to edits of a sentence",
         "We propose DiffCSE, which learns embeddings sensitive to edits of a sentence."),
    cell(TITLE, "main result", "DiffCSE outperforms SimCSE by 2.3 points",
         "DiffCSE outperforms SimCSE by 2.3 points on semantic textual similarity tasks."),
    cell(TITLE, "limitation", "not stated in the abstract"),
    cell(OTHER_TITLE, "approach", "We study crashes in widget compilers", "We study crashes in widget compilers."),
    cell(OTHER_TITLE, "main result", "Most crashes come from memory errors", "Most crashes come from memory errors."),
    cell(OTHER_TITLE, "limitation", "not stated in the abstract"),
])


def scores(table):
    return table_scores([table], {"q1": QUESTION}, ABSTRACTS)


def test_a_faithful_table_scores_full_marks():
    result = scores(FAITHFUL)
    assert result["cell_support"] == 1.0 and result["cell_correctness"] == 1.0
    assert result["not_stated_precision"] == 1.0 and result["not_stated_recall"] == 1.0
    assert result["column_recall"] == 1.0 and result["total_ms_p50"] == 1000.0


def test_a_pasted_abstract_in_every_cell_is_neither_supported_nor_correct():
    pasted = row([cell(title, aspect, text, text.split(". ")[0] + ".")
                  for title, text in ABSTRACTS.items() for aspect in ("approach", "main result", "limitation")])
    result = scores(pasted)
    assert result["cell_support"] == 0.0  # the cells hold sentences their cited one does not
    assert cell_correct({"stated": True, "text": (ABSTRACT + " ") * 2}, ["2.3 points"]) is False  # no cell: too long


def test_an_invented_phrase_under_a_real_sentence_is_unsupported():
    real = "DiffCSE outperforms SimCSE by 2.3 points on semantic textual similarity tasks."
    assert cell_supported("DiffCSE outperforms SimCSE by 2.3 points", real, ABSTRACT)
    assert not cell_supported("DiffCSE outperforms SimCSE by 4.1 points", real, ABSTRACT)  # a number it lacks
    assert not cell_supported("DiffCSE beats GPT-4 on ImageNet by 2.3 points", real, ABSTRACT)
    assert not cell_supported("DiffCSE outperforms SimCSE", "DiffCSE outperforms SimCSE everywhere.", ABSTRACT)  # not its sentence
    assert not cell_supported("Most crashes come from memory errors", "Most crashes come from memory errors.", ABSTRACT)


def test_not_stated_everywhere_scores_low_precision_and_correctness():
    silent = row([cell(t, a, "not stated in the abstract") for t in ABSTRACTS for a in ("approach", "main result", "limitation")])
    result = scores(silent)
    assert result["not_stated_recall"] == 1.0
    assert result["not_stated_precision"] == round(2 / 6, 4) and result["cell_correctness"] == round(2 / 6, 4)


def test_a_cell_for_every_aspect_misses_every_not_stated_gold():
    always = row([*FAITHFUL["cells"][:2], cell(TITLE, "limitation", "Sentence embeddings are hard to learn without labels",
                                              "Sentence embeddings are hard to learn without labels."),
                  *FAITHFUL["cells"][3:5], cell(OTHER_TITLE, "limitation", "We study crashes", "We study crashes in widget compilers.")])
    result = scores(always)
    assert result["not_stated_recall"] == 0.0 and result["not_stated_precision"] is None
    assert result["cell_correctness"] == round(4 / 6, 4)


def test_a_missing_column_counts_against_correctness_and_column_recall():
    half = {**row(FAITHFUL["cells"][:3]), "columns": [TITLE]}
    result = scores(half)
    assert result["column_recall"] == 0.5 and result["cell_correctness"] == 0.5


def test_gold_aspects_find_the_row_sharing_their_words():
    assert matching_aspect("training data", ["their training data", "evaluation"]) == "their training data"
    assert matching_aspect("main result", ["main result"]) == "main result"
    assert matching_aspect("model size", ["training data"]) is None


def test_a_bad_table_question_line_names_the_file_and_line(tmp_path):
    import pytest

    from eval.questions import QuestionSetError
    from eval.tables import load_table_questions

    path = tmp_path / "tables.jsonl"
    good = '{"id": "a", "question": "Compare A and B", "papers": ["A", "B"], "gold": {"A": {"problem": ["x"]}}}'
    path.write_text(good + '\n{"id": "b", "question": "q", "papers": []}\n', encoding="utf-8")
    with pytest.raises(QuestionSetError, match=r"tables.jsonl:2: missing field\(s\) gold"):
        load_table_questions(path)
    path.write_text(good.replace('["x"]', '"unknown"') + "\n", encoding="utf-8")
    with pytest.raises(QuestionSetError, match=r"tables.jsonl:1: gold of 'A', 'problem': keywords or 'not stated'"):
        load_table_questions(path)


def test_table_mode_runs_the_product_and_the_baseline_on_the_same_question(retriever, tmp_path):
    from eval.tables import BASELINE, PRODUCT, load_table_questions, run_tables, TABLE_QUESTIONS
    from rag.pipeline import open_pipeline
    from tests.test_comparison import differing
    from tests.test_generation import ScriptedLLM

    question = load_table_questions(TABLE_QUESTIONS, "dev")[0]
    pipeline = open_pipeline(retriever.settings, retriever=retriever, llm=ScriptedLLM(differing))
    summary = run_tables(pipeline, [question], tmp_path, progress=False)
    assert set(summary["systems"]) == {PRODUCT, BASELINE}
    for scores in summary["systems"].values():
        assert scores["tables"] == 1 and scores["cell_support"] == 1.0 and scores["column_recall"] == 1.0
    assert summary["systems"][BASELINE]["not_stated_recall"] == 0.0  # it never says "not stated"
    assert (tmp_path / "results.jsonl").read_text().count("\n") == 2 and (tmp_path / "report.md").is_file()
