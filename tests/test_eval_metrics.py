import json
import math

import pytest

from eval import metrics
from eval.questions import QuestionSetError, check_against_corpus, load_questions
from rag.corpus import Paper
from rag.settings import PROJECT_ROOT


def test_retrieval_metrics_on_a_hand_computed_case():
    retrieved = ["X", "Gold A", "Y", "gold a", "Gold B"]  # "gold a" repeats: counts once
    gold = ["Gold A", "Gold B"]
    assert metrics.hit_at(retrieved, gold, 1) == 0.0
    assert metrics.hit_at(retrieved, gold, 2) == 1.0
    assert metrics.recall_at(retrieved, gold, 3) == 0.5
    assert metrics.recall_at(retrieved, gold, 5) == 1.0  # deduplicated: Gold B is 4th
    assert metrics.all_gold_at(retrieved, gold, 3) == 0.0
    assert metrics.all_gold_at(retrieved, gold, 10) == 1.0
    assert metrics.reciprocal_rank(retrieved, gold) == 0.5
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 + 1 / math.log2(3)
    assert metrics.ndcg_at(retrieved, gold, 10) == pytest.approx(dcg / ideal)


def test_empty_retrieval_scores_zero_and_no_gold_is_skipped():
    scores = metrics.retrieval_scores([], ["A"])
    assert scores == {name: 0.0 for name in metrics.RETRIEVAL_METRICS}
    assert metrics.retrieval_scores(["A"], []) is None
    assert metrics.average([None, {"m": 1.0}, {"m": 0.0}]) == {"m": 0.5}
    assert metrics.average([None]) == {}


def test_percentile_nearest_rank():
    assert metrics.percentile([], 50) is None
    assert metrics.percentile([5.0, 1.0, 3.0, 2.0], 50) == 2.0
    assert metrics.percentile(list(range(1, 101)), 95) == 95


def _write(tmp_path, rows):
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_question_loader_reports_bad_lines(tmp_path):
    ok = {"id": "1", "question": "q", "gold_titles": ["A"]}
    assert load_questions(_write(tmp_path, [ok]))[0].answerable is True
    with pytest.raises(QuestionSetError, match=r"q.jsonl:2: not valid JSON"):
        load_questions(_write(tmp_path, [ok, "{oops"]))
    with pytest.raises(QuestionSetError, match=r"q.jsonl:2: missing field\(s\) gold_titles"):
        load_questions(_write(tmp_path, [ok, {"id": "2", "question": "q"}]))
    with pytest.raises(QuestionSetError, match=r"q.jsonl:2: duplicate id '1'"):
        load_questions(_write(tmp_path, [ok, ok]))


def test_question_check_rejects_unknown_titles_and_unsupported_keywords(tmp_path):
    papers = [Paper(title="Real Paper", abstract="It reaches 91% accuracy on ImageNet.")]
    rows = [
        {"id": "a", "question": "q", "gold_titles": ["real  paper"], "answer_keywords": ["91%", "imagenet"]},
        {"id": "b", "question": "q", "gold_titles": ["Invented Paper"]},
        {"id": "c", "question": "q", "gold_titles": ["Real Paper"], "answer_keywords": ["cifar"]},
    ]
    problems = check_against_corpus(load_questions(_write(tmp_path, rows)), papers)
    assert problems == [
        "b: gold title not in the corpus: 'Invented Paper'",
        "c: keyword 'cifar' is in no gold abstract",
    ]


def test_the_project_question_set_is_consistent_with_the_corpus(bundled_papers):
    questions = load_questions(PROJECT_ROOT / "eval" / "questions.jsonl")
    assert check_against_corpus(questions, bundled_papers) == []
    counts = {t: sum(q.type == t for q in questions) for t in {q.type for q in questions}}
    assert len(questions) >= 100
    assert all(counts[t] >= 10 for t in ("comparison", "followup", "unanswerable", "injection"))
