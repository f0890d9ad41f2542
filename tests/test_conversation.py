"""Follow-ups refer to the papers of the last answer in the order it showed them:
"the first/second/last one", "both", "the other paper"."""

import pytest

from rag.conversation import PaperMentions, Turn, carried_titles, turns_from_messages
from rag.errors import InvalidQuestionError
from tests.test_retrieval import BERT4REC, DIFFCSE, SEMANTIC_HUB, TRANSLICO


@pytest.fixture(scope="module")
def mentions(retriever):
    return PaperMentions(retriever.titles, retriever.names)


SHOWN = [TRANSLICO, DIFFCSE, BERT4REC]  # the order the last answer displayed its papers


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What data does the first one use?", [TRANSLICO]),
        ("And the second paper?", [DIFFCSE]),
        ("What about the third one?", [BERT4REC]),
        ("Which datasets does the last one evaluate on?", [BERT4REC]),
        ("What do both of them train on?", [TRANSLICO, DIFFCSE]),
        ("What dataset do they use?", SHOWN),
    ],
)
def test_ordinals_follow_the_order_the_last_answer_showed(mentions, question, expected):
    history = [Turn("Which papers use contrastive learning?", "…", SHOWN)]
    assert carried_titles(question, history, mentions) == expected


def test_the_other_paper_is_the_one_the_last_answer_left_out(mentions):
    history = [
        Turn("Compare TransliCo and the Semantic Hub Hypothesis", "…", [TRANSLICO, SEMANTIC_HUB]),
        Turn("What does the first one do?", "…", [TRANSLICO]),
    ]
    assert carried_titles("And the other one?", history, mentions) == [SEMANTIC_HUB]


def test_order_comes_from_the_answer_text_when_no_titles_were_recorded(mentions):
    history = turns_from_messages(
        [
            {"role": "user", "content": "Tell me about two papers"},
            {"role": "assistant", "content": f"{BERT4REC} does recommendation [1]; {DIFFCSE} does sentences [2]."},
        ]
    )
    assert carried_titles("What does the second one learn?", history, mentions) == [DIFFCSE]


def test_a_question_that_names_a_paper_carries_nothing(mentions):
    history = [Turn("q", "…", SHOWN)]
    assert carried_titles("What does DiffCSE learn?", history, mentions) == []


def test_history_that_is_not_a_list_of_messages_is_a_clear_error():
    with pytest.raises(InvalidQuestionError, match="history must be a list"):
        turns_from_messages("user: hi")


@pytest.mark.parametrize(
    ("question", "carried"),
    [
        ("Which of my papers from 2023 use contrastive learning?", []),  # a new search
        ("Are there any papers on sparse autoencoders?", []),
        ("Which of these papers use contrastive learning?", SHOWN),
        ("Which papers build on it?", SHOWN),
        ("Which papers extend the second one?", [DIFFCSE]),
    ],
)
def test_a_list_question_carries_papers_only_when_it_refers_back_to_them(mentions, question, carried):
    history = [Turn("Which papers use contrastive learning?", "…", SHOWN)]
    assert carried_titles(question, history, mentions) == carried
