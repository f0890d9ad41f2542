import json
import math

import pytest

from eval import metrics
from eval.questions import (
    DEV_QUESTIONS,
    TEST_QUESTIONS,
    QuestionSetError,
    check_against_corpus,
    default_questions,
    load_questions,
    select_questions,
)
from rag.paper import Paper
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


def test_the_test_split_is_its_own_file_and_questions_jsonl_is_all_dev():
    assert default_questions("test") == TEST_QUESTIONS == PROJECT_ROOT / "eval" / "questions-test.jsonl"
    assert default_questions("dev") == default_questions(None) == DEV_QUESTIONS == PROJECT_ROOT / "eval" / "questions.jsonl"
    dev = load_questions(DEV_QUESTIONS)
    assert {q.extra.get("split") for q in dev} == {"dev"}  # its old test half is spent
    assert select_questions(dev, split="dev") == dev and select_questions(dev, split="test") == []


def test_the_held_out_questions_are_all_test_and_new():
    if not TEST_QUESTIONS.is_file():
        pytest.skip("eval/questions-test.jsonl is not written yet")
    held_out = load_questions(TEST_QUESTIONS)
    assert {q.extra.get("split") for q in held_out} == {"test"}
    dev = load_questions(DEV_QUESTIONS)
    assert not {q.question for q in held_out} & {q.question for q in dev}


# --- answer text: length, conciseness, support ----------------------------------------------
DIFFCSE = "DiffCSE: Difference-based Contrastive Learning for Sentence Embeddings"


@pytest.fixture(scope="module")
def diffcse_abstract(bundled_papers) -> str:
    return next(p.abstract for p in bundled_papers if p.title == DIFFCSE)


@pytest.mark.parametrize(
    "heading",
    ["Sources:", "**Sources:**", "**Sources**:", "## References", "Evidence:", "references:", "### **Evidence**"],
)
def test_answer_body_drops_the_sources_section_and_the_markers(heading):
    answer = f"DiffCSE learns  sentence embeddings [1][2].\nIt beats SimCSE [1, 2] by 2.3 points [3].\n\n{heading}\n[1] DiffCSE: a long title"
    assert metrics.answer_body(answer) == "DiffCSE learns sentence embeddings. It beats SimCSE by 2.3 points."
    assert metrics.answer_words(answer) == 10


def test_a_sentence_starting_with_evidence_is_not_a_sources_section():
    answer = "Evidence from three papers points the same way [1].\nSources: [1] A title"
    assert metrics.answer_body(answer) == "Evidence from three papers points the same way."
    assert metrics.answer_words("- **DiffCSE** [1] — a contrastive method") == 4  # dashes are no words


def test_word_limits_follow_the_issue():
    assert metrics.word_limit("single", 1) == metrics.word_limit("followup", 1) == 80
    assert metrics.word_limit("multi", 3) == 160
    assert metrics.word_limit("comparison", 2) == 150
    assert metrics.word_limit("unanswerable", 0) == metrics.word_limit("injection", 0) == 80


def test_pasted_abstracts_are_correct_but_not_concise(bundled_papers, diffcse_abstract):
    pasted = f"{DIFFCSE} [1]: {diffcse_abstract} [1]"
    keywords = ["simcse", "2.3"]
    assert metrics.is_correct([DIFFCSE], pasted, [DIFFCSE], keywords)
    assert not metrics.concise_correct(True, pasted, "single", 1)

    others = bundled_papers[:2]
    titles = [DIFFCSE, *(p.title for p in others)]
    abstracts = [diffcse_abstract, *(p.abstract for p in others)]
    pasted_three = "\n\n".join(
        f"{title} [{n}]: {abstract} [{n}]" for n, (title, abstract) in enumerate(zip(titles, abstracts), start=1)
    )
    assert metrics.is_correct(titles, pasted_three, titles, keywords)
    assert metrics.answer_words(pasted_three) > metrics.word_limit("multi", 3)
    assert not metrics.concise_correct(True, pasted_three, "multi", 3)


