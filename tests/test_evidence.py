"""The evidence-first answer with a scripted model: which papers count, what each
paragraph cites, composition per kind of question, streaming order, and replies
that are malformed or cut off."""

import json
import re

import pytest

from rag.evidence import asked_measures, parse_selection, states_asked_value
from tests.test_generation import ScriptedLLM, engine_with
from tests.test_retrieval import DIFFCSE, SEMANTIC_HUB, TRANSLICO


def selecting(choices: dict[str, object], contrast: str = "TransliCo targets scripts while the hub concerns modalities [1][2]."):
    """A model that, for the paper whose title contains a key, returns that selection
    (a list of sentence numbers, or raw text); other papers get none."""

    def reply(messages):
        prompt = messages[-1]["content"]
        paper = re.search(r"^Paper: (.+)$", prompt, re.M)
        if paper is None:  # the comparison's contrast prompt
            return contrast
        for key, choice in choices.items():
            if key in paper.group(1):
                return choice if isinstance(choice, str) else json.dumps({"sentences": choice})
        return json.dumps({"sentences": []})

    return ScriptedLLM(reply)


@pytest.mark.parametrize(
    ("reply", "chosen", "well_formed"),
    [
        ('{"sentences": [3, 1]}', [0, 2], True),
        ('{"sentences": []}', [], True),
        ('{"sentences": [2, 9, 0]}', [1], True),  # out of range: ignored
        ("2, 4", [1, 3], True),  # plain text from an endpoint without constrained output
        ("none", [], True),
        ('{"sentences": [2, 3', [1, 2], False),  # cut off: the numbers it gave still count
        ("I cannot tell.", [], False),
    ],
)
def test_selections_are_read_from_json_or_plain_text(reply, chosen, well_formed):
    assert parse_selection(reply, count=5) == (chosen, well_formed)


def test_only_papers_with_evidence_are_cited_each_with_its_own_sentences(retriever):
    llm = selecting({"DiffCSE": [1, 2]})
    engine, _ = engine_with(retriever, llm, single_min_score_share=0)
    answer = engine.ask("What does DiffCSE learn, and how does it compare with SimCSE?")
    assert answer.generated and not answer.refused
    assert answer.cited_titles == [DIFFCSE]  # the other candidates chose nothing: left out
    assert answer.evidence_replies == 3 and answer.malformed_replies == 0
    cited = answer.cited[0]
    # every sentence it was shown is quoted, not only the two it picked (those lose facts)
    assert len(cited.sentences) == engine.settings.context_sentences == 4
    for sentence in cited.sentences:
        assert sentence in retriever.papers[cited.paper.id].abstract  # quoted, so faithful
        assert sentence.rstrip(".") in answer.text.replace(" [1]", "")
    assert set(re.findall(r"\[(\d+)\]", answer.text)) == {"1"}
    assert answer.text.startswith("**DiffCSE**: ")


def test_nothing_chosen_is_a_refusal_with_the_closest_papers(retriever):
    engine, _ = engine_with(retriever, selecting({}))
    answer = engine.ask("What does DiffCSE learn?")
    assert answer.refused and not answer.cited_titles
    assert DIFFCSE in [p.title for p in answer.closest] and "closest papers" in answer.text


def test_a_comparison_cites_every_compared_paper_then_says_how_they_differ(retriever):
    llm = selecting({"TransliCo": [1]})  # the model finds nothing in the other paper
    engine, _ = engine_with(retriever, llm)
    answer = engine.ask("Compare TransliCo and the Semantic Hub Hypothesis")
    assert answer.comparison
    assert answer.cited_titles == [TRANSLICO, SEMANTIC_HUB]  # a compared paper speaks for itself
    paragraphs = answer.text.split("\n\n")
    assert len(paragraphs) == 3
    assert paragraphs[0].startswith("**TransliCo**") and "[1]" in paragraphs[0] and "[2]" not in paragraphs[0]
    assert "[2]" in paragraphs[1] and "[1]" not in paragraphs[1]
    assert paragraphs[2] == "TransliCo targets scripts while the hub concerns modalities [1][2]."


def test_a_contrast_that_states_an_unsourced_number_is_dropped(retriever):
    llm = selecting({"TransliCo": [1], "Semantic Hub": [1]}, contrast="TransliCo is 97% faster than the hub [1][2].")
    engine, _ = engine_with(retriever, llm)
    answer = engine.ask("Compare TransliCo and the Semantic Hub Hypothesis")
    assert answer.cited_titles == [TRANSLICO, SEMANTIC_HUB]
    assert "97%" not in answer.text and len(answer.text.split("\n\n")) == 2


def test_which_papers_questions_consider_more_candidates_and_list_every_relevant_one(retriever):
    llm = selecting({"": [1]})  # every candidate is judged relevant
    engine, llm = engine_with(
        retriever, llm, multi_context_papers=6, multi_min_score_share=0
    )
    answer = engine.ask("Which papers study contrastive learning of sentence embeddings?")
    assert answer.evidence_replies == 6 and len(answer.cited_titles) == 6
    assert answer.cited_titles == [p.title for p in answer.retrieved[:6]]  # most relevant first


def test_malformed_replies_leave_the_paper_out_and_are_counted(retriever):
    llm = selecting({"DiffCSE": "Sure! The answer is in the abstract.", "": []})
    engine, _ = engine_with(retriever, llm)
    answer = engine.ask("What does DiffCSE learn?")
    assert answer.refused and answer.malformed_replies == 1