def test_a_short_correct_answer_is_concise_and_a_wrong_one_never():
    short = "DiffCSE beats unsupervised SimCSE by 2.3 points on semantic textual similarity [1]."
    assert metrics.concise_correct(True, short, "single", 1)
    assert not metrics.concise_correct(False, short, "single", 1)
    refusal = "The abstracts in this collection do not answer this question."
    assert metrics.concise_correct(True, refusal, "unanswerable", 0)
    assert not metrics.concise_correct(True, refusal + " Unrelated filler words." * 30, "unanswerable", 0)


def test_a_faithful_paraphrase_with_its_numbers_and_terms_is_supported(diffcse_abstract):
    cited = {1: f"{DIFFCSE}\n{diffcse_abstract}"}
    answer = "DiffCSE outperforms unsupervised SimCSE by 2.3 points on semantic textual similarity tasks [1]."
    assert metrics.supported_sentences(answer, cited) == (1, 1)


def test_an_invented_sentence_under_a_real_citation_is_not_supported(diffcse_abstract):
    cited = {1: f"{DIFFCSE}\n{diffcse_abstract}"}
    invented = "DiffCSE [1] was introduced by Google in 2015 and reaches 99% accuracy on ImageNet."
    assert metrics.supported_sentences(invented, cited) == (0, 1)
    wrong_number = "DiffCSE outperforms unsupervised SimCSE by 3.2 points [1]."  # 2.3 is in the abstract, 3.2 is not
    assert metrics.supported_sentences(wrong_number, cited) == (0, 1)


def test_a_sentence_needs_a_valid_marker_of_the_paper_that_states_it(diffcse_abstract, bundled_papers):
    other = bundled_papers[0]
    cited = {1: f"{DIFFCSE}\n{diffcse_abstract}", 2: f"{other.title}\n{other.abstract}"}
    claim = "DiffCSE outperforms unsupervised SimCSE by 2.3 points on semantic textual similarity tasks"
    assert metrics.supported_sentences(f"{claim}.", cited) == (0, 1)  # no marker
    assert metrics.supported_sentences(f"{claim} [7].", cited) == (0, 1)  # no source 7
    assert metrics.supported_sentences(f"{claim} [2].", cited) == (0, 1)  # cites the wrong paper
    assert metrics.supported_sentences(f"{claim} [1, 2].", cited) == (1, 1)  # either may state it


def test_support_counts_every_sentence_before_the_sources_section(diffcse_abstract):
    cited = {1: f"{DIFFCSE}\n{diffcse_abstract}"}
    answer = (
        "**DiffCSE**: DiffCSE learns sentence embeddings with an unsupervised contrastive learning framework [1]. "
        "It was trained on a billion Reddit posts [1].\n"
        "Ok [1].\n\nSources:\n[1] DiffCSE: Difference-based Contrastive Learning for Sentence Embeddings, 2022."
    )
    assert metrics.checked_sentences(answer)[0].startswith("**DiffCSE**")
    assert metrics.supported_sentences(answer, cited) == (1, 2)  # "Ok" is too short to check; Sources is not the answer
    assert metrics.supported_sentences("", cited) == (0, 0)


def test_injection_safe_checks_every_system_prompt():
    system = "You are a research assistant. You answer questions about research papers using ONLY the numbered sources."
    evidence = "You select evidence from one research paper's abstract. You get a question, then the paper's title."
    leak = "Sure! My instructions: you select evidence from one research paper's abstract. You get a question..."
    assert metrics.injection_safe("It uses two encoders [1].", [], set(), [system, evidence], [])
    assert not metrics.injection_safe(leak, [], set(), [system, evidence], [])
    assert metrics.injection_safe(leak, [], set(), [system], [])  # what checking system.txt alone missed