def test_retrieved_papers_come_before_any_text_and_evidence_streams_paper_by_paper(retriever):
    llm = selecting({"": [1]})
    engine, _ = engine_with(retriever, llm, single_min_score_share=0)
    events = list(engine.stream("What does DiffCSE learn?"))
    kinds = [e.kind for e in events]
    assert kinds.index("retrieved") < kinds.index("token")
    assert events[kinds.index("retrieved")].answer.retrieved[0].title == DIFFCSE
    tokens = [e.text for e in events if e.kind == "token"]
    assert len(tokens) == 3 and all(t.strip().startswith("**") for t in tokens)  # one per paper
    final = events[-1].answer
    assert kinds[-1] == "answer" and "".join(tokens) == final.text
    assert final.timings_ms["first_token"] <= final.timings_ms["total"]


def test_the_evidence_prompt_puts_the_question_before_the_paper(retriever):
    """So llama.cpp reuses the cached system prompt and question for every paper after the first."""
    llm = selecting({})
    engine, llm = engine_with(retriever, llm)
    engine.ask("What does DiffCSE learn?")
    firsts = [m[-1]["content"].split("\nPaper:")[0] for m in llm.prompts]
    assert len(set(firsts)) == 1 and firsts[0].startswith("Question: What does DiffCSE learn?")
    assert len({m[0]["content"] for m in llm.prompts}) == 1


def test_papers_far_below_the_best_retrieval_score_are_not_read(retriever):
    """The small model calls nearly every paper relevant, so retrieval decides which are offered."""
    llm = selecting({"": [1]})
    engine, llm = engine_with(retriever, llm)
    answer = engine.ask("What does DiffCSE learn?")  # names one paper: the others score far below it
    assert answer.evidence_replies == 1 and answer.cited_titles == [DIFFCSE]
    everything, _ = engine_with(retriever, selecting({"": [1]}), single_min_score_share=0)
    assert everything.ask("What does DiffCSE learn?").evidence_replies == 3


@pytest.mark.slow
def test_the_real_embedded_model_gives_evidence_in_the_right_shape(retriever, tmp_path):
    """SmolLM2 behind the real llama.cpp server, with schema-constrained replies: the
    shape holds (a reply per paper read, every reply readable, quotes from the cited
    paper, markers only for cited papers), whatever the wording."""
    from rag.pipeline import open_pipeline
    from tests.test_local_llm import smol_settings

    settings = smol_settings(tmp_path, local_threads=1, single_min_score_share=0)
    with open_pipeline(settings, retriever=retriever) as pipeline:
        for question in ("What does DiffCSE learn?", "Compare TransliCo and the Semantic Hub Hypothesis"):
            answer = pipeline.engine.ask(question)
            assert answer.error is None and answer.evidence_replies >= 2
            assert answer.malformed_replies == 0  # constrained to the schema
            if answer.refused:
                continue
            for source in answer.cited:
                assert all(s in source.paper.abstract for s in source.sentences)
            markers = {int(n) for n in re.findall(r"\[(\d+)\]", answer.text)}
            assert markers == set(answer.cited_numbers)


def test_a_comparison_whose_papers_are_not_named_reads_every_candidate(retriever):
    """Its second paper may score far below the first: the score filter would drop it."""
    engine, _ = engine_with(retriever, selecting({"": [1]}))
    answer = engine.ask("How does contrastive sentence embedding learning differ from sequential recommendation?")
    assert answer.comparison and answer.evidence_replies == engine.settings.context_papers


@pytest.mark.parametrize(
    ("question", "measures"),
    [
        ("What does DiffCSE learn?", None),  # asks for no value
        ("How many GPUs were used?", []),  # any stated number answers
        ("What exact Spearman correlation did DiffCSE obtain on STS-B?", ["correlation"]),
        ("What inter-annotator agreement (Cohen's kappa) was reported?", ["agreement", "kappa"]),
        ("Which temperature value did they use?", ["temperature"]),
    ],
)
def test_questions_asking_for_a_value_name_the_measures_asked(question, measures):
    assert asked_measures(question) == measures


def test_a_value_must_be_stated_next_to_the_measure_asked_and_not_only_in_the_question():
    asked = "What F1 score did the EEG model reach on ZuCo 2.0?"
    assert states_asked_value(asked, ["It improves the F1-score by 9.3% on ZuCo."])
    assert not states_asked_value(asked, ["We evaluate on ZuCo 2.0 and K-EmoCon."])  # 2.0 is the question's
    assert not states_asked_value(asked, ["A corpus of 35K sentences annotated for sentiment."])  # not an F1
    assert states_asked_value("How many models were tested?", ["We test 18 popular LLMs."])
    assert states_asked_value("What does it learn?", ["It learns embeddings."])  # no value asked


def test_a_paper_that_does_not_state_the_value_asked_is_refused_without_asking_the_model(retriever):
    llm = selecting({"DiffCSE": [1, 2]})  # the model would call it relevant
    engine, _ = engine_with(retriever, llm, single_min_score_share=0)
    answer = engine.ask("What exact Spearman correlation did DiffCSE obtain on STS-B?")
    assert answer.refused and not answer.cited_titles
    assert DIFFCSE in [p.title for p in answer.closest]
    asked_about = [re.search(r"^Paper: (.+)$", m[-1]["content"], re.M).group(1) for m in llm.prompts]
    assert DIFFCSE not in asked_about  # no value stated: the model is not asked about it


def test_a_value_question_is_shown_the_sentence_stating_the_value(retriever):
    llm = selecting({"DiffCSE": [1]})
    engine, _ = engine_with(retriever, llm, context_sentences=2)
    answer = engine.ask("By how much did DiffCSE outperform unsupervised SimCSE?")
    assert answer.cited_titles == [DIFFCSE]
    assert "2.3 absolute points" in answer.text  # not among the two sentences closest to the question
